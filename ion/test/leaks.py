"""Reactor leftovers: what a test started and did not stop.

Take a L{ReactorState} before, then L{wait_until_clean} after: it waits (up to a
deadline, on the reactor's own turns) for the delayed calls, readers and
writers created since the snapshot to go, and returns the ones that stayed,
and the delayed calls that went by firing instead of being cancelled (a timer
the test left running is as much a leak when it fires during teardown as when
it is still pending). L{assert_clean} raises L{LeftoversError} naming them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer


class LeftoversError(AssertionError):
    """A test left delayed calls, sockets or broker queues behind."""

    def __init__(self, leftovers: list[str]) -> None:
        self.leftovers = leftovers
        super().__init__("left behind:\n  " + "\n  ".join(leftovers))


@dataclass(frozen=True)
class ReactorState:
    """The delayed calls, readers and writers a reactor has at one moment."""

    delayed: frozenset[Any]
    readers: frozenset[Any]
    writers: frozenset[Any]


def _harness_call(call: Any) -> bool:
    """Whether a delayed call is the test runner's own (trial's per-test timeout)."""
    name = getattr(getattr(call, "func", None), "__qualname__", "")
    return name.startswith("TestCase._run.")


def _reactor_own(selectable: Any) -> bool:
    """Whether a reader or writer is the reactor's own (its wakers, set up lazily)."""
    return type(selectable).__module__.startswith("twisted.internet._signals")


def reactor_state(reactor: Any) -> ReactorState:
    """A snapshot of C{reactor}'s pending delayed calls, readers and writers.

    The test runner's own timeouts and the reactor's signal wakers are left out.
    """
    calls = frozenset(c for c in reactor.getDelayedCalls() if c.active() and not _harness_call(c))
    readers = frozenset(r for r in getattr(reactor, "getReaders", list)() if not _reactor_own(r))
    writers = frozenset(w for w in getattr(reactor, "getWriters", list)() if not _reactor_own(w))
    return ReactorState(calls, readers, writers)


def _call_name(call: Any) -> str:
    func = getattr(call, "func", None)
    return getattr(func, "__qualname__", None) or repr(func)


def _describe_call(call: Any) -> str:
    return f"delayed call {_call_name(call)} (due in {call.getTime() - call.seconds():.3f}s)"


def pending_calls(reactor: Any, before: ReactorState) -> frozenset[Any]:
    """The delayed calls made since C{before} that are still to come: any that later
    fires rather than being cancelled ran after the test.

    Calls already due are left out: they run on the reactor's next turn, as
    closing connections' zero-delay calls do (trial flushes those too).
    """
    now = reactor.seconds()
    return frozenset(
        c for c in reactor_state(reactor).delayed - before.delayed if c.getTime() > now
    )


def fired(calls: Iterable[Any]) -> list[str]:
    """Descriptions of the C{calls} that have run (rather than been cancelled or still waiting)."""
    return sorted(
        f"delayed call {_call_name(c)} fired after the test ended" for c in calls if c.called
    )


def leftovers(reactor: Any, before: ReactorState) -> list[str]:
    """Descriptions of what C{reactor} has now that it did not have in C{before}."""
    now = reactor_state(reactor)
    found = [_describe_call(c) for c in now.delayed - before.delayed]
    found += [f"reader {r!r}" for r in now.readers - before.readers]
    found += [f"writer {w!r}" for w in now.writers - before.writers]
    return sorted(found)


async def wait_until_clean(
    reactor: Any,
    before: ReactorState,
    timeout: float = 2.0,
    step: float = 0.01,
    watched: Iterable[Any] | None = None,
) -> list[str]:
    """Wait up to C{timeout}s for the leftovers since C{before} to go; return those that
    stay, and the C{watched} delayed calls that fired instead of being cancelled.

    Closing sockets and cancelling timers can take a few reactor turns; this
    waits for exactly that, checking once per C{step}, and no longer. C{watched}
    defaults to L{pending_calls} now; take it earlier (as soon as the test's
    containers have stopped) when cleaning up takes reactor turns of its own.
    """
    watched = pending_calls(reactor, before) if watched is None else frozenset(watched)
    deadline = reactor.seconds() + timeout
    while True:
        found = leftovers(reactor, before)
        if not found or reactor.seconds() >= deadline:
            return sorted(found + fired(watched))
        d: defer.Deferred[None] = defer.Deferred()
        reactor.callLater(step, d.callback, None)
        await d


async def assert_clean(reactor: Any, before: ReactorState, timeout: float = 2.0) -> None:
    """Raise L{LeftoversError} if C{reactor} still has leftovers since C{before} after C{timeout}s."""
    found = await wait_until_clean(reactor, before, timeout)
    if found:
        raise LeftoversError(found)
