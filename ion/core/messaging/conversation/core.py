"""The conversation object shared by every protocol machine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from automat import NoTransition

from ion.core.exception import ConversationError

INITIATOR = "initiator"
PARTICIPANT = "participant"


@dataclass(slots=True)
class ConversationCore:
    """What a protocol machine's behaviours act on: the current state's name."""

    state: str = "INIT"


class Conversation:
    """One conversation as seen from one side.

    @ivar conv_id: the id every message of the conversation carries.
    @ivar protocol: C{rpc}, C{request} or C{generic}.
    @ivar role: L{INITIATOR} or L{PARTICIPANT}.
    @ivar deferred: (initiator) fires with the final reply message.
    @ivar timer: the pending deadline call, if any.
    """

    __slots__ = ("conv_id", "protocol", "role", "core", "_machine", "_final", "deferred", "timer")

    def __init__(self, conv_id: str, protocol: str, role: str) -> None:
        machine, self._final = PROTOCOL_MACHINES[protocol]
        self.conv_id = conv_id
        self.protocol = protocol
        self.role = role
        self.core = ConversationCore()
        self._machine = machine(self.core)
        self.deferred: Any = None
        self.timer: Any = None

    @property
    def state(self) -> str:
        return self.core.state

    @property
    def finished(self) -> bool:
        return self.core.state in self._final

    def feed(self, performative: str) -> str:
        """Advance on a performative sent or received; return the new state.

        @raise ConversationError: the protocol does not allow it in this state.
        """
        step = getattr(self._machine, performative, None) if performative in _INPUTS else None
        if step is None:
            raise ConversationError(
                f"conversation {self.conv_id} ({self.protocol}): unknown performative "
                f"{performative!r}"
            )
        try:
            step()
        except NoTransition:
            raise ConversationError(
                f"conversation {self.conv_id} ({self.protocol}): {performative!r} is not "
                f"allowed in state {self.core.state}"
            ) from None
        return self.core.state

    def __repr__(self) -> str:
        return f"<Conversation {self.protocol} {self.conv_id} {self.role} {self.core.state}>"


_INPUTS = frozenset({"request", "agree", "refuse", "inform_result", "failure", "inform", "timeout"})

# protocol -> (machine factory, final states); filled in by the protocol modules below.
PROTOCOL_MACHINES: dict[str, tuple[Any, frozenset[str]]] = {}


def new_conversation(conv_id: str, protocol: str, role: str) -> Conversation:
    """A new conversation of a known protocol; raise L{ConversationError} for others."""
    if protocol not in PROTOCOL_MACHINES:
        raise ConversationError(f"unknown conversation protocol {protocol!r}")
    return Conversation(conv_id, protocol, role)


def _load() -> None:
    from ion.core.messaging.conversation import generic, request, rpc

    for module in (rpc, request, generic):
        PROTOCOL_MACHINES[module.PROTOCOL] = (module.Machine, module.FINAL)


_load()
