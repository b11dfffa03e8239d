"""The tap in running containers (W1), and the system's trace through the
agents' C{get_trace}, merged across containers whose clocks disagree."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ion.core import exception as exc
from ion.core.config import DEFAULTS, Config, merge
from ion.core.observe import arcs
from ion.core.observe.system import system_trace
from ion.core.process.process import Process
from ion.services.hello.service import HelloService
from tests.core.cc.agent_system import H, System

SECRET = "the content stays out of the tap"


def _spawn(system: System, cid: str, cls: Any, **kw: Any) -> Any:
    return system.wait(system.containers[cid].spawn(cls, **kw))


def _conversation(rows: list[dict[str, Any]], op: str) -> list[dict[str, Any]]:
    """The rows of the conversation whose request was C{op}."""
    conv = next(r["conv_id"] for r in rows if r["op"] == op)
    return [r for r in rows if r["conv_id"] == conv]


def test_w1_an_rpc_hello_from_another_container_is_two_rows(system: System) -> None:
    c1 = system.start("c1")
    system.start("c2")
    system.run(H)
    hello = _spawn(system, "c1", HelloService)
    caller = _spawn(system, "c2", Process)
    since = c1.tap.last  # type: ignore[union-attr]
    system.wait(caller.rpc_send("hello", "hello", SECRET))
    rows = c1.tap.read(since).rows  # type: ignore[union-attr]
    assert [(r["dir"], r["performative"]) for r in rows] == [
        ("recv", "request"), ("send", "inform_result")]  # fmt: skip
    request, reply = rows
    assert request["conv_id"] == reply["conv_id"] and request["conv_id"]
    assert request["op"] == "hello" and request["protocol"] == "rpc"
    assert request["sender"] == str(caller.id) and request["receiver"] == str(hello.id)
    assert reply["status"] == "OK" and reply["receiver"] == f"{caller.id}.reply"
    assert SECRET not in repr(rows)


def test_the_system_trace_merges_containers_on_the_askers_clock(system: System) -> None:
    c1 = system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    skew = 5.0
    c2.tap.now = lambda: time.time() + skew  # type: ignore[union-attr]
    hello = _spawn(system, "c2", HelloService)
    caller = _spawn(system, "c1", Process)
    system.wait(caller.rpc_send("hello", "hello", "x"))
    trace = system.wait(system_trace(caller, timeout=1.0))
    assert trace.errors == {}
    assert trace.offsets["c1"] == 0.0
    # Cristian's estimate: within half the round trip of the true skew.
    assert abs(trace.offsets["c2"] + skew) <= trace.rtt["c2"] / 2 + 0.01
    convs = _conversation(trace.rows, "hello")
    assert [r["performative"] for r in convs] == ["request", "inform_result"]
    request, reply = convs
    assert request["receiver"] == str(hello.id)  # the receive in c2 joined its send in c1
    # c2's own receive, moved by the estimate, falls between the send and the reply
    # (to within the estimate's bound); unmoved it would be 5 s late.
    recv = next(r for r in c2.tap.read().rows  # type: ignore[union-attr]
                if r["dir"] == "recv" and r["conv_id"] == request["conv_id"])  # fmt: skip
    taken, bound = recv["ts"] + trace.offsets["c2"], trace.rtt["c2"] / 2 + 0.01
    assert request["ts"] - bound <= taken <= reply["ts"] + bound
    got = arcs.arcs(trace.rows)
    conv = convs[0]["conv_id"]
    assert [(a.src, a.dst) for a in got if a.conv_id == conv] == [
        (str(caller.id), str(hello.id)), (str(hello.id), str(caller.id))]  # fmt: skip
    assert trace.last["c1"] == c1.tap.last and trace.last["c2"] == c2.tap.last  # type: ignore[union-attr]


def test_the_system_trace_since_asks_only_what_is_new(system: System) -> None:
    system.start("c1")
    system.start("c2")
    system.run(H)
    _spawn(system, "c2", HelloService)
    caller = _spawn(system, "c1", Process)
    first = system.wait(system_trace(caller, timeout=1.0))
    system.wait(caller.rpc_send("hello", "hello", "x"))
    after = system.wait(system_trace(caller, since=first.last, timeout=1.0))
    assert [r["performative"] for r in _conversation(after.rows, "hello")] == [
        "request", "inform_result"]  # fmt: skip
    assert len(after.rows) == 2  # nothing from before


def test_get_trace_refuses_a_bad_since(system: System) -> None:
    system.start("c1")
    caller = _spawn(system, "c1", Process)
    with pytest.raises(exc.ReceivedError, match="since"):
        system.wait(caller.rpc_send("cc.c1", "get_trace", {"since": "yesterday"}))


def test_with_the_tap_off_nothing_is_recorded_and_get_trace_says_so() -> None:
    system = System()
    config = Config(merge(DEFAULTS, {"observer": {"tap": False}, "agent": system.agent_config}))
    from ion.core.cc.container import Container

    c1 = Container(reactor=system.clock, config=config, container_id="c1",
                   sysname=system.sysname, broker=system.broker.connection())  # fmt: skip
    system.wait(c1.start())
    system.containers["c1"] = c1
    try:
        assert c1.tap is None and c1.exchange.tap is None
        _spawn(system, "c1", HelloService)
        caller = _spawn(system, "c1", Process)
        assert system.wait(caller.rpc_send("hello", "hello", "x"))
        answer = system.wait(caller.rpc_send("cc.c1", "get_trace", {}))
        assert answer["off"] is True and answer["rows"] == []
    finally:
        system.stop_all()


def test_a_bad_tap_size_is_a_configuration_error() -> None:
    from ion.core.cc.container import Container

    config = Config(merge(DEFAULTS, {"observer": {"tap_size": "big"}}))
    with pytest.raises(exc.ConfigurationError, match="observer.tap_size"):
        Container(config=config, container_id="c9")
