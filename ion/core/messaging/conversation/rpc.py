"""The C{rpc} conversation: request -> inform_result | failure."""

from __future__ import annotations

from typing import Protocol

from automat import TypeMachineBuilder

from ion.core.fsm import declare
from ion.core.messaging.conversation.core import ConversationCore

PROTOCOL = "rpc"


class RpcInputs(Protocol):
    def request(self) -> None:
        "The initiator asks."

    def inform_result(self) -> None:
        "The participant answers with a result."

    def failure(self) -> None:
        "The participant answers with an error."

    def timeout(self) -> None:
        "The deadline passed with no answer."


builder = TypeMachineBuilder(RpcInputs, ConversationCore)
INIT = builder.state("INIT")
REQUESTED = builder.state("REQUESTED")
DONE = builder.state("DONE")
FAILED = builder.state("FAILED")
TIMEDOUT = builder.state("TIMEDOUT")

declare(
    builder,
    [
        (INIT, RpcInputs.request, REQUESTED),
        (REQUESTED, RpcInputs.inform_result, DONE),
        (REQUESTED, RpcInputs.failure, FAILED),
        (REQUESTED, RpcInputs.timeout, TIMEDOUT),
    ],
)

Machine = builder.build()
FINAL = frozenset({"DONE", "FAILED", "TIMEDOUT"})
