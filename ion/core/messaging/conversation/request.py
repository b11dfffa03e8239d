"""The C{request} conversation (FIPA request).

request -> agree | refuse; after agree, inform_result | failure. A participant
may also answer at once with inform_result or failure (an implicit agree).
"""

from __future__ import annotations

from typing import Protocol

from automat import TypeMachineBuilder

from ion.core.fsm import declare
from ion.core.messaging.conversation.core import ConversationCore

PROTOCOL = "request"


class RequestInputs(Protocol):
    def request(self) -> None:
        "The initiator asks."

    def agree(self) -> None:
        "The participant agrees to do it."

    def refuse(self) -> None:
        "The participant refuses."

    def inform_result(self) -> None:
        "The participant reports the result."

    def failure(self) -> None:
        "The participant reports that doing it failed."

    def timeout(self) -> None:
        "The deadline passed with no final answer."


builder = TypeMachineBuilder(RequestInputs, ConversationCore)
INIT = builder.state("INIT")
REQUESTED = builder.state("REQUESTED")
AGREED = builder.state("AGREED")
REFUSED = builder.state("REFUSED")
DONE = builder.state("DONE")
FAILED = builder.state("FAILED")
TIMEDOUT = builder.state("TIMEDOUT")

declare(
    builder,
    [
        (INIT, RequestInputs.request, REQUESTED),
        (REQUESTED, RequestInputs.agree, AGREED),
        (REQUESTED, RequestInputs.refuse, REFUSED),
        (REQUESTED, RequestInputs.inform_result, DONE),
        (REQUESTED, RequestInputs.failure, FAILED),
        (REQUESTED, RequestInputs.timeout, TIMEDOUT),
        (AGREED, RequestInputs.inform_result, DONE),
        (AGREED, RequestInputs.failure, FAILED),
        (AGREED, RequestInputs.timeout, TIMEDOUT),
    ],
)

Machine = builder.build()
FINAL = frozenset({"REFUSED", "DONE", "FAILED", "TIMEDOUT"})
