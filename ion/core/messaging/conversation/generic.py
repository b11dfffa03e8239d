"""The C{generic} conversation: any performative, either way, until it goes idle.

It has no natural end, so it closes on its idle deadline (C{timeout}).
"""

from __future__ import annotations

from typing import Protocol

from automat import TypeMachineBuilder

from ion.core.fsm import declare
from ion.core.messaging.conversation.core import ConversationCore

PROTOCOL = "generic"


class GenericInputs(Protocol):
    def request(self) -> None:
        "A request, either way."

    def inform(self) -> None:
        "An informative message, either way."

    def inform_result(self) -> None:
        "A result, either way."

    def failure(self) -> None:
        "An error, either way."

    def timeout(self) -> None:
        "The conversation went idle past its deadline."


builder = TypeMachineBuilder(GenericInputs, ConversationCore)
INIT = builder.state("INIT")
OPEN = builder.state("OPEN")
CLOSED = builder.state("CLOSED")

_MESSAGES = (
    GenericInputs.request,
    GenericInputs.inform,
    GenericInputs.inform_result,
    GenericInputs.failure,
)
declare(
    builder,
    [(INIT, m, OPEN) for m in _MESSAGES]
    + [(OPEN, m, OPEN) for m in _MESSAGES]
    + [(INIT, GenericInputs.timeout, CLOSED), (OPEN, GenericInputs.timeout, CLOSED)],
)

Machine = builder.build()
FINAL = frozenset({"CLOSED"})
