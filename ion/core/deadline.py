"""Bounded waits: how stopping waits for work under way without hanging on it."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, TimeoutError


async def ended_within(d: Deferred[Any], timeout: float, clock: Any) -> bool:
    """Wait for C{d} at most C{timeout} seconds; return whether it ended by then.

    Its result or failure is dropped (the waiter only waits, the work reports
    its own errors); past the deadline C{d} is cancelled. Cancelling the waiter
    cancels C{d} and raises C{CancelledError}.
    """
    try:
        await d.addTimeout(timeout, clock)
    except TimeoutError:
        return False
    except CancelledError:
        raise
    except Exception:
        pass
    return True
