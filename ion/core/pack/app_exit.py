"""When an app's top supervisor ends by itself: OTP's start types.

A release entry's C{start_type} (L{ion.core.pack.appfile.START_TYPES}; default
C{temporary}, as OTP's) says what the end of an app means once its top
supervisor has exited without being asked to (it gave up, or was killed):

  - C{temporary}: it is reported (log, app event FAILED); the container goes on;
  - C{transient}: the container stops with a non-zero exit, unless the reason
    is C{normal}. As in OTP, a supervisor that gives up exits C{shutdown},
    which for an app is not C{normal}: it stops the container too;
  - C{permanent}: the container stops with a non-zero exit (so systemd, or
    whatever started it, starts it again).

An app is watched when its state (what its module's C{start} returned) is a
L{Supervisor}: every app with a C{supervisor:} block, and any C{mod} whose
C{start} returns its top supervisor, as OTP's application callback does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ion.core.process.exit import NORMAL
from ion.core.process.supervisor import Supervisor

PERMANENT, TRANSIENT, TEMPORARY = "permanent", "transient", "temporary"


def stops_container(start_type: str, reason: str) -> bool:
    """Whether an app of C{start_type} whose top supervisor ended with C{reason}
    stops the container."""
    if start_type == PERMANENT:
        return True
    if start_type == TRANSIENT:
        return reason != NORMAL
    return False


def watch(state: Any, ended: Callable[[str], None]) -> bool:
    """Call C{ended(reason)} when C{state}, if a L{Supervisor}, ends (at once if it
    has); whether it is watched."""
    if not isinstance(state, Supervisor):
        return False
    state.when_ended().addCallback(ended)
    return True
