"""The process life cycle machine: every allowed and every impossible transition,
the exit reason, a terminate joined while under way, and a kill cutting it short."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError, Deferred

from ion.core.exception import IllegalStateError
from ion.core.process.lifecycle import INPUTS, STATES, Lifecycle

# The arguments each input is fed with by name.
ARGS: dict[str, tuple[Any, ...]] = {"terminate": ("shutdown", False), "kill": ("killed", True)}

# (state, input) -> the state it leads to; any pair missing here is impossible.
ALLOWED = {
    ("INIT", "initialize"): "READY",
    ("INIT", "terminate"): "TERMINATING",
    ("INIT", "kill"): "TERMINATING",
    ("INIT", "fail"): "ERROR",
    ("READY", "activate"): "ACTIVE",
    ("READY", "terminate"): "TERMINATING",
    ("READY", "kill"): "TERMINATING",
    ("READY", "fail"): "ERROR",
    ("ACTIVE", "terminate"): "TERMINATING",
    ("ACTIVE", "kill"): "TERMINATING",
    ("ACTIVE", "fail"): "ERROR",
    ("ERROR", "fail"): "ERROR",
    ("ERROR", "terminate"): "TERMINATING",
    ("ERROR", "kill"): "TERMINATING",
    ("TERMINATING", "terminate"): "TERMINATING",
    ("TERMINATING", "kill"): "TERMINATING",
    ("TERMINATING", "finished"): "TERMINATED",
}

# The shortest input path from INIT to each state.
PATHS = {
    "INIT": [],
    "READY": ["initialize"],
    "ACTIVE": ["initialize", "activate"],
    "TERMINATING": ["terminate"],
    "TERMINATED": ["terminate", "finished"],
    "ERROR": ["fail"],
}


def lifecycle_in(state: str) -> Lifecycle:
    lc = Lifecycle("proc-under-test")
    for step in PATHS[state]:
        lc.step(step, *ARGS.get(step, ()))
    assert lc.state == state
    return lc


@pytest.mark.parametrize("state,name", sorted(ALLOWED))
def test_allowed_transition(state: str, name: str) -> None:
    """Each allowed input moves the machine to the state the table names."""
    lc = lifecycle_in(state)
    assert lc.step(name, *ARGS.get(name, ())) == state
    assert lc.state == ALLOWED[(state, name)]


IMPOSSIBLE = sorted((s, i) for s in STATES for i in INPUTS if (s, i) not in ALLOWED)


def test_the_table_leaves_impossible_pairs() -> None:
    """The machine has impossible transitions to test (the table is not total)."""
    assert len(IMPOSSIBLE) == len(STATES) * len(INPUTS) - len(ALLOWED) == 19


@pytest.mark.parametrize("state,name", IMPOSSIBLE)
def test_impossible_transition_raises_and_errors(state: str, name: str) -> None:
    """An impossible input raises a clear error naming the owner, input and state, and
    moves the machine to ERROR -- except while it terminates or once it has."""
    lc = lifecycle_in(state)
    with pytest.raises(IllegalStateError) as info:
        lc.step(name, *ARGS.get(name, ()))
    text = str(info.value)
    assert "proc-under-test" in text and name in text and state in text
    assert lc.state == (state if state.startswith("TERMINAT") else "ERROR")


def test_error_can_still_terminate() -> None:
    """A process in ERROR can be terminated, so its resources are released."""
    lc = lifecycle_in("ACTIVE")
    with pytest.raises(IllegalStateError):
        lc.step("activate")
    assert lc.terminate("shutdown") is None
    lc.finished()
    assert lc.state == "TERMINATED"


def test_the_exit_reason_is_kept_once_terminated() -> None:
    """The reason a terminate begins with is the exit reason, there and after."""
    lc = lifecycle_in("ACTIVE")
    assert lc.reason is None
    lc.terminate("shutdown:upgrade")
    assert lc.reason == "shutdown:upgrade"
    lc.finished()
    assert (lc.state, lc.reason) == ("TERMINATED", "shutdown:upgrade")


def test_a_second_terminate_waits_for_the_first() -> None:
    """Terminate asked again while under way answers a Deferred that fires when
    the first ends, and does not change the exit reason."""
    lc = lifecycle_in("ACTIVE")
    assert lc.terminate("normal") is None
    ended = lc.terminate("shutdown")
    assert isinstance(ended, Deferred) and not ended.called
    lc.finished()
    assert ended.called and lc.reason == "normal"


def test_a_kill_cuts_the_step_under_way_short() -> None:
    """A kill while terminating cancels the step it awaits, makes the reason
    killed, cancels later steps at once, and ends the same way."""
    lc = lifecycle_in("ACTIVE")
    lc.terminate("shutdown")
    hook: Deferred[None] = Deferred()
    lc.interruptible(hook)
    assert not lc.forced
    assert lc.kill("killed") is False
    assert lc.forced and lc.reason == "killed"
    cut: list[Any] = []
    hook.addErrback(cut.append)
    assert cut and cut[0].check(CancelledError)
    later = lc.interruptible(Deferred())
    later.addErrback(lambda f: f.trap(CancelledError))
    assert later.called
    lc.finished()
    assert lc.state == "TERMINATED" and lc.kill("again") is False


def test_a_kill_from_active_runs_the_forced_steps() -> None:
    """Killing a running process tells the caller to run the forced steps."""
    lc = lifecycle_in("ACTIVE")
    assert lc.kill("killed") is True
    assert lc.forced and lc.state == "TERMINATING"
