"""The supervisor: block of .app files: the tree it describes, and one error per
bad value naming the file, the line and the dotted field."""

from __future__ import annotations

from pathlib import Path

import pytest

from ion.core.exception import AppFileError
from ion.core.pack.appfile import SUPERVISORAPP_MODULE, load_app, loads_app, loads_release
from ion.core.pack.supervision import SUPERVISOR_CLASS
from ion.core.process.child_spec import ChildSpec, SupervisorFlags

REPO = Path(__file__).resolve().parents[3]
W = "tests.core.process.workers:Worker"

THREE_LEVELS = f"""\
type: application
name: x
supervisor:
  strategy: one_for_all
  intensity: 4
  period: 30
  children:
    - id: mid
      type: supervisor
      strategy: rest_for_one
      intensity: 0
      children:
        - id: low
          type: supervisor
          children:
            - {{id: w, module: tests.core.process.workers, class: Worker, restart: transient}}
    - {{id: solo, start: "{W}", args: {{n: 1}}, shutdown: brutal_kill, significant: true,
        start_timeout: 2.5}}
"""


def test_three_levels_load_as_data() -> None:
    """Flags and children of every level are read; a supervisor child starts the
    Supervisor class by default; start may be module:Class or module and class."""
    app = loads_app(THREE_LEVELS, "x.app")
    top = app.supervisor
    assert top is not None and app.mod == (SUPERVISORAPP_MODULE, (), {})
    assert (top.strategy, top.intensity, top.period) == ("one_for_all", 4, 30)
    mid, solo = top.children
    assert (mid.type, mid.start, mid.supervisor.strategy, mid.supervisor.intensity) == (
        "supervisor", SUPERVISOR_CLASS, "rest_for_one", 0,
    )  # fmt: skip
    (low,) = mid.supervisor.children
    (w,) = low.supervisor.children
    assert (w.start, w.restart, w.where) == (W, "transient", "supervisor.children[0]"
                                            ".children[0].children[0]")  # fmt: skip
    assert (solo.shutdown, solo.significant, solo.start_timeout, dict(solo.args)) == (
        "brutal_kill", True, 2.5, {"n": 1},
    )  # fmt: skip


def test_the_tree_becomes_specs_a_supervisor_accepts() -> None:
    """spawn_args gives the flags and child specs, nested supervisors' as their args;
    each child process is named by its id."""
    args = loads_app(THREE_LEVELS, "x.app").supervisor.spawn_args()
    SupervisorFlags(**{k: args[k] for k in ("strategy", "intensity", "period")}).checked()
    mid, solo = (ChildSpec.of(spec) for spec in args["children"])
    assert mid.args["strategy"] == "rest_for_one" and mid.name == "mid"
    low = ChildSpec.of(mid.args["children"][0])
    assert ChildSpec.of(low.args["children"][0]).start == W
    assert solo.args == {"n": 1} and solo.shutdown_budget == "brutal_kill"


def test_the_shipped_example_loads() -> None:
    """ion/res/apps/supervised.app is a three-level tree of Workers."""
    app = load_app(REPO / "ion/res/apps/supervised.app")
    assert app.supervisor is not None
    assert [c.id for c in app.supervisor.walk()] == ["pipeline", "reader", "writer", "audit"]


def child(line: str) -> str:
    """An app whose second child (line 7) is C{line}."""
    return (
        "type: application\nname: x\nsupervisor:\n  children:\n"
        f"    - {{id: a, start: '{W}'}}\n    # the next one\n    - {line}\n"
    )


BAD = {
    # case: (text, line, field, words of the reason)
    "restart": (
        child(f"{{id: b, start: '{W}', restart: sometimes}}"), 7,
        "supervisor.children[1].restart",
        "expected permanent, transient or temporary, not 'sometimes'",
    ),
    "shutdown": (
        child(f"{{id: b, start: '{W}', shutdown: -1}}"), 7, "supervisor.children[1].shutdown",
        "expected seconds >= 0, brutal_kill or infinity, not -1",
    ),
    "shutdown_word": (
        child(f"{{id: b, start: '{W}', shutdown: soon}}"), 7, "supervisor.children[1].shutdown",
        "not 'soon'",
    ),
    "type": (
        child(f"{{id: b, start: '{W}', type: manager}}"), 7, "supervisor.children[1].type",
        "expected worker or supervisor, not 'manager'",
    ),
    "significant": (
        child(f"{{id: b, start: '{W}', significant: maybe}}"), 7,
        "supervisor.children[1].significant", "must be true or false",
    ),
    "start_timeout": (
        child(f"{{id: b, start: '{W}', start_timeout: 0}}"), 7,
        "supervisor.children[1].start_timeout", "expected a number > 0, not 0",
    ),
    "start_form": (
        child("{id: b, start: just_a_module}"), 7, "supervisor.children[1].start",
        "expected module:Class, not 'just_a_module'",
    ),
    "start_missing": (
        child("{id: b}"), 7, "supervisor.children[1].start", "missing (required for a worker",
    ),
    "class_without_module": (
        child("{id: b, class: Worker}"), 7, "supervisor.children[1].module", "missing",
    ),
    "duplicate_id": (
        child(f"{{id: a, start: '{W}'}}"), 7, "supervisor.children[1].id",
        "'a' is the id of an earlier child",
    ),
    "bad_id": (
        child(f"{{id: 'no spaces', start: '{W}'}}"), 7, "supervisor.children[1].id",
        "is not a valid name",
    ),
    "unknown_key": (
        child(f"{{id: b, start: '{W}', colour: red}}"), 7, "supervisor.children[1].colour",
        "unknown field in a child spec",
    ),
    "flags_on_a_worker": (
        child(f"{{id: b, start: '{W}', strategy: one_for_all}}"), 7,
        "supervisor.children[1].strategy", "only a child of type supervisor",
    ),
    # A bare item has no line of its own: the list's line is named.
    "not_a_mapping": (child("just-a-name"), 4, "supervisor.children[1]", "must be a mapping"),
    "args": (
        child(f"{{id: b, start: '{W}', args: [1]}}"), 7, "supervisor.children[1].args",
        "must be a mapping",
    ),
    "strategy": (
        "type: application\nname: x\nsupervisor:\n  strategy: all_for_none\n", 4,
        "supervisor.strategy",
        "expected one_for_one, one_for_all, rest_for_one or simple_one_for_one",
    ),
    "intensity": (
        "type: application\nname: x\nsupervisor:\n  intensity: 1.5\n", 4,
        "supervisor.intensity", "expected a whole number >= 0, not 1.5",
    ),
    "period": (
        "type: application\nname: x\nsupervisor:\n  period: -5\n", 4, "supervisor.period",
        "expected a number > 0, not -5",
    ),
    "auto_shutdown": (
        "type: application\nname: x\nsupervisor:\n  auto_shutdown: sometimes\n", 4,
        "supervisor.auto_shutdown", "expected never, any_significant or all_significant",
    ),
    "unknown_flag": (
        "type: application\nname: x\nsupervisor:\n  stratgey: one_for_one\n", 4,
        "supervisor.stratgey", "unknown field in a supervisor",
    ),
    "not_a_block": (
        "type: application\nname: x\nsupervisor: [a]\n", 3, "supervisor", "must be a mapping",
    ),
    "children_not_a_list": (
        "type: application\nname: x\nsupervisor:\n  children: a\n", 4,
        "supervisor.children", "must be a list of child specs",
    ),
    "simple_needs_one": (
        "type: application\nname: x\nsupervisor:\n  strategy: simple_one_for_one\n"
        "  children: []\n", 5, "supervisor.children", "exactly one child, not 0",
    ),
    "nested": (
        "type: application\nname: x\nsupervisor:\n  children:\n    - id: mid\n"
        "      type: supervisor\n      children:\n        - {id: w, start: 'm:C', restart: x}\n",
        8, "supervisor.children[0].children[0].restart", "not 'x'",
    ),
    "mod_and_supervisor": (
        "type: application\nname: x\nmod: [m]\nsupervisor: {}\n", 4, "supervisor",
        "an app has mod: or supervisor:, not both",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_value_names_file_line_and_field(case: str) -> None:
    """Each bad value is one AppFileError: x.app:LINE: field 'supervisor...': reason."""
    text, line, field, words = BAD[case]
    with pytest.raises(AppFileError) as caught:
        loads_app(text, "x.app")
    error = caught.value
    assert (error.line, error.field) == (line, field), str(error)
    assert str(error).startswith(f"x.app:{line}: field {field!r}: ")
    assert words in error.reason


def test_start_type_of_a_release_entry() -> None:
    """A release entry's start_type is permanent, transient or temporary (the default)."""
    rel = loads_release(
        "type: release\nname: r\napps:\n  - {name: a, start_type: permanent}\n  - b\n", "r.rel"
    )
    assert [e.start_type for e in rel.apps] == ["permanent", "temporary"]
    with pytest.raises(AppFileError) as caught:
        loads_release(
            "type: release\nname: r\napps:\n  - {name: a, start_type: forever}\n", "r.rel"
        )
    assert str(caught.value) == (
        "r.rel:4: field 'apps[0].start_type': expected permanent, transient or temporary, "
        "not 'forever'"
    )
