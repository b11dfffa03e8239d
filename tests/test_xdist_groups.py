"""tests/xdist_groups.py: which tests keep to one xdist worker, and the check that
xdist did put the groups in the ids its scheduler reads."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.xdist_groups import RABBIT_NODES, assign_groups, check_grouped, fail_if_ungrouped


class Item:
    """What the rules read of a collected test: its id, fixtures (with scopes) and marks."""

    def __init__(
        self,
        nodeid: str,
        scopes: dict[str, str],
        marks: tuple[Any, ...] = (),
        loadgroup: bool = False,
    ) -> None:
        self.nodeid = nodeid
        self.config = SimpleNamespace(option=SimpleNamespace(loadgroup=loadgroup))
        self.stash: dict[Any, Any] = {}
        self.fixturenames = list(scopes)
        defs = {name: (SimpleNamespace(scope=scope),) for name, scope in scopes.items()}
        self._fixtureinfo = SimpleNamespace(name2fixturedefs=defs)
        self.marks = [m.mark for m in marks]

    def get_closest_marker(self, name: str) -> Any:
        return next((m for m in reversed(self.marks) if m.name == name), None)

    def add_marker(self, marker: Any) -> None:
        self.marks.append(marker.mark)

    def group(self) -> str | None:
        mark = self.get_closest_marker("xdist_group")
        return None if mark is None else mark.kwargs["name"]


def test_each_test_gets_the_group_of_what_it_shares() -> None:
    items = {
        "tls": Item("t/a.py::t1", {"tmp_path": "function", "tls_node": "session"}),
        "cluster": Item("t/b.py::t2", {"rabbit_cluster": "session"}),
        # a module fixture on a suite's node: the node's group wins
        "users": Item("t/c.py::t3", {"system": "module", "tls_node": "session"}),
        "wheel": Item("t/d.py::t4", {"fresh_venv": "session", "built_wheel": "session"}),
        "page": Item("t/e.py::t5", {"browser": "session", "web": "module"}),
        "module": Item("t/f.py::t6[x]", {"system": "module", "tmp_path": "function"}),
        "free": Item("t/g.py::t7", {"tmp_path": "function", "tmp_path_factory": "session"}),
        "marked": Item(
            "t/h.py::t8", {"event_broker": "session"}, (pytest.mark.xdist_group(name="own"),)
        ),
    }
    assign_groups(list(items.values()))  # type: ignore[arg-type]
    assert {key: item.group() for key, item in items.items()} == {
        "tls": RABBIT_NODES,
        "cluster": RABBIT_NODES,
        "users": RABBIT_NODES,
        "wheel": "wheel",
        "page": "browser",
        "module": "module:t/f.py",
        "free": None,
        "marked": "own",
    }


def test_a_test_whose_id_lost_its_group_fails_saying_why() -> None:
    grouped = Item("t/a.py::t1", {"tls_node": "session"}, loadgroup=True)
    kept = Item("t/a.py::t2", {"tls_node": "session"}, loadgroup=True)
    free = Item("t/b.py::t3", {}, loadgroup=True)
    serial = Item("t/a.py::t4", {"tls_node": "session"}, loadgroup=False)
    items = [grouped, kept, free, serial]
    assign_groups(items)  # type: ignore[arg-type]
    kept.nodeid += f"@{RABBIT_NODES}"  # as xdist's worker does
    check_grouped(items)  # type: ignore[arg-type]
    with pytest.raises(
        pytest.fail.Exception, match=r"did not put this test's group .*rabbit-nodes"
    ):
        fail_if_ungrouped(grouped)  # type: ignore[arg-type]
    for item in (kept, free, serial):
        fail_if_ungrouped(item)  # type: ignore[arg-type]
