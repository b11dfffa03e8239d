"""The process life cycle: INIT -> READY -> ACTIVE -> TERMINATED, and ERROR.

A state is entered when its input is accepted; the hook for it then runs, and
a failing C{on_init}/C{on_activate} moves the process to ERROR. An input the
table does not allow raises L{IllegalStateError} and moves the process to
ERROR too, except from TERMINATED, which nothing leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from automat import NoTransition, TypeMachineBuilder

from ion.core.exception import IllegalStateError
from ion.core.fsm import declare


class LifecycleInputs(Protocol):
    def initialize(self) -> None:
        "Declare queues and run on_init."

    def activate(self) -> None:
        "Run on_activate and start taking messages."

    def terminate(self) -> None:
        "Stop taking messages, drain, run on_terminate, release everything."

    def fail(self) -> None:
        "A hook failed or an impossible transition was asked for."


@dataclass(slots=True)
class LifecycleCore:
    state: str = "INIT"


builder = TypeMachineBuilder(LifecycleInputs, LifecycleCore)
INIT = builder.state("INIT")
READY = builder.state("READY")
ACTIVE = builder.state("ACTIVE")
TERMINATED = builder.state("TERMINATED")
ERROR = builder.state("ERROR")

TRANSITIONS = [
    (INIT, LifecycleInputs.initialize, READY),
    (INIT, LifecycleInputs.terminate, TERMINATED),
    (INIT, LifecycleInputs.fail, ERROR),
    (READY, LifecycleInputs.activate, ACTIVE),
    (READY, LifecycleInputs.terminate, TERMINATED),
    (READY, LifecycleInputs.fail, ERROR),
    (ACTIVE, LifecycleInputs.terminate, TERMINATED),
    (ACTIVE, LifecycleInputs.fail, ERROR),
    (ERROR, LifecycleInputs.fail, ERROR),
    (ERROR, LifecycleInputs.terminate, TERMINATED),
]
declare(builder, TRANSITIONS)
Machine = builder.build()

STATES = ("INIT", "READY", "ACTIVE", "TERMINATED", "ERROR")
INPUTS = ("initialize", "activate", "terminate", "fail")


class Lifecycle:
    """The life cycle machine of one owner (a process), with clear errors."""

    __slots__ = ("owner", "core", "_machine")

    def __init__(self, owner: object) -> None:
        self.owner = owner
        self.core = LifecycleCore()
        self._machine = Machine(self.core)

    @property
    def state(self) -> str:
        return self.core.state

    def step(self, name: str) -> str:
        """Feed input C{name}; return the state it left.

        @raise IllegalStateError: the input is not allowed now (the owner goes to ERROR).
        """
        before = self.core.state
        try:
            getattr(self._machine, name)()
        except NoTransition:
            if before != "TERMINATED":
                self._machine.fail()
            raise IllegalStateError(
                f"{self.owner}: cannot {name} in state {before}"
                + (" (now ERROR)" if self.core.state == "ERROR" and before != "ERROR" else "")
            ) from None
        return before

    def fail(self) -> None:
        """Move to ERROR (no effect once TERMINATED)."""
        if self.core.state != "TERMINATED":
            self._machine.fail()
