"""What one container thinks of another: UP, SUSPECT, DEAD or LEFT.

A peer is UP while its heartbeats come. A missed deadline (k heartbeats)
makes it SUSPECT; the broker then settles it: its agent queue gone (a probe's
404, or a C{queue.deleted} presence notice) makes it DEAD, its queue still
held (405) keeps it SUSPECT until a heartbeat brings it back UP or the hard
limit (C{suspect_max}) declares it DEAD anyway. A goodbye makes it LEFT at
once. DEAD and LEFT are final for that epoch of the peer: a container that
comes back does so under a new epoch, as a new peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from automat import TypeMachineBuilder

from ion.core.fsm import declare

UP, SUSPECT, DEAD, LEFT = "UP", "SUSPECT", "DEAD", "LEFT"
ENDED = frozenset({DEAD, LEFT})


class PeerInputs(Protocol):
    def heard(self) -> None:
        "A heartbeat or announce of this epoch arrived."

    def deadline(self) -> None:
        "k heartbeat intervals passed with none."

    def still_held(self) -> None:
        "A probe found the peer's agent queue held by its connection (405)."

    def gone(self) -> None:
        "Its agent queue is gone: a probe's 404 or a presence notice."

    def limit(self) -> None:
        "It has been SUSPECT for C{suspect_max}."

    def goodbye(self) -> None:
        "It said goodbye: an orderly stop."


@dataclass(slots=True)
class PeerCore:
    state: str = UP


builder = TypeMachineBuilder(PeerInputs, PeerCore)
_UP = builder.state(UP)
_SUSPECT = builder.state(SUSPECT)
_DEAD = builder.state(DEAD)
_LEFT = builder.state(LEFT)

I = PeerInputs  # noqa: E741 - the table reads better short

TRANSITIONS = [
    (_UP, I.heard, _UP),
    (_UP, I.deadline, _SUSPECT),
    (_UP, I.still_held, _UP),  # a probe sent while SUSPECT, answered after a heartbeat
    (_UP, I.gone, _DEAD),  # presence notice: no need to wait for the deadline
    (_UP, I.limit, _UP),
    (_UP, I.goodbye, _LEFT),
    (_SUSPECT, I.heard, _UP),
    (_SUSPECT, I.deadline, _SUSPECT),
    (_SUSPECT, I.still_held, _SUSPECT),
    (_SUSPECT, I.gone, _DEAD),
    (_SUSPECT, I.limit, _DEAD),
    (_SUSPECT, I.goodbye, _LEFT),
]
# Nothing leaves DEAD or LEFT: late traffic of that epoch changes nothing.
TRANSITIONS += [
    (final, inp, final)
    for final in (_DEAD, _LEFT)
    for inp in (I.heard, I.deadline, I.still_held, I.gone, I.limit, I.goodbye)
]
declare(builder, TRANSITIONS)

PeerMachine = builder.build()


def new_peer_machine() -> tuple[PeerInputs, PeerCore]:
    """A machine for a peer just heard of (UP), and its core (which mirrors the state)."""
    core = PeerCore()
    return PeerMachine(core), core
