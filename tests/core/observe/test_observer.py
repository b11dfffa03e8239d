"""The system observer (observer.app): every container's messages and the events."""

from __future__ import annotations

from typing import Any

import pytest

from ion.core.observe.observer import InteractionObserver
from ion.core.process.process import Process
from ion.services.hello.service import HelloService
from tests.core.cc.agent_system import H, System


def test_the_observer_logs_the_messages_of_every_container_and_the_events(
    system: System,
) -> None:
    c1 = system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    observer = system.wait(c1.spawn(InteractionObserver, args={"interval": 0.1}))
    system.wait(c2.spawn(HelloService))
    caller = system.wait(c2.spawn(Process))
    system.wait(caller.rpc_send("hello", "hello", "x"))
    system.run(0.3)
    log = system.wait(caller.rpc_send("observer", "get_log", {"since": 0}))
    rows = log["rows"]
    hello = [r for r in rows if r["op"] == "hello"]
    assert [r["performative"] for r in hello] == ["request"] and hello[0]["container"] == "c2"
    events = [r for r in rows if r["dir"] == "event"]
    assert any(r["op"] == "process_lifecycle" and r["sender"] == str(caller.id) for r in events)
    assert [r["n"] for r in rows] == sorted(r["n"] for r in rows)
    assert log["errors"] == {}
    later = system.wait(caller.rpc_send("observer", "get_log", {"since": log["last"]}))
    assert all(r["n"] > log["last"] for r in later["rows"])
    assert observer.state == "ACTIVE"


def test_get_log_refuses_a_bad_since(system: System) -> None:
    c1 = system.start("c1")
    system.wait(c1.spawn(InteractionObserver, args={"interval": 0.1}))
    caller = system.wait(c1.spawn(Process))
    from ion.core import exception as exc

    with pytest.raises(exc.ReceivedError, match="since"):
        system.wait(caller.rpc_send("observer", "get_log", {"since": "x"}))


def test_msc_answers_mscgen_and_the_chart_is_written_when_it_terminates(
    system: System, tmp_path: Any
) -> None:
    from ion.core.observe.mscgen import parse_mscgen

    c1 = system.start("c1")
    out = tmp_path / "msc.txt"
    observer = system.wait(
        c1.spawn(InteractionObserver, args={"interval": 0.1, "msc_file": str(out)})
    )
    system.wait(c1.spawn(HelloService))
    caller = system.wait(c1.spawn(Process))
    system.wait(caller.rpc_send("hello", "hello", "x"))
    system.run(0.3)
    text = system.wait(caller.rpc_send("observer", "msc", 50))
    chart = parse_mscgen(text)
    assert [a["kind"] for a in chart.arcs if a["label"] == "hello"] == ["request"]
    system.wait(c1.terminate(observer))
    assert len(parse_mscgen(out.read_text()).arcs) == len(observer.rows) > 0
