"""Processes with timers, for tests/core/process/test_timers.py (a module of
their own, so an app file can name one)."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.core.process.timers import every
from tests.helpers import Collector


class Ticker(ServiceProcess):
    """Counts its runs, each with the clock's time."""

    service_name = "ticker"
    timer_seed = 7

    def on_init(self) -> None:
        self.ticks: list[float] = []

    @every(5.0)
    def tick(self) -> None:
        self.ticks.append(self.timers.clock.seconds())

    def op_ticks(self, content: Any, headers: dict, msg: Any) -> dict[str, Any]:
        return {"ticks": len(self.ticks), "info": self.timers.info()}


class FastTicker(Ticker):
    """Ticks often, on the real reactor; C{seen} collects its runs for a test to wait on."""

    service_name = "fastticker"

    def on_init(self) -> None:
        super().on_init()
        self.seen: Collector[float] = Collector()

    @every(0.02, now=True)
    def tick(self) -> None:
        self.seen(self.timers.clock.seconds())


class Jittery(Process):
    timer_seed = 11

    def on_init(self) -> None:
        self.ticks: list[float] = []

    @every(10.0, jitter=2.0)
    def tick(self) -> None:
        self.ticks.append(self.timers.clock.seconds())


class Slow(Process):
    """Each run waits on a gate the test opens; records starts, ends and cancels."""

    def on_init(self) -> None:
        self.gates: list[defer.Deferred[None]] = []
        self.ended = 0
        self.cancelled = 0

    @every(1.0)
    async def work(self) -> None:
        gate: defer.Deferred[None] = defer.Deferred()
        self.gates.append(gate)
        try:
            await gate
        except defer.CancelledError:
            self.cancelled += 1
            raise
        self.ended += 1


class Overlapping(Slow):
    @every(1.0, overlap=True)
    async def work(self) -> None:
        await Slow.work(self)


class Failing(Process):
    """Its timer raises on every other run."""

    def on_init(self) -> None:
        self.calls = 0

    @every(2.0)
    def flaky(self) -> None:
        self.calls += 1
        if self.calls % 2:
            raise ValueError(f"flaky run {self.calls}")


class Crashing(Failing):
    crash_on_error = True


class LaterThenFailingActivate(Ticker):
    """Arms a call_later in on_activate, then fails to activate."""

    service_name = "laterthenfailing"
    made: list[Ticker] = []  # (each instance, for the test to look at after the failed spawn)

    def on_activate(self) -> None:
        self.made.append(self)
        self.call_later(1, self.ticks.append, "later")
        raise RuntimeError("no")


class Bounded(Slow):
    """Its runs may take 2.5 s (the class's handler_timeout), as its handlers."""

    handler_timeout = 2.5
