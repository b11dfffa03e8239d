"""Timers on processes: periodic entrypoints declared with L{every}, and one-shot
calls made with C{Process.call_later}, both on the process's clock (its
container's reactor).

A process's L{Timers} start its periodic entrypoints when it becomes ACTIVE and
stop them when it begins to terminate: nothing is scheduled from then on, a run
under way is waited for as handlers are (C{container.terminate_timeout}) and
cancelled if it outlives that or the process is killed, so nothing runs once it
is TERMINATED. A run's error is logged with its traceback, as a handler's is,
and the timer keeps going -- unless the error ends the process as a handler's
would (L{ion.core.process.termination.Termination.crash_reason}: C{self.exit()},
a L{FatalError}, or any error in a class that sets C{crash_on_error}). A run
is cut off (cancelled, an error) past the limit a handler of its process has
(L{ion.core.process.watchdog}).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from weakref import WeakKeyDictionary

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from ion.core import exception as exc
from ion.core.deadline import ended_within
from ion.core.process import context, watchdog

if TYPE_CHECKING:
    from ion.core.process.process import Process

__all__ = ["Later", "Timer", "TimerSpec", "Timers", "declared", "every"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__ion_timer__"


@dataclass(frozen=True, slots=True)
class TimerSpec:
    """How a periodic entrypoint runs: every C{interval} seconds, each run moved
    by up to C{jitter} seconds either way; the first run after one interval, or
    at once when C{now}; with C{overlap}, a run due while the last one is still
    running starts anyway (by default it is skipped and counted)."""

    interval: float
    jitter: float = 0.0
    now: bool = False
    overlap: bool = False


def every(
    interval: float, *, jitter: float = 0.0, now: bool = False, overlap: bool = False
) -> Callable[[F], F]:
    """Declare a process method (plain or C{async def}, no arguments but self)
    a periodic entrypoint; see L{TimerSpec}.

    Runs are due at fixed points (start + k * interval, each moved by a uniform
    draw in [-jitter, +jitter]), so a slow run does not make later ones drift.

    @raise ValueError: C{interval} is not a number > 0, or C{jitter} is not
        between 0 and half the interval (runs would change order).
    """
    if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
        raise ValueError(f"every: expected an interval of seconds > 0, not {interval!r}")
    if (
        isinstance(jitter, bool)
        or not isinstance(jitter, int | float)
        or not 0 <= jitter <= interval / 2
    ):
        raise ValueError(
            f"every: expected a jitter of seconds from 0 to half the interval, not {jitter!r}"
        )
    spec = TimerSpec(float(interval), float(jitter), bool(now), bool(overlap))

    def mark(method: F) -> F:
        setattr(method, _MARK, spec)
        return method

    return mark


_declared: WeakKeyDictionary[type, dict[str, TimerSpec]] = WeakKeyDictionary()


def declared(cls: type) -> dict[str, TimerSpec]:
    """The periodic entrypoints of process class C{cls}, by method name (a
    subclass that overrides one without L{every} removes it)."""
    found = _declared.get(cls)
    if found is None:
        found = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                spec = getattr(value, _MARK, None)
                if isinstance(spec, TimerSpec):
                    found[name] = spec
                else:
                    found.pop(name, None)
        _declared[cls] = found
    return found


class Timer:
    """One periodic entrypoint of one process, with its counts.

    @ivar runs: runs started.
    @ivar skips: runs not started because the last one was still running.
    @ivar errors: runs that ended with an error.
    """

    def __init__(self, timers: Timers, name: str, spec: TimerSpec) -> None:
        self.name = name
        self.spec = spec
        self.runs = self.skips = self.errors = 0
        self._timers = timers
        self._call: Any = None  # an IDelayedCall (whose zope methods mypy cannot call)
        self._start = 0.0
        self._slot = 0  # the grid point of the next run

    @property
    def running(self) -> int:
        """Runs under way."""
        return sum(1 for owner in self._timers._running.values() if owner is self)

    def info(self) -> dict[str, Any]:
        """Its settings and counts (what the container agent's get_info shows)."""
        return {"interval": self.spec.interval, "jitter": self.spec.jitter, "runs": self.runs,
                "skips": self.skips, "errors": self.errors, "running": self.running}  # fmt: skip

    def start(self, now: float) -> None:
        self._start = now
        if self.spec.now:
            self._call = self._timers.clock.callLater(0, self._due)
        else:
            self._schedule(now)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _schedule(self, now: float) -> None:
        """Arm the next run at the next grid point ahead of C{now}, jittered; the
        points the clock passed while the reactor was busy are not made up."""
        spec = self.spec
        self._slot += 1
        point = self._start + self._slot * spec.interval
        if point < now:
            behind = math.ceil((now - point) / spec.interval)
            self._slot += behind
            point += behind * spec.interval
        if spec.jitter:
            point += self._timers.rng.uniform(-spec.jitter, spec.jitter)
        self._call = self._timers.clock.callLater(max(0.0, point - now), self._due)

    def _due(self) -> None:
        self._call = None
        timers = self._timers
        if timers.halted or timers.host.state != "ACTIVE":
            return  # (gone to ERROR: it serves nothing more, and this timer stops)
        if self.running and not self.spec.overlap:
            self.skips += 1
            timers.host.log.debug("{proc}: timer {name} skipped: its last run is still running",
                                  proc=timers.host, name=self.name)  # fmt: skip
        else:
            self.runs += 1
            timers.run(getattr(timers.host, self.name), (), self)
        if not timers.halted:  # (the run may have ended the process)
            self._schedule(timers.clock.seconds())


class Later:
    """A call made with C{call_later}: C{cancel()} it (at any time; once it has
    run, that does nothing), ask whether it is C{pending}."""

    def __init__(self, timers: Timers, delay: float, f: Callable[..., Any], args: tuple) -> None:
        self._timers = timers
        self._f, self._args = f, args
        self._call: Any = timers.clock.callLater(delay, self._due)  # an IDelayedCall

    @property
    def pending(self) -> bool:
        """Whether it is yet to run (not run, not cancelled)."""
        return self._call is not None

    def cancel(self) -> None:
        """Do not run it (no effect once it has run or was cancelled)."""
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
            self._timers._later.discard(self)

    def _due(self) -> None:
        self._call = None
        self._timers._later.discard(self)
        if not self._timers.halted:
            self._timers.run(self._f, self._args, None)


class Timers:
    """The timers of one process: its periodic entrypoints and pending
    C{call_later} calls, and the runs of both under way."""

    def __init__(self, host: Process, rng: random.Random | None = None) -> None:
        self.host = host
        self._rng = rng
        self.clock: Any = None  # the container's reactor, set at attach
        self.halted = False
        self.timers = {name: Timer(self, name, spec) for name, spec in declared(type(host)).items()}
        self.later_errors = 0  # errors of call_later calls
        self._later: set[Later] = set()
        self._running: dict[Deferred[Any], Timer | None] = {}

    @property
    def rng(self) -> random.Random:
        """The random source of the jitter: made at first use (most processes have
        no timer), seeded with the class's C{timer_seed}."""
        if self._rng is None:
            self._rng = random.Random(type(self.host).timer_seed)
        return self._rng

    def info(self) -> dict[str, dict[str, Any]]:
        """Each periodic entrypoint's settings and counts, by name."""
        return {name: timer.info() for name, timer in self.timers.items()}

    @property
    def busy(self) -> bool:
        """Whether a run is under way."""
        return bool(self._running)

    def start(self) -> None:
        """Start the periodic entrypoints (the process is ACTIVE)."""
        if self.halted:
            return
        now = self.clock.seconds()
        for timer in self.timers.values():
            timer.start(now)

    def call_later(self, delay: float, f: Callable[..., Any], *args: Any) -> Later:
        """Run C{f(*args)} (plain or async) C{delay} seconds from now.

        @raise IllegalStateError: the timers are halted (the process terminates).
        @raise ValueError: C{delay} is not a number >= 0.
        """
        if self.halted:
            raise exc.IllegalStateError(f"{self.host} is terminating; it cannot call_later {f!r}")
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not delay >= 0:
            raise ValueError(f"call_later: expected a delay of seconds >= 0, not {delay!r}")
        later = Later(self, float(delay), f, args)
        self._later.add(later)
        return later

    def halt(self) -> None:
        """Schedule nothing more: stop the periodic entrypoints, cancel the
        pending calls (runs under way go on; see L{drain} and L{cancel_running})."""
        self.halted = True
        for timer in self.timers.values():
            timer.stop()
        for later in list(self._later):
            later.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait until no run is under way, for at most C{timeout} seconds."""
        while self._running:
            waited = Deferred.fromCoroutine(_all_ended(list(self._running)))
            if not await ended_within(waited, timeout, self.clock):
                self.host.log.warn("{proc}: {n} timer runs still running after {t}s; cancelled",
                                   proc=self.host, n=len(self._running), t=timeout)  # fmt: skip
                return

    def cancel_running(self) -> None:
        """Cancel the runs still under way (a kill, or they outlived the drain)."""
        running, self._running = self._running, {}
        for d in running:
            d.cancel()

    def run(self, f: Callable[..., Any], args: tuple, timer: Timer | None) -> None:
        """Run C{f(*args)} where the process's handlers run; an async one is
        tracked until it ends; its error is logged and counted."""
        token = context.entered(self.host.place)
        try:
            waited = context.waitable(f(*args))
            if waited is None:
                return
        except BaseException:
            # SystemExit too, as for a handler: one timer's sys.exit() must not stop
            # a container serving many processes.
            self._ended(Failure(), timer, f)
            return
        finally:
            context.left(token)
        if waited.called:
            waited.addErrback(self._ended, timer, f)
            return
        self._running[waited] = timer
        # Bounded as a handler is (its @handler_timeout, else the class's, else
        # process.handler_timeout): a stuck run would otherwise skip its timer for ever.
        limit = watchdog.deadline(f, self.host.runtime.handler_limit, None, self.clock.seconds())
        if limit is None:
            waited.addBoth(self._finished, waited, timer, f)
        else:
            watchdog.watch(waited, limit, self.clock,
                           lambda result: self._finished(result, waited, timer, f),
                           lambda seconds: self._cut_off(waited, timer, f, seconds))  # fmt: skip

    def _cut_off(self, waited: Deferred[Any], timer: Timer | None, f: Any, seconds: float) -> None:
        """A run outlived its limit: it is an error (and it is cancelled)."""
        what = f"timer {timer.name}" if timer is not None else f"call_later {_name(f)}"
        error = exc.HandlerTimeoutError(f"{self.host}: {what} was cut off after {seconds:g}s")
        self._finished(Failure(error), waited, timer, f)

    def _finished(self, result: Any, waited: Deferred[Any], timer: Timer | None, f: Any) -> None:
        self._running.pop(waited, None)
        if isinstance(result, Failure):
            self._ended(result, timer, f)

    def _ended(self, failure: Failure, timer: Timer | None, f: Any) -> None:
        """A run failed: log it as a handler's error is, count it, and end the
        process if the error does (a run cancelled at termination is neither)."""
        host = self.host
        if failure.check(CancelledError) and self.halted:
            return
        what = f"timer {timer.name}" if timer is not None else f"call_later {_name(f)}"
        if timer is not None:
            timer.errors += 1
        else:
            self.later_errors += 1
        # The traceback as text, not a logged Failure, which test runners
        # (trial) count as an unhandled error: it is handled, and counted.
        host.log.error("{proc}: {what} raised:\n{traceback}", proc=host, what=what,
                       traceback=failure.getTraceback().rstrip("\n"))  # fmt: skip
        reason = host.crash_reason(failure)
        if reason is not None:
            host.crash(reason)


async def _all_ended(runs: list[Deferred[Any]]) -> None:
    """Wait until each of C{runs} has ended (their results stay theirs)."""
    for d in runs:
        if not d.called:
            done: Deferred[None] = Deferred()
            d.addBoth(_tell, done)
            await done


def _tell(result: Any, done: Deferred[None]) -> Any:
    done.callback(None)  # (cancelled by a waiter gone: ignored)
    return result


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or repr(f)
