"""Supervisors, scenarios S12-S17 and S22 of the supervision notes: shutdown
budgets, simple_one_for_one, auto_shutdown, escalation up a tree, a request in
flight when its instance dies, and a stop while a restart is under way."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from ion.core import exception as exc
from ion.core.process.process import Process
from tests.core.process.test_supervisor import crash, pid, spec, started, supervise, terminated
from tests.core.process.workers import HeldService, Restartable, Sup, Worker, ended, entries
from tests.helpers import Collector, wait_for

BROKERS = ["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)]


@pytest_twisted.ensureDeferred
async def test_s12_shutdown_budgets(container: Any) -> None:
    """S12: an infinity child finishes its 1.5 s hook, a brutal_kill one's hook
    never runs, and one whose hook outlasts its 1 s budget is killed at 1 s."""
    journal: Collector[Any] = Collector()
    clock = task.Clock()
    slow, slower = defer.Deferred(), defer.Deferred()
    children = [
        spec("x", journal, shutdown=1, args={"gate": slow}),
        spec("y", journal, shutdown="brutal_kill"),
        spec("z", journal, shutdown="infinity", args={"gate": slower}),
    ]
    sup = await supervise(container, journal, children, clock=clock)
    stopping = defer.ensureDeferred(container.terminate(sup))
    await journal.wait_until(lambda e: e[:2] == ("terminate", "z"))
    clock.callLater(1.5, slower.callback, None)
    clock.advance(1.5)
    await journal.wait_until(lambda e: e[:2] == ("terminate", "x"))
    clock.advance(0.9)
    assert not stopping.called
    clock.advance(0.1)
    await wait_for(stopping)
    assert await ended(journal, "x") == "killed" and ("terminated", "x") not in journal.items
    assert await ended(journal, "y") == "killed" and ("terminate", "y") not in journal.items
    assert await ended(journal, "z") == "shutdown" and ("terminated", "z") in journal.items
    assert await ended(journal, "sup") == "shutdown"


@pytest_twisted.ensureDeferred
async def test_s13_simple_one_for_one(container: Any) -> None:
    """S13: children added at run time from one template: 1 spec, 3 active;
    stopping the supervisor stops all three."""
    journal: Collector[Any] = Collector()
    template = spec("w", journal, args={"extra": 0})
    sup = await supervise(container, journal, [template], strategy="simple_one_for_one")
    procs = [await sup.start_child({"extra": n}) for n in range(3)]
    assert [p.args["extra"] for p in procs] == [0, 1, 2]
    assert sup.count_children() == {"specs": 1, "active": 3, "supervisors": 0, "workers": 3}
    await container.terminate(sup)
    assert sorted(str(p.id) for p in procs if p.terminated) == sorted(str(p.id) for p in procs)
    assert len(entries(journal, "terminate")) == 3


@pytest_twisted.ensureDeferred
async def test_s14_a_significant_child_ends_the_supervisor(container: Any) -> None:
    """S14: under any_significant, a significant (transient) child exiting normal
    makes the supervisor stop its other child and exit shutdown."""
    journal: Collector[Any] = Collector()
    children = [spec("a", journal), spec("s", journal, restart="transient", significant=True)]
    sup = await supervise(container, journal, children, auto_shutdown="any_significant")
    await crash(container, sup, "s", "normal")
    assert await ended(journal, "sup") == "shutdown"
    assert terminated(journal) == ["s", "a"]


def tree(journal: Any, mid_restart: str) -> list[dict[str, Any]]:
    """top (one_for_one, intensity 2) -> mid (a supervisor, intensity 0) -> w."""
    mid_args = {"journal": journal, "intensity": 0, "clock": task.Clock(),
                "children": [spec("w", journal)]}  # fmt: skip
    mid = {"id": "mid", "start": Sup, "name": "mid", "type": "supervisor",
           "restart": mid_restart, "args": mid_args}  # fmt: skip
    return [mid]


@pytest_twisted.ensureDeferred
async def test_s15_repeated_failures_climb_the_tree(container: Any) -> None:
    """S15: w crashes three times: mid gives up each time; top restarts it
    twice, then gives up itself."""
    journal: Collector[Any] = Collector()
    top = await supervise(container, journal, tree(journal, "permanent"), intensity=2, name="top")
    for n in range(3):
        mid = container.proc_manager.processes[pid(top, "mid")]
        await crash(container, mid, "w")
        if n < 2:
            await journal.wait_until(lambda e, n=n: started(journal).count("mid") == n + 2)
            await wait_for(container.proc_manager.find("client").rpc_send(top.id, "ping"))
    assert await ended(journal, "top") == "shutdown"
    assert [e[2] for e in entries(journal, "exit") if e[1] == "mid"] == ["shutdown"] * 3


@pytest_twisted.ensureDeferred
async def test_s16_a_transient_supervisor_giving_up_stays_down(container: Any) -> None:
    """S16: mid is transient: its shutdown is normal, so top does not restart it."""
    journal: Collector[Any] = Collector()
    top = await supervise(container, journal, tree(journal, "transient"), name="top")
    mid = container.proc_manager.processes[pid(top, "mid")]
    await crash(container, mid, "w")
    assert await ended(journal, "mid") == "shutdown"
    await wait_for(container.proc_manager.find("client").rpc_send(top.id, "ping"))
    assert top.state == "ACTIVE" and pid(top, "mid") is None
    assert started(journal).count("mid") == 1


@pytest.mark.parametrize("ion_broker", BROKERS, indirect=True)
@pytest_twisted.ensureDeferred
async def test_s17_a_request_in_flight_reaches_the_restarted_instance(
    ion_container_factory: Any,
) -> None:
    """S17, on both brokers: a service instance killed mid-request is restarted;
    the request is redelivered to the new instance and its caller gets exactly
    one reply."""
    container = await ion_container_factory()
    journal: Collector[Any] = Collector()
    sup = await supervise(container, journal, [spec("held", journal, HeldService)], intensity=5)
    first = pid(sup, "held")
    client = await (await ion_container_factory()).spawn(Process, name="client")
    replies: Collector[Any] = Collector()
    client.rpc_send("held", "work", 7).addBoth(replies)
    await journal.wait_until(lambda e: e[0] == "work")
    await container.proc_manager.kill(first)
    await replies.wait(1)
    assert replies.items[0]["done"] == 7 and replies.items[0]["by"] not in (None, first)
    assert [e[3] for e in entries(journal, "work")] == [False, True]
    assert replies.items[0]["by"] == pid(sup, "held")
    assert await wait_for(client.rpc_send("held", "echo", "after")) == "after"
    assert len(replies.items) == 1  # and the request ran no third time:
    assert [e[3] for e in entries(journal, "work")] == [False, True]


@pytest_twisted.ensureDeferred
async def test_s22_no_restart_once_stopping(container: Any) -> None:
    """S22: stopping the supervisor while a child's restart waits in its start
    cancels that start; nothing is restarted and the supervisor exits shutdown."""
    journal: Collector[Any] = Collector()
    tries: list[str] = []
    b = spec("b", journal, Restartable, args={"starts": tries, "hold_again": defer.Deferred()})
    sup = await supervise(container, journal, [spec("a", journal), b], intensity=5)
    await crash(container, sup, "b")
    await journal.wait_until(lambda e: e[:2] == ("holding start", "b"))
    await wait_for(container.terminate(sup))
    assert await ended(journal, "sup") == "shutdown"
    assert started(journal) == ["a", "b", "sup"] and len(tries) == 2
    assert all(c["pid"] is None for c in sup.which_children())
    assert not any(p.proc_name == "b" for p in container.proc_manager.processes.values())


@pytest_twisted.ensureDeferred
async def test_a_supervisor_ends_with_its_parent_only(container: Any) -> None:
    """As OTP's: a supervisor started with spawn_link ends when its parent does,
    with its reason (normal too), its children stopped; the exit of another
    linked process that is not its child is only logged."""
    journal: Collector[Any] = Collector()
    client = await container.spawn(Process, name="client")
    parent = await container.spawn(Worker, name="parent", args={"journal": journal})
    other = await container.spawn(Worker, name="other", args={"journal": journal})
    args = {"journal": journal, "children": [spec("w", journal)], "clock": task.Clock()}
    sup = await parent.spawn_link(Sup, name="sup", args=args)
    sup.link(other.id)
    with pytest.raises(exc.ReceivedError):
        await wait_for(client.rpc_send(other.id, "exit", "error:Boom"))
    assert await ended(journal, "other") == "error:Boom"
    await wait_for(client.rpc_send(sup.id, "ping"))  # handled: still there
    assert sup.state == "ACTIVE" and pid(sup, "w") is not None
    with pytest.raises(exc.ReceivedError):
        await wait_for(client.rpc_send(parent.id, "exit", "normal"))
    assert await ended(journal, "sup") == "normal"
    assert ("terminate", "w") in journal.items
