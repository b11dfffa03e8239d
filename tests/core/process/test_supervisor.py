"""Supervisors, scenarios S1-S11 of the supervision notes: start and stop order,
the strategies, restart types, intensity on a fake clock, start failures."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import task

from ion.core import exception as exc
from ion.core.process.process import Process
from tests.core.process.workers import Restartable, Sup, Worker, ended, entries
from tests.helpers import Collector, wait_for


def spec(child_id: str, journal: Any, cls: type = Worker, **fields: Any) -> dict[str, Any]:
    args = {"journal": journal, **fields.pop("args", {})}
    return {"id": child_id, "start": cls, "name": child_id, "args": args, **fields}


async def supervise(container: Any, journal: Any, children: list, **flags: Any) -> Any:
    """A started supervisor named sup, on a fake clock (C{sup.clock})."""
    flags.setdefault("clock", task.Clock())
    args = {"journal": journal, "children": children, **flags}
    return await container.spawn(Sup, name=flags.pop("name", "sup"), args=args)


async def crash(container: Any, sup: Any, child_id: str, reason: str = "error:Boom") -> None:
    """Make child C{child_id} exit with C{reason} from its own handler."""
    client = container.proc_manager.find("client") or await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedError):
        await wait_for(client.rpc_send(pid(sup, child_id), "exit", reason))


def pid(sup: Any, child_id: str) -> str | None:
    return next(c["pid"] for c in sup.which_children() if c["id"] == child_id)


def started(journal: Any) -> list[str]:
    return [e[1] for e in entries(journal, "start")]


def terminated(journal: Any) -> list[str]:
    return [e[1] for e in entries(journal, "terminate")]


async def starts(journal: Any, n: int, container: Any, sup: Any) -> None:
    """Wait for the n-th start, then until the supervisor answers a ping (it
    has recorded the child by then)."""
    await journal.wait_until(lambda e: len(entries(journal, "start")) >= n)
    client = container.proc_manager.find("client")
    await wait_for(client.rpc_send(sup.id, "ping"))


@pytest_twisted.ensureDeferred
async def test_s1_start_in_order_stop_in_reverse(container: Any) -> None:
    """S1: children start a, b, c; stopping the supervisor runs their terminate
    hooks c, b, a, and the supervisor exits shutdown."""
    journal: Collector[Any] = Collector()
    sup = await supervise(container, journal, [spec(n, journal) for n in "abc"])
    assert started(journal) == ["a", "b", "c", "sup"]
    await container.terminate(sup)
    assert terminated(journal) == ["c", "b", "a"]
    assert await ended(journal, "sup") == "shutdown"
    assert sup.count_children()["active"] == 0


@pytest_twisted.ensureDeferred
async def test_s2_one_for_one_restarts_only_the_crashed_child(container: Any) -> None:
    """S2: b exits boom: b alone restarts, with a new pid and the same id."""
    journal: Collector[Any] = Collector()
    sup = await supervise(container, journal, [spec(n, journal) for n in "abc"], intensity=5)
    before = {c["id"]: c["pid"] for c in sup.which_children()}
    await crash(container, sup, "b", "boom")
    await starts(journal, 5, container, sup)
    after = {c["id"]: c for c in sup.which_children()}
    assert after["b"]["pid"] not in (None, before["b"]) and after["b"]["restarts"] == 1
    assert (after["a"]["pid"], after["c"]["pid"]) == (before["a"], before["c"])
    assert terminated(journal) == ["b"]


@pytest_twisted.ensureDeferred
async def test_s3_one_for_all_restarts_everyone(container: Any) -> None:
    """S3: b crashes: c then a are terminated, then a, b, c start again with new pids."""
    journal: Collector[Any] = Collector()
    children = [spec(n, journal) for n in "abc"]
    sup = await supervise(container, journal, children, strategy="one_for_all")
    before = {c["id"]: c["pid"] for c in sup.which_children()}
    await crash(container, sup, "b")
    await starts(journal, 7, container, sup)
    assert terminated(journal) == ["b", "c", "a"]
    assert started(journal)[4:] == ["a", "b", "c"]
    assert all(pid(sup, n) not in (None, before[n]) for n in "abc")


@pytest_twisted.ensureDeferred
async def test_s4_rest_for_one_restarts_the_rest(container: Any) -> None:
    """S4: b crashes: c is terminated, b and c restarted, a untouched."""
    journal: Collector[Any] = Collector()
    children = [spec(n, journal) for n in "abc"]
    sup = await supervise(container, journal, children, strategy="rest_for_one")
    a = pid(sup, "a")
    await crash(container, sup, "b")
    await starts(journal, 6, container, sup)
    assert terminated(journal) == ["b", "c"] and started(journal)[4:] == ["b", "c"]
    assert pid(sup, "a") == a


@pytest_twisted.ensureDeferred
async def test_s5_transient_children_restart_on_abnormal_exits_only(container: Any) -> None:
    """S5: transient t1, t2, t3 exit normal, shutdown:x, error:Boom: only t3
    restarts; t1 and t2 stay listed with no pid."""
    journal: Collector[Any] = Collector()
    children = [spec(n, journal, restart="transient") for n in ("t1", "t2", "t3")]
    sup = await supervise(container, journal, children, intensity=5)
    for child_id, reason in (("t1", "normal"), ("t2", "shutdown:x"), ("t3", "error:Boom")):
        await crash(container, sup, child_id, reason)
    await starts(journal, 5, container, sup)
    assert started(journal)[4:] == ["t3"]
    assert [(c["id"], c["pid"] is None) for c in sup.which_children()] == [
        ("t1", True),
        ("t2", True),
        ("t3", False),
    ]


@pytest_twisted.ensureDeferred
async def test_s6_temporary_children_under_one_for_all(container: Any) -> None:
    """S6: a temporary child's crash restarts nothing and removes it; a's crash
    stops and removes a temporary sibling and restarts a and c."""
    journal: Collector[Any] = Collector()
    children = [spec("a", journal), spec("tmp", journal, restart="temporary"), spec("c", journal)]
    sup = await supervise(container, journal, children, strategy="one_for_all", intensity=5)
    a, c = pid(sup, "a"), pid(sup, "c")
    await crash(container, sup, "tmp")
    await ended(journal, "tmp")
    client = container.proc_manager.find("client")
    await wait_for(client.rpc_send(sup.id, "ping"))  # the supervisor handled the exit
    assert [ch["id"] for ch in sup.which_children()] == ["a", "c"]
    assert (pid(sup, "a"), pid(sup, "c")) == (a, c)

    children = [spec("a", journal), spec("tmp", journal, restart="temporary"), spec("c", journal)]
    sup2 = await supervise(container, journal, children, strategy="one_for_all", name="sup2")
    await crash(container, sup2, "a")
    await journal.wait_until(lambda e: started(journal).count("c") == 3)
    assert [ch["id"] for ch in sup2.which_children()] == ["a", "c"]
    assert terminated(journal)[-2:] == ["c", "tmp"]


@pytest_twisted.ensureDeferred
async def test_s7_the_second_crash_within_the_period_gives_up(container: Any) -> None:
    """S7: with the defaults (1 in 5 s), a crashing at t=0 and t=1 makes the
    supervisor stop c then b and exit shutdown."""
    journal: Collector[Any] = Collector()
    sup = await supervise(container, journal, [spec(n, journal) for n in "abc"])
    await crash(container, sup, "a")
    await starts(journal, 5, container, sup)
    sup.clock.advance(1)
    await crash(container, sup, "a")
    assert await ended(journal, "sup") == "shutdown"
    assert terminated(journal) == ["a", "a", "c", "b"]


@pytest_twisted.ensureDeferred
async def test_s8_the_window_slides(container: Any) -> None:
    """S8: crashes at t=0 and t=6 are both restarted (1 in 5 s)."""
    journal: Collector[Any] = Collector()
    sup = await supervise(container, journal, [spec(n, journal) for n in "abc"])
    await crash(container, sup, "a")
    await starts(journal, 5, container, sup)
    sup.clock.advance(6)
    await crash(container, sup, "a")
    await starts(journal, 6, container, sup)
    assert sup.state == "ACTIVE" and started(journal)[4:] == ["a", "a"]


@pytest_twisted.ensureDeferred
async def test_s9_intensity_zero_gives_up_at_the_first_crash(container: Any) -> None:
    """S9: with intensity 0 any crash stops the supervisor."""
    journal: Collector[Any] = Collector()
    sup = await supervise(container, journal, [spec(n, journal) for n in "ab"], intensity=0)
    await crash(container, sup, "b")
    assert await ended(journal, "sup") == "shutdown"
    assert started(journal) == ["a", "b", "sup"] and terminated(journal) == ["b", "a"]


@pytest_twisted.ensureDeferred
async def test_s10_a_child_failing_to_start_fails_the_supervisor(container: Any) -> None:
    """S10: [a, b (init raises), c]: a starts and is stopped, c never starts, and
    the supervisor's start fails with failed_to_start_child(b, error:...)."""
    journal: Collector[Any] = Collector()
    children = [
        spec("a", journal),
        spec("b", journal, args={"fail_init": True}),
        spec("c", journal),
    ]
    with pytest.raises(exc.SpawnError) as raised:
        await supervise(container, journal, children)
    assert "failed_to_start_child(b, error:RuntimeError)" in raised.value.reason
    assert started(journal) == ["a"] and "a" in terminated(journal)
    assert "c" not in terminated(journal)


@pytest_twisted.ensureDeferred
async def test_s11_failed_restarts_count_toward_intensity(container: Any, logs: Any) -> None:
    """S11: r crashes and cannot start again: three attempts (intensity 3) are
    logged as start errors, then the supervisor exits shutdown."""
    journal: Collector[Any] = Collector()
    tries: list[str] = []
    r = spec("r", journal, Restartable, args={"starts": tries, "fail_again": True})
    sup = await supervise(container, journal, [r], intensity=3)
    await crash(container, sup, "r")
    assert await ended(journal, "sup") == "shutdown"
    assert len(tries) == 4  # the first start and three attempts
    assert len(logs.texts_with("child r failed to start")) == 3
    assert logs.texts_with("reached_max_restart_intensity")
