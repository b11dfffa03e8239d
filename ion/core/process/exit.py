"""Exit reasons: why a process ended, as OTP has them, written as strings.

C{normal} (it ended itself), C{shutdown} or C{shutdown:<detail>} (it was asked
to), C{killed} (forced), C{error:<ExceptionType>} (it crashed), C{noproc} (no
such process), C{noconnection} (its container cannot be reached), C{timeout}.
As in OTP, every reason but C{normal}, C{shutdown} and C{shutdown:*} is
abnormal: it takes linked processes down and restarts C{transient} children.
"""

from __future__ import annotations

from ion.core.exception import ProcessExit

NORMAL = "normal"
SHUTDOWN = "shutdown"
KILLED = "killed"
NOPROC = "noproc"
NOCONNECTION = "noconnection"
TIMEOUT = "timeout"

__all__ = [
    "KILLED",
    "NOCONNECTION",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "TIMEOUT",
    "ProcessExit",
    "error",
    "is_abnormal",
    "of_exception",
    "shutdown",
]


def is_abnormal(reason: str) -> bool:
    """Whether C{reason} is abnormal: not C{normal}, C{shutdown} or C{shutdown:*}."""
    return not (reason in (NORMAL, SHUTDOWN) or reason.startswith(SHUTDOWN + ":"))


def shutdown(detail: str) -> str:
    """C{shutdown:<detail>}: asked to stop, for a reason worth naming (still normal)."""
    return f"{SHUTDOWN}:{detail}"


def error(exception: BaseException | type[BaseException]) -> str:
    """C{error:<ExceptionType>}, the reason of a crash by C{exception}."""
    kind = exception if isinstance(exception, type) else type(exception)
    return f"error:{kind.__name__}"


def of_exception(exception: BaseException) -> str:
    """The exit reason an exception makes: a L{ProcessExit}'s own, else C{error:<type>}."""
    if isinstance(exception, ProcessExit):
        return exception.reason
    return error(exception)
