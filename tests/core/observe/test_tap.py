"""The message tap in running containers: what an rpc call leaves in it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest_twisted

from ion.core.cc.container import Container
from ion.core.process.process import Process
from ion.services.echo import EchoService


def _rpc_rows(container: Container) -> list[tuple[str, str, str, str]]:
    """(dir, performative, op, receiver_name or to) of the tap's rpc rows."""
    assert container.tap is not None
    rows = container.tap.read().rows
    return [(r["dir"], r["performative"], r["op"], r["to"]) for r in rows if r["protocol"] == "rpc"]


@pytest_twisted.ensureDeferred
async def test_a_call_in_one_container_is_two_send_rows(container: Container) -> None:
    await container.spawn(EchoService)
    client: Any = await container.spawn(Process, name="client")
    await client.rpc_send("echo", "echo", {"x": 1})
    rows = _rpc_rows(container)
    assert [r[:3] for r in rows] == [
        ("send", "request", "echo"),
        ("send", "inform_result", "result"),
    ]
    assert rows[0][3] == "echo"


@pytest_twisted.ensureDeferred
async def test_a_call_across_containers_is_a_send_and_a_recv_in_each(
    make_container: Callable[..., Awaitable[Container]],
) -> None:
    server = await make_container()
    caller = await make_container()
    await server.spawn(EchoService)
    client: Any = await caller.spawn(Process, name="client")
    await client.rpc_send("echo", "echo", {"x": 1})
    assert [r[:3] for r in _rpc_rows(caller)] == [
        ("send", "request", "echo"),
        ("recv", "inform_result", "result"),
    ]
    assert [r[:3] for r in _rpc_rows(server)] == [
        ("recv", "request", "echo"),
        ("send", "inform_result", "result"),
    ]
