"""The process life cycle machine: every allowed and every impossible transition."""

from __future__ import annotations

import pytest

from ion.core.exception import IllegalStateError
from ion.core.process.lifecycle import INPUTS, STATES, Lifecycle

# (state, input) -> the state it leads to; any pair missing here is impossible.
ALLOWED = {
    ("INIT", "initialize"): "READY",
    ("INIT", "terminate"): "TERMINATED",
    ("INIT", "fail"): "ERROR",
    ("READY", "activate"): "ACTIVE",
    ("READY", "terminate"): "TERMINATED",
    ("READY", "fail"): "ERROR",
    ("ACTIVE", "terminate"): "TERMINATED",
    ("ACTIVE", "fail"): "ERROR",
    ("ERROR", "fail"): "ERROR",
    ("ERROR", "terminate"): "TERMINATED",
}

# The shortest input path from INIT to each state.
PATHS = {
    "INIT": [],
    "READY": ["initialize"],
    "ACTIVE": ["initialize", "activate"],
    "TERMINATED": ["terminate"],
    "ERROR": ["fail"],
}


def lifecycle_in(state: str) -> Lifecycle:
    lc = Lifecycle("proc-under-test")
    for step in PATHS[state]:
        lc.step(step)
    assert lc.state == state
    return lc


@pytest.mark.parametrize("state,name", sorted(ALLOWED))
def test_allowed_transition(state: str, name: str) -> None:
    """Each allowed input moves the machine to the state the table names."""
    lc = lifecycle_in(state)
    assert lc.step(name) == state
    assert lc.state == ALLOWED[(state, name)]


IMPOSSIBLE = sorted((s, i) for s in STATES for i in INPUTS if (s, i) not in ALLOWED)


def test_the_table_leaves_impossible_pairs() -> None:
    """The machine has impossible transitions to test (the table is not total)."""
    assert len(IMPOSSIBLE) == len(STATES) * len(INPUTS) - len(ALLOWED) == 10


@pytest.mark.parametrize("state,name", IMPOSSIBLE)
def test_impossible_transition_raises_and_errors(state: str, name: str) -> None:
    """An impossible input raises a clear error naming the owner, input and state, and
    moves the machine to ERROR -- except from TERMINATED, which nothing leaves."""
    lc = lifecycle_in(state)
    with pytest.raises(IllegalStateError) as info:
        lc.step(name)
    text = str(info.value)
    assert "proc-under-test" in text and name in text and state in text
    assert lc.state == ("TERMINATED" if state == "TERMINATED" else "ERROR")


def test_error_can_still_terminate() -> None:
    """A process in ERROR can be terminated, so its resources are released."""
    lc = lifecycle_in("ACTIVE")
    with pytest.raises(IllegalStateError):
        lc.step("activate")
    lc.step("terminate")
    assert lc.state == "TERMINATED"
