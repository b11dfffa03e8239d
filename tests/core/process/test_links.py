"""Links and monitors (scenarios S18-S21, S23 of the supervision notes): exit
signals, trap_exits, noproc, demonitor, per-pair order, across containers."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from ion.core import exception as exc
from ion.core.process.process import Process
from tests.core.process.workers import Sender, Trapper, Worker, ended, entries
from tests.helpers import Collector, wait_for


async def spawn(container: Any, cls: type, name: str, journal: Any) -> Any:
    return await container.spawn(cls, name=name, args={"journal": journal})


async def end(client: Process, proc: Any, reason: str) -> None:
    """Make C{proc} exit with C{reason} from its own handler."""
    with pytest.raises(exc.ReceivedError):
        await wait_for(client.rpc_send(proc.id, "exit", reason))


@pytest_twisted.ensureDeferred
async def test_s18_a_linked_process_dies_of_an_abnormal_exit_only(container: Any) -> None:
    """S18: A (not trapping) survives B's normal exit, then exits error:X, hooks
    run, when a newly linked B exits error:X."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Worker, "a", journal)
    client = await container.spawn(Process, name="client")
    b = await spawn(container, Worker, "b", journal)
    a.link(b.id)
    assert str(a.id) in b.links and str(b.id) in a.links
    await end(client, b, "normal")
    assert await wait_for(client.rpc_send(a.id, "echo", "after")) == "after"  # after the signal
    assert a.state == "ACTIVE" and a.links == frozenset()
    b2 = await spawn(container, Worker, "b2", journal)
    a.link(b2.id)
    await end(client, b2, "error:X")
    assert await ended(journal, "a") == "error:X"
    assert ("terminate", "a") in journal.items


@pytest_twisted.ensureDeferred
async def test_a_shutdown_of_a_linked_process_ends_one_not_trapping(container: Any) -> None:
    """As in OTP, only normal is ignored: a linked process asked to stop (shutdown)
    takes a process that does not trap exits with it, with that reason."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Worker, "a", journal)
    b = await spawn(container, Worker, "b", journal)
    a.link(b.id)
    await container.terminate(b)
    assert await ended(journal, "a") == "shutdown"


@pytest_twisted.ensureDeferred
async def test_s19_a_trapping_process_gets_every_reason(container: Any) -> None:
    """S19: trapping exits, A gets on_exit with normal, error:X and killed."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Trapper, "a", journal)
    client = await container.spawn(Process, name="client")
    bs = [await spawn(container, Worker, f"b{n}", journal) for n in range(3)]
    for b in bs:
        a.link(b.id)
    await end(client, bs[0], "normal")
    await end(client, bs[1], "error:X")
    await container.proc_manager.kill(bs[2])
    await journal.wait_until(lambda e: len(entries(journal, "on_exit")) == 3)
    got = {e[2]: e[3] for e in entries(journal, "on_exit")}
    assert got == {str(bs[0].id): "normal", str(bs[1].id): "error:X", str(bs[2].id): "killed"}
    assert a.state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_killed_propagates_as_killed(container: Any) -> None:
    """A process linked (not trapping) to a killed one exits killed, its hooks run."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Worker, "a", journal)
    b = await spawn(container, Worker, "b", journal)
    b.link(a.id)
    await container.proc_manager.kill(b)
    assert await ended(journal, "a") == "killed" and ("terminate", "a") in journal.items


@pytest_twisted.ensureDeferred
async def test_s20_a_dead_pid_gives_noproc_at_once(container: Any) -> None:
    """S20: monitoring a dead pid gives on_down(noproc); linking to it while
    trapping, on_exit(noproc)."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Trapper, "a", journal)
    b = await spawn(container, Worker, "b", journal)
    await container.terminate(b)
    ref = a.monitor(b.id)
    a.link(b.id)
    await journal.wait_until(lambda e: e[0] == "on_exit")
    await journal.wait_until(lambda e: e[0] == "on_down")
    assert entries(journal, "on_down") == [("on_down", "a", ref, str(b.id), "noproc")]
    assert entries(journal, "on_exit") == [("on_exit", "a", str(b.id), "noproc")]


@pytest_twisted.ensureDeferred
async def test_s21_monitors_are_one_per_call_and_demonitor_drops_one(container: Any) -> None:
    """S21: two monitors of B make two refs; after demonitoring one (flush),
    B's exit gives exactly one on_down, with the other ref."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Worker, "a", journal)
    b = await spawn(container, Worker, "b", journal)
    first, second = a.monitor(b.id), a.monitor(b.id)
    assert first != second
    a.demonitor(first, flush=True)
    await container.terminate(b)
    await journal.wait_until(lambda e: e[0] == "on_down")
    client = await container.spawn(Process, name="client")
    await wait_for(client.rpc_send(a.id, "echo", "after"))  # any later DOWN came before this
    assert entries(journal, "on_down") == [("on_down", "a", second, str(b.id), "shutdown")]
    assert a.state == "ACTIVE"  # a monitor never ends the watcher


@pytest_twisted.ensureDeferred
async def test_s23_an_exit_signal_comes_after_earlier_messages(container: Any) -> None:
    """S23: B sends m1 to A, then exits error:X; A (linked, trapping) handles m1
    before on_exit."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Trapper, "a", journal)
    b = await spawn(container, Sender, "b", journal)
    a.link(b.id)
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedError):
        await wait_for(
            client.rpc_send(b.id, "send_then_exit", {"to": str(a.id), "reason": "error:X"})
        )
    await journal.wait_until(lambda e: e[0] == "on_exit")
    seen = [e[0] for e in journal.items if e[1] == "a" and e[0] in ("echo", "on_exit")]
    assert seen == ["echo", "on_exit"]


@pytest_twisted.ensureDeferred
async def test_unlink_stops_exit_signals(container: Any) -> None:
    """After unlink, B's abnormal exit leaves A alone; linking twice is one link."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Worker, "a", journal)
    b = await spawn(container, Worker, "b", journal)
    a.link(b.id)
    a.link(b.id)
    a.unlink(b.id)
    assert a.links == b.links == frozenset()
    await container.proc_manager.kill(b)
    client = await container.spawn(Process, name="client")
    assert await wait_for(client.rpc_send(a.id, "echo", "alive")) == "alive"


@pytest_twisted.ensureDeferred
async def test_links_and_monitors_across_containers(make_container: Any) -> None:
    """A link and a monitor to a process of another container (same broker) are
    signals recorded there; its exit reaches A; a pid nobody serves gives noproc."""
    c1, c2 = await make_container(), await make_container()
    journal: Collector[Any] = Collector()
    a = await spawn(c1, Trapper, "a", journal)
    b = await spawn(c2, Worker, "b", journal)
    a.link(b.id)
    ref = a.monitor(b.id)
    client = await c1.spawn(Process, name="client")
    assert await wait_for(client.rpc_send(b.id, "echo", "sync")) == "sync"  # the signals came first
    assert str(a.id) in b.links
    await end(client, b, "error:X")
    await journal.wait_until(lambda e: e[0] == "on_down")
    await journal.wait_until(lambda e: e[0] == "on_exit")
    assert entries(journal, "on_exit") == [("on_exit", "a", str(b.id), "error:X")]
    assert entries(journal, "on_down") == [("on_down", "a", ref, str(b.id), "error:X")]
    ghost = "ghost.1@nowhere"
    a.link(ghost)
    await journal.wait_until(lambda e: e[0] == "on_exit" and e[2] == ghost)
    assert entries(journal, "on_exit")[-1][3] == "noproc"


@pytest_twisted.ensureDeferred
async def test_spawn_link_and_spawn_monitor(container: Any) -> None:
    """spawn_link links the new process both ways; spawn_monitor returns it with
    a reference whose on_down comes when it ends."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Trapper, "a", journal)
    b = await a.spawn_link(Worker, name="b", args={"journal": journal})
    assert str(b.id) in a.links and str(a.id) in b.links and b.parent is a
    c, ref = await a.spawn_monitor(Worker, name="c", args={"journal": journal})
    await container.proc_manager.kill(b)
    await container.proc_manager.kill(c)
    await journal.wait_until(lambda e: entries(journal, "on_down") != [])
    await journal.wait_until(lambda e: entries(journal, "on_exit") != [])
    assert [e[2:] for e in entries(journal, "on_exit")] == [(str(b.id), "killed")]
    assert [e[2:] for e in entries(journal, "on_down")] == [(ref, str(c.id), "killed")]
