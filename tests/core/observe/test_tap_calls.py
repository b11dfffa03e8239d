"""The tap records a call's request (published by the call itself, not
through the plain send path) as well as its reply."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from ion.core.process.process import Process
from ion.services.hello.service import HelloService


@pytest_twisted.ensureDeferred
async def test_w1_a_call_in_one_container_is_its_request_and_its_reply(container: Any) -> None:
    await container.spawn(HelloService)
    caller = await container.spawn(Process, name="caller")
    before = container.tap.last
    await caller.rpc_send("hello", "hello", "you")
    rows = container.tap.read(before).rows
    assert [(r["dir"], r["performative"], r["op"]) for r in rows] == [
        ("send", "request", "hello"),
        ("send", "inform_result", "result"),
    ]
    assert rows[0]["sender"] == str(caller.id) and rows[0]["to"] == "hello"
    assert rows[0]["conv_id"] == rows[1]["conv_id"]


@pytest_twisted.ensureDeferred
async def test_the_observers_own_calls_and_their_answers_are_left_out(make_container: Any) -> None:
    """get_info and get_trace, asked of this container's agent and another's,
    leave no row in either tap: neither the request nor its answer."""
    from ion.core.cc import agent_client

    c1, c2 = await make_container(), await make_container()
    caller = await c1.spawn(Process, name="observer")
    before = (c1.tap.last, c2.tap.last)
    await agent_client.get_info(caller, c2.id)
    await agent_client.get_info(caller, c1.id)
    await agent_client.ask_all(caller, "get_trace", {"limit": 1})
    assert (c1.tap.last, c2.tap.last) == before
    await caller.rpc_send(str(c2.agent.id), "ping")  # and the rest is still seen
    assert [r["op"] for r in c1.tap.read(before[0]).rows] == ["ping", "result"]
