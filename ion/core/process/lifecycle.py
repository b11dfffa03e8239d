"""The process life cycle: INIT -> READY -> ACTIVE -> TERMINATING -> TERMINATED, and ERROR.

A state is entered when its input is accepted; the hook for it then runs, and
a failing C{on_init}/C{on_activate} moves the process to ERROR. C{terminate}
and C{kill} enter TERMINATING with the exit reason; the process's steps of
terminating run there, and C{finished} ends them in TERMINATED, which nothing
leaves. An input the table does not allow raises L{IllegalStateError} and moves
the process to ERROR too, except while it terminates or is gone.

TERMINATING carries the data of a terminate under way (L{Terminating}): the
exit reason, whether a kill came, who waits for the end, and the step a kill
cuts short. The exit reason stays on the core once TERMINATED.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from automat import NoTransition, TypeMachineBuilder
from twisted.internet.defer import Deferred

from ion.core.exception import IllegalStateError
from ion.core.fsm import declare


class LifecycleInputs(Protocol):
    def initialize(self) -> None:
        "Declare queues and run on_init."

    def activate(self) -> None:
        "Run on_activate and start taking messages."

    def terminate(self, reason: str, forced: bool = False) -> Deferred[None] | None:
        """Begin terminating with C{reason}: None when this call is to run the
        steps, else (under way already) a Deferred that fires at their end."""

    def kill(self, reason: str, forced: bool = True) -> list[Deferred[Any]] | None:
        """Terminate by force: None when this call is to run the (forced)
        steps; else (a terminate under way) the steps to cut short."""

    def interruptible(self, step: Deferred[Any]) -> bool:
        "Whether C{step} of terminating may run, cancelled by a kill (False: one came)."

    def forget(self, step: Deferred[Any]) -> None:
        "C{step} has ended."

    def finished(self) -> list[Deferred[None]]:
        "The steps of terminating have ended: the waiters to tell."

    def fail(self) -> None:
        "A hook failed or an impossible transition was asked for."


@dataclass(slots=True)
class LifecycleCore:
    state: str = "INIT"
    reason: str | None = None  # the exit reason, from TERMINATING on
    # TERMINATING's data, readable without an input: the steps of a terminate
    # ask whether it is forced at each turn (a container stops thousands).
    terminating: Terminating | None = None


@dataclass(slots=True)
class Terminating:
    """What a terminate under way carries."""

    reason: str
    forced: bool = False
    waiters: list[Deferred[None]] = field(default_factory=list)
    steps: list[Deferred[Any]] = field(default_factory=list)  # cancelled by a kill


def _terminating(
    inputs: LifecycleInputs, core: LifecycleCore, reason: str, forced: bool = False
) -> Terminating:
    core.state, core.reason = "TERMINATING", reason
    core.terminating = Terminating(reason, forced)
    return core.terminating


builder = TypeMachineBuilder(LifecycleInputs, LifecycleCore)
INIT = builder.state("INIT")
READY = builder.state("READY")
ACTIVE = builder.state("ACTIVE")
ERROR = builder.state("ERROR")
TERMINATED = builder.state("TERMINATED")
TERMINATING = builder.state("TERMINATING", _terminating)

# Behaviour-less transitions: the core records the new state's name.
TRANSITIONS = [
    (INIT, LifecycleInputs.initialize, READY),
    (INIT, LifecycleInputs.fail, ERROR),
    (READY, LifecycleInputs.activate, ACTIVE),
    (READY, LifecycleInputs.fail, ERROR),
    (ACTIVE, LifecycleInputs.fail, ERROR),
    (ERROR, LifecycleInputs.fail, ERROR),
]
declare(builder, TRANSITIONS)

# Into TERMINATING: its data factory records the reason (terminate and kill
# answer None: the caller runs the steps).
for _live in (INIT, READY, ACTIVE, ERROR):
    _live.upon(LifecycleInputs.terminate).to(TERMINATING).returns(None)
    _live.upon(LifecycleInputs.kill).to(TERMINATING).returns(None)

# Behaviour-full transitions, within TERMINATING and out of it. Behaviours only
# change data and answer; whatever may call back into the machine (firing or
# cancelling Deferreds) is done by the caller, after the transition.


@TERMINATING.upon(LifecycleInputs.terminate).loop()
def _join(
    inputs: LifecycleInputs, core: LifecycleCore, t: Terminating, reason: str, forced: bool = False
) -> Deferred[None]:
    ended: Deferred[None] = Deferred()
    t.waiters.append(ended)
    return ended


@TERMINATING.upon(LifecycleInputs.kill).loop()
def _force(
    inputs: LifecycleInputs, core: LifecycleCore, t: Terminating, reason: str, forced: bool = True
) -> list[Deferred[Any]]:
    if t.forced:
        return []
    t.forced, t.reason, core.reason = True, reason, reason
    steps, t.steps = t.steps, []
    return steps


@TERMINATING.upon(LifecycleInputs.interruptible).loop()
def _interruptible(
    inputs: LifecycleInputs, core: LifecycleCore, t: Terminating, step: Deferred[Any]
) -> bool:
    if not t.forced:
        t.steps.append(step)
    return not t.forced


@TERMINATING.upon(LifecycleInputs.forget).loop()
def _forget(
    inputs: LifecycleInputs, core: LifecycleCore, t: Terminating, step: Deferred[Any]
) -> None:
    if step in t.steps:
        t.steps.remove(step)


@TERMINATING.upon(LifecycleInputs.finished).to(TERMINATED)
def _finished(inputs: LifecycleInputs, core: LifecycleCore, t: Terminating) -> list[Deferred[None]]:
    core.state, core.terminating = "TERMINATED", None
    return t.waiters


Machine = builder.build()

STATES = ("INIT", "READY", "ACTIVE", "TERMINATING", "TERMINATED", "ERROR")
#: The inputs a caller feeds by name (L{Lifecycle.step}); the others are the
#: steps of a terminate under way.
INPUTS = ("initialize", "activate", "terminate", "kill", "finished", "fail")
#: States a terminate or kill starts from.
LIVE = frozenset({"INIT", "READY", "ACTIVE", "ERROR"})


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

    @property
    def reason(self) -> str | None:
        """The exit reason (None before terminating)."""
        return self.core.reason

    def step(self, name: str, *args: Any) -> str:
        """Feed input C{name}; return the state it left.

        @raise IllegalStateError: the input is not allowed now (the owner goes
            to ERROR, unless it is terminating or gone).
        """
        before = self.core.state
        self._feed(name, *args)
        return before

    def _feed(self, name: str, *args: Any) -> Any:
        before = self.core.state
        try:
            return getattr(self._machine, name)(*args)
        except NoTransition:
            if before in LIVE:
                self._machine.fail()
            raise IllegalStateError(
                f"{self.owner}: cannot {name} in state {before}"
                + (" (now ERROR)" if self.core.state == "ERROR" and before != "ERROR" else "")
            ) from None

    def terminate(self, reason: str) -> Deferred[None] | None:
        """Begin terminating (None: the caller runs the steps) or join the
        terminate under way (a Deferred of its end).

        @raise IllegalStateError: the owner is TERMINATED already.
        """
        return self._feed("terminate", reason, False)

    def kill(self, reason: str) -> bool:
        """Terminate by force; True when the caller runs the forced steps (False:
        a terminate under way is cut short, or the owner is gone)."""
        if self.core.state == "TERMINATED":
            return False
        cut = self._machine.kill(reason, True)
        if cut is None:
            return True
        for step in cut:  # outside the machine: their callbacks may feed it
            step.cancel()
        return False

    def interruptible(self, step: Deferred[Any]) -> Deferred[Any]:
        """C{step}, which a kill cancels (at once if one came)."""
        if not self._machine.interruptible(step):
            step.cancel()
            return step
        return step.addBoth(self._step_ended, step)

    def _step_ended(self, result: Any, step: Deferred[Any]) -> Any:
        if self.core.state == "TERMINATING":
            self._machine.forget(step)
        return result

    @property
    def forced(self) -> bool:
        """Whether this terminate is a kill."""
        t = self.core.terminating
        return t is not None and t.forced

    def finished(self) -> None:
        """The steps of terminating ended: TERMINATED; whoever waited is told."""
        for ended in self._machine.finished():
            ended.callback(None)

    def fail(self) -> None:
        """Move to ERROR (no effect while terminating or once TERMINATED)."""
        if self.core.state in LIVE:
            self._machine.fail()
