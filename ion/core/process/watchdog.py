"""Handler deadlines: a handler that outlives its deadline is cut off, so a stuck
one gives back its slot (and its unacked delivery) instead of wedging the process.

A handler's deadline is the sooner of its request's expiry (the caller's
deadline) and its own limit: the op's (L{handler_timeout} on the method), else
the class's C{handler_timeout}, else C{process.handler_timeout} (0: none).

At the expiry the caller's own timer ends its call; the handler is cut off
L{EXPIRY_GRACE} later, so that on one clock the caller always sees its own
timeout, never a race between it and the server's timeout error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred

from ion.core import exception as exc
from ion.core.config import read_number

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds past its request's expiry that a handler is cut off.
EXPIRY_GRACE = 0.1


def handler_timeout(seconds: float) -> Callable[[F], F]:
    """Decorate an C{op_<name>} method: its handler gets at most C{seconds}."""
    if not seconds > 0:
        raise ValueError(f"handler_timeout: expected seconds > 0, not {seconds!r}")

    def mark(op: F) -> F:
        op.handler_timeout = float(seconds)  # type: ignore[attr-defined]
        return op

    return mark


def configured_limit(cls: type, config: Any) -> float | None:
    """The class's C{handler_timeout}, else the C{process.handler_timeout} config; None: no limit.

    @raise ConfigurationError: not a number of seconds >= 0.
    """
    value = getattr(cls, "handler_timeout", None)
    where = f"{cls.__name__}.handler_timeout"
    if value is None:
        value, where = config.get("process.handler_timeout", 0), "process.handler_timeout"
    number = read_number(value, float)
    if isinstance(value, bool) or number is None or number < 0:
        raise exc.ConfigurationError(
            f"{where}: expected a number of seconds >= 0 (0: no limit), not {value!r}"
        )
    return float(number) or None


def passed(expiry: Any, now: float) -> bool:
    """Whether a request's C{expiry} (its caller's deadline, ms since the epoch)
    is past at C{now} (seconds); one without an integer expiry never is."""
    return type(expiry) is int and expiry <= now * 1000


def deadline(handler: Any, limit: float | None, expiry: Any, now: float) -> float | None:
    """Seconds the handler may run from C{now}: the sooner of its op's limit (else
    C{limit}) and the request's C{expiry} (ms since the epoch) plus
    L{EXPIRY_GRACE}; None: unbounded."""
    own = getattr(handler, "handler_timeout", None)
    if own is not None:
        limit = own
    if type(expiry) is int:
        left = max(expiry / 1000 - now, 0.0) + EXPIRY_GRACE
        limit = left if limit is None else min(limit, left)
    return limit


def watch(
    waited: Deferred[Any],
    seconds: float,
    clock: Any,
    ended: Callable[[Any], None],
    cut_off: Callable[[float], None],
) -> None:
    """Call C{ended(result)} when C{waited} fires within C{seconds}; else call
    C{cut_off(seconds)} at the deadline, then cancel C{waited} (its later result,
    whatever the handler makes of the cancellation, is dropped)."""
    if waited.called:  # ended at once, as most do: no timer to arm
        waited.addBoth(ended)
        return
    timer: list[Any] = []

    def fire() -> None:
        timer.clear()
        cut_off(seconds)
        waited.cancel()

    def done(result: Any) -> None:
        if not timer:  # cut off already: it has been answered
            return None
        timer.pop().cancel()
        ended(result)
        return None

    timer.append(clock.callLater(seconds, fire))
    waited.addBoth(done)
