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

    The protocol's Automat machine decides every transition. Its behaviours only
    record the new state's name (L{ion.core.fsm.declare}), so the machine is a
    pure function of (state, input): each answer it gives is kept in
    L{TRANSITIONS}, and a machine is run (brought to the state along the first
    path that reached it, L{PATHS}) only for a step no conversation of its
    protocol has taken yet. That keeps two Automat dispatches and a machine
    per call off the message path, and a conversation keeps no history.

    @ivar conv_id: the id every message of the conversation carries.
    @ivar protocol: C{rpc}, C{request} or C{generic}.
    @ivar role: L{INITIATOR} or L{PARTICIPANT}.
    @ivar state: the current state's name.
    @ivar deferred: (initiator) fires with the final reply message.
    @ivar timer: the pending deadline call, if any.
    """

    __slots__ = ("conv_id", "protocol", "role", "state", "_final", "deferred", "timer")

    def __init__(self, conv_id: str, protocol: str, role: str) -> None:
        self._final = PROTOCOL_MACHINES[protocol][1]
        self.conv_id = conv_id
        self.protocol = protocol
        self.role = role
        self.state = "INIT"
        self.deferred: Any = None
        self.timer: Any = None

    @property
    def finished(self) -> bool:
        return self.state in self._final

    def feed(self, performative: str) -> str:
        """Advance on a performative sent or received; return the new state.

        @raise ConversationError: the protocol does not allow it in this state,
            or it is C{timeout}, which only the deadline feeds (L{expire}).
        """
        if performative == "timeout":
            raise ConversationError(
                f"conversation {self.conv_id} ({self.protocol}): 'timeout' is not sent or "
                "received; a conversation times out by its deadline"
            )
        return self._step(performative)

    def expire(self) -> str:
        """Advance on the conversation's deadline; return the new state."""
        return self._step("timeout")

    def _step(self, performative: str) -> str:
        key = (self.protocol, self.state, performative)
        new = TRANSITIONS.get(key, _UNKNOWN)
        if new is _UNKNOWN:
            new = TRANSITIONS[key] = self._ask_machine(performative)
        if new is None:
            error = ConversationError(
                f"conversation {self.conv_id} ({self.protocol}): {performative!r} is not "
                f"allowed in state {self.state}"
            )
            # Its stable words, without the sender's conversation id (ion.core.drops).
            error.reason = f"{performative} not allowed in {self.protocol} {self.state}"  # type: ignore[attr-defined]
            raise error
        self.state = new
        return new

    def _ask_machine(self, performative: str) -> str | None:
        """Where the protocol's machine goes on C{performative} from this state (None: nowhere)."""
        core = ConversationCore()
        machine = PROTOCOL_MACHINES[self.protocol][0](core)
        step = getattr(machine, performative, None) if performative in _INPUTS else None
        if step is None:
            error = ConversationError(
                f"conversation {self.conv_id} ({self.protocol}): unknown performative "
                f"{performative!r}"
            )
            error.reason = f"unknown performative in {self.protocol}"  # type: ignore[attr-defined]
            raise error
        path = PATHS[(self.protocol, self.state)]
        for taken in path:
            getattr(machine, taken)()
        try:
            step()
        except NoTransition:
            return None
        PATHS.setdefault((self.protocol, core.state), (*path, performative))
        return core.state

    def __repr__(self) -> str:
        return f"<Conversation {self.protocol} {self.conv_id} {self.role} {self.state}>"


_UNKNOWN = object()

# (protocol, state, performative) -> the state the protocol's machine moved to,
# or None where it has no transition; filled in as conversations take steps.
TRANSITIONS: dict[tuple[str, str, str], str | None] = {}

# (protocol, state) -> the performatives that first took the machine there from INIT.
PATHS: dict[tuple[str, str], tuple[str, ...]] = {}

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
        PATHS[(module.PROTOCOL, "INIT")] = ()


_load()
