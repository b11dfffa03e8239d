"""Timers on processes (L{ion.core.process.timers}): periodic entrypoints run at
their interval on the process's clock, with jitter in bounds, skipping a run
while the last one runs; errors are logged and the timer goes on; they start
when the process is ACTIVE and nothing runs once it is TERMINATED; call_later
fires, and is cancelled by terminate."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.internet.task import Clock

from ion.core import exception as exc
from ion.core.cc.agent_ops import process_record
from ion.core.process.process import Process
from ion.core.process.timers import Timers, declared, every
from ion.test.fakes import OfflineContainer
from tests.core.process.timed import (
    Bounded,
    Crashing,
    Failing,
    Jittery,
    LaterThenFailingActivate,
    Overlapping,
    Slow,
    Ticker,
)
from tests.helpers import wait_for


async def _spawned(cls: type[Process], clock: Clock) -> tuple[OfflineContainer, Any]:
    container = OfflineContainer(reactor=clock)
    return container, await container.spawn(cls)


def _advance(clock: Clock, seconds: float, step: float = 0.5) -> None:
    """Advance the clock in steps, as time passes (calls it arms meanwhile run)."""
    for _ in range(round(seconds / step)):
        clock.advance(step)


@pytest_twisted.ensureDeferred
async def test_a_timer_runs_at_its_interval_from_activation() -> None:
    clock = Clock()
    clock.advance(100)
    container, ticker = await _spawned(Ticker, clock)
    _advance(clock, 4.5)
    assert ticker.ticks == []
    _advance(clock, 16)
    assert ticker.ticks == [105.0, 110.0, 115.0, 120.0]
    assert ticker.timers.info()["tick"] == {"interval": 5.0, "jitter": 0.0, "runs": 4,
                                            "skips": 0, "errors": 0, "running": 0}  # fmt: skip
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_a_late_clock_does_not_make_up_the_runs_it_passed() -> None:
    """The reactor busy for 12 s: one run then, the next on the grid (not three at once)."""
    clock = Clock()
    container, ticker = await _spawned(Ticker, clock)
    clock.advance(17)
    assert ticker.ticks == [17.0]
    _advance(clock, 3)
    assert ticker.ticks == [17.0, 20.0]
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_jitter_moves_each_run_within_its_bounds() -> None:
    clock = Clock()
    container, proc = await _spawned(Jittery, clock)
    _advance(clock, 1000, step=0.25)
    ticks = proc.ticks
    assert len(ticks) in (99, 100)
    offsets = [t - 10 * round(t / 10) for t in ticks]
    assert all(-2.0 <= o <= 2.0 for o in offsets)
    assert len({round(o, 2) for o in offsets}) > 10  # moved, not a constant offset
    await container.stop()


def test_jitter_comes_from_the_injected_random_source() -> None:
    """Two Timers with sources of one seed draw the same run times."""

    draws = []
    for _ in range(2):
        clock = Clock()
        timers = Timers(Jittery(), random.Random(5))
        timers.clock = clock
        timers.timers["tick"].start(0.0)
        draws.append(clock.getDelayedCalls()[0].getTime())
    assert draws[0] == draws[1] and draws[0] != 10.0


def test_bad_timer_declarations_are_refused() -> None:
    for interval in (0, -1, "5", True, float("nan")):
        with pytest.raises(ValueError, match="interval"):
            every(interval)  # type: ignore[arg-type]
    for jitter in (-0.1, 3.0, "1"):
        with pytest.raises(ValueError, match="jitter"):
            every(5.0, jitter=jitter)  # type: ignore[arg-type]


def test_a_subclass_overriding_a_timer_method_plainly_removes_the_timer() -> None:
    class Plain(Ticker):
        def tick(self) -> None:
            pass

    assert set(declared(Ticker)) == {"tick"}
    assert declared(Plain) == {}


@pytest_twisted.ensureDeferred
async def test_a_run_due_while_the_last_one_runs_is_skipped_and_counted() -> None:
    clock = Clock()
    container, proc = await _spawned(Slow, clock)
    clock.advance(1)
    assert len(proc.gates) == 1
    clock.advance(1)
    clock.advance(1)
    assert len(proc.gates) == 1
    assert proc.timers.info()["work"]["skips"] == 2
    assert proc.timers.info()["work"]["running"] == 1
    proc.gates[0].callback(None)
    clock.advance(1)
    assert len(proc.gates) == 2 and proc.ended == 1
    proc.gates[1].callback(None)
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_with_overlap_a_due_run_starts_while_the_last_one_runs() -> None:
    clock = Clock()
    container, proc = await _spawned(Overlapping, clock)
    _advance(clock, 3, step=1)
    assert len(proc.gates) == 3
    assert proc.timers.info()["work"] == {"interval": 1.0, "jitter": 0.0, "runs": 3,
                                                "skips": 0, "errors": 0, "running": 3}  # fmt: skip
    for gate in proc.gates:
        gate.callback(None)
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_an_error_is_logged_with_its_traceback_and_the_timer_goes_on(logs: Any) -> None:
    clock = Clock()
    container, proc = await _spawned(Failing, clock)
    _advance(clock, 8, step=1)
    assert proc.calls == 4 and proc.state == "ACTIVE"
    assert proc.timers.info()["flaky"]["errors"] == 2
    assert proc.timers.info()["flaky"]["runs"] == 4
    raised = logs.texts_with("timer flaky raised:")
    assert len(raised) == 2
    assert "Traceback" in raised[0] and "ValueError: flaky run 1" in raised[0]
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_a_run_past_its_handler_timeout_is_cut_off_and_the_timer_goes_on(
    logs: Any,
) -> None:
    """A stuck run would skip its timer for ever: past the class's handler_timeout
    it is cancelled and counted as an error; the next run is on time."""
    clock = Clock()
    container, proc = await _spawned(Bounded, clock)
    clock.advance(1)
    _advance(clock, 2)
    assert proc.cancelled == 0 and proc.timers.info()["work"]["skips"] == 2
    clock.advance(0.5)
    assert proc.cancelled == 1 and proc.timers.info()["work"]["errors"] == 1
    assert proc.timers.info()["work"]["running"] == 0 and proc.state == "ACTIVE"
    assert any("HandlerTimeoutError" in t for t in logs.texts_with("was cut off after 2.5s"))
    clock.advance(0.5)
    assert len(proc.gates) == 2  # at 4 s, on the grid
    proc.gates[1].callback(None)
    assert proc.ended == 1
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_an_error_ends_a_crash_on_error_process_as_a_handlers_would() -> None:
    clock = Clock()
    container, proc = await _spawned(Crashing, clock)
    clock.advance(2)  # (offline, the crash's terminate ends at once)
    assert proc.terminated
    assert proc.exit_reason == "error:ValueError"
    _advance(clock, 10, step=1)
    assert proc.calls == 1


@pytest_twisted.ensureDeferred
async def test_exit_from_a_timer_ends_the_process() -> None:
    class Quitter(Process):
        @every(1.0)
        def stop_now(self) -> None:
            self.exit("normal")

    clock = Clock()
    container, proc = await _spawned(Quitter, clock)
    clock.advance(1)
    assert proc.terminated
    assert proc.exit_reason == "normal"


@pytest_twisted.ensureDeferred
async def test_terminate_stops_the_timer_and_waits_for_the_run_under_way() -> None:
    clock = Clock()
    container, proc = await _spawned(Slow, clock)
    clock.advance(1)
    terminating = defer.ensureDeferred(container.terminate(proc))
    assert proc.state == "TERMINATING" and not terminating.called
    _advance(clock, 3, step=1)  # due runs: none starts while terminating
    assert len(proc.gates) == 1
    proc.gates[0].callback(None)
    await wait_for(terminating)
    assert proc.terminated and proc.ended == 1 and proc.cancelled == 0
    _advance(clock, 5, step=1)
    assert len(proc.gates) == 1 and clock.getDelayedCalls() == []


@pytest_twisted.ensureDeferred
async def test_a_run_outliving_the_terminate_timeout_is_cancelled() -> None:
    clock = Clock()
    container, proc = await _spawned(Slow, clock)
    clock.advance(1)
    terminating = defer.ensureDeferred(container.terminate(proc))
    clock.advance(proc.config.get("container.terminate_timeout", 10.0))
    await wait_for(terminating)
    assert proc.terminated and proc.cancelled == 1 and proc.ended == 0
    assert proc.timers.info()["work"]["errors"] == 0  # cancelled by terminate: not an error


@pytest_twisted.ensureDeferred
async def test_kill_cancels_the_run_under_way_at_once() -> None:
    clock = Clock()
    container, proc = await _spawned(Slow, clock)
    clock.advance(1)
    await wait_for(defer.ensureDeferred(proc.kill()))
    assert proc.terminated and proc.cancelled == 1
    _advance(clock, 5, step=1)
    assert len(proc.gates) == 1


class GatedActivate(Ticker):
    service_name = "gatedactivate"

    def on_init(self) -> None:
        super().on_init()
        self.activating: defer.Deferred[None] = defer.Deferred()

    async def on_activate(self) -> None:
        await self.activating


@pytest_twisted.ensureDeferred
async def test_timers_start_only_once_the_process_is_active() -> None:
    clock = Clock()
    container = OfflineContainer(reactor=clock)
    spawning = defer.ensureDeferred(container.spawn(GatedActivate))
    [proc] = [p for p in container.proc_manager.processes.values() if isinstance(p, Ticker)]
    _advance(clock, 12)
    assert proc.ticks == [] and not spawning.called
    proc.activating.callback(None)
    await wait_for(spawning)
    _advance(clock, 5)
    assert proc.ticks == [17.0]
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_a_process_gone_to_error_runs_its_timer_no_more() -> None:
    clock = Clock()
    container, ticker = await _spawned(Ticker, clock)
    clock.advance(5)
    with pytest.raises(exc.IllegalStateError):
        await ticker.activate()  # (not allowed: the process goes to ERROR)
    assert ticker.state == "ERROR"
    _advance(clock, 20)
    assert ticker.ticks == [5.0] and clock.getDelayedCalls() == []
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_a_process_whose_activate_fails_runs_no_timer_nor_call_later() -> None:
    """Its periodic entrypoint never starts, and a call_later its on_activate
    armed before failing never runs."""
    clock = Clock()
    container = OfflineContainer(reactor=clock)
    with pytest.raises(exc.SpawnError, match="no"):
        await container.spawn(LaterThenFailingActivate)
    proc = LaterThenFailingActivate.made.pop()
    assert clock.getDelayedCalls() == []
    clock.advance(20)
    assert proc.ticks == []


@pytest_twisted.ensureDeferred
async def test_call_later_fires_with_its_arguments_where_handlers_run() -> None:
    from ion.core.process import context

    clock = Clock()
    container, proc = await _spawned(Ticker, clock)
    seen: list[Any] = []

    async def later(a: int, b: str) -> None:
        seen.append((a, b, context.here("test").process))

    handle = proc.call_later(3, later, 1, "x")
    clock.advance(2.9)
    assert seen == [] and handle.pending
    clock.advance(0.1)
    assert seen == [(1, "x", proc)] and not handle.pending
    handle.cancel()  # once it ran: nothing
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_call_later_cancelled_by_its_handle_or_by_terminate() -> None:
    clock = Clock()
    container, proc = await _spawned(Ticker, clock)
    seen: list[str] = []
    first = proc.call_later(1, seen.append, "first")
    proc.call_later(2, seen.append, "second")
    first.cancel()
    await container.terminate(proc)
    _advance(clock, 5)
    assert seen == [] and clock.getDelayedCalls() == []
    with pytest.raises(exc.IllegalStateError, match="call_later"):
        proc.call_later(1, seen.append, "late")


@pytest_twisted.ensureDeferred
async def test_call_later_errors_are_logged_and_counted(logs: Any) -> None:
    clock = Clock()
    container, proc = await _spawned(Ticker, clock)

    def boom() -> None:
        raise KeyError("boom")

    async def later_boom() -> None:
        await defer.succeed(None)
        await task.deferLater(clock, 1, lambda: None)
        raise KeyError("later boom")

    proc.call_later(1, boom)
    proc.call_later(1, later_boom)
    clock.advance(1)
    assert proc.timers.later_errors == 1 and proc.state == "ACTIVE"
    assert any("KeyError: 'boom'" in t for t in logs.texts_with("call_later"))
    clock.advance(1)
    assert proc.timers.later_errors == 2 and proc.state == "ACTIVE"
    assert any("KeyError: 'later boom'" in t for t in logs.texts_with("call_later"))
    with pytest.raises(ValueError, match="delay"):
        proc.call_later(-1, boom)
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_timer_counts_show_in_the_agents_process_record() -> None:
    clock = Clock()
    container, proc = await _spawned(Failing, clock)
    _advance(clock, 4, step=1)
    assert process_record(proc)["timers"]["flaky"]["runs"] == 2
    assert process_record(proc)["timers"]["flaky"]["errors"] == 1
    proc.call_later(1, lambda: {}["boom"])
    _advance(clock, 1, step=1)
    assert process_record(proc)["later_errors"] == 1
    await container.stop()


APP = """\
type: application
name: ticking
version: "0.1"
description: a process with a timer
mod: [ion.core.pack.processapp, [ticking, tests.core.process.timed, FastTicker], {}]
modules: [tests.core.process.timed]
registered: [fastticker]
applications: [ioncore]
config: {}
"""


@pytest_twisted.ensureDeferred
async def test_a_process_of_an_app_file_runs_its_timer(container: Any, tmp_path: Path) -> None:
    """On the embedded broker and the real reactor: its runs show in get_info."""
    (tmp_path / "ticking.app").write_text(APP)
    await container.start_app(tmp_path / "ticking.app")
    client = await container.spawn(Process, name="client")
    ticker = container.proc_manager.find("ticking")
    await ticker.seen.wait(3)
    info = await wait_for(client.rpc_send(str(container.agent.id), "get_info"))
    [record] = [p for p in info["processes"] if p["name"] == "ticking"]
    assert record["timers"]["tick"]["runs"] >= 3
    await container.stop_app("ticking")
    assert ticker.terminated and ticker.timers.timers["tick"]._call is None
