"""Which tests share a pytest-xdist worker when the whole suite runs on two
(scripts/test: C{-n 2 --dist loadgroup}); tests/conftest.py applies it at collection.

A test gets the mark C{xdist_group(name=...)}, so that one worker runs the whole
group, when it uses

- a RabbitMQ node or cluster of the suite's own (tests/rabbit_node.py,
  tests/rabbit_cluster.py; tests/broker_users.py works on C{tls_node}): group
  L{RABBIT_NODES}, so the nodes boot once, on one worker;
- ion's wheel or a virtualenv made from it (tests/wheel.py): group C{wheel}, built once;
- the browser tier's Chromium or web view (tests/browser): group C{browser};
- else a module-scoped fixture (a container or certificates a module shares):
  a group of its module, so the fixture is set up once.

Other tests go to whichever worker is free. A test that asks for a node's
fixture at run time (C{request.getfixturevalue}) cannot be seen here: mark it
with L{on_rabbit_nodes}. Without xdist the mark does nothing.

xdist passes a test's group to its scheduler as a suffix of the test's id
(C{path::test@group}), which a worker adds after collection; L{check_grouped}
makes the grouped tests fail should that not happen (with pytest 9.2 it does
not, and the groups would be spread over the workers without a word).
"""

from __future__ import annotations

import pytest

RABBIT_NODES = "rabbit-nodes"

# Session fixtures that start something costly or stateful, by name: their group.
SESSION_GROUPS = {
    "event_node": RABBIT_NODES,
    "event_broker": RABBIT_NODES,
    "tls_node": RABBIT_NODES,
    "rabbit_cluster": RABBIT_NODES,
    "built_wheel": "wheel",
    "fresh_venv": "wheel",
    "browser": "browser",
    "web": "browser",
}

on_rabbit_nodes = pytest.mark.xdist_group(name=RABBIT_NODES)


def group_of(item: pytest.Item) -> str | None:
    """The group C{item} belongs to (None: any worker may run it)."""
    names = getattr(item, "fixturenames", ())
    for name in names:
        if name in SESSION_GROUPS:
            return SESSION_GROUPS[name]
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs if info is not None else {}
    for name in names:
        if any(d.scope in ("module", "class", "package") for d in defs.get(name, ())):
            return f"module:{item.nodeid.split('::')[0]}"
    return None


def assign_groups(items: list[pytest.Item]) -> None:
    """Mark each of C{items} with its group (one it was marked with stays)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        group = group_of(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(name=group))


_LOST: pytest.StashKey[str] = pytest.StashKey()


def check_grouped(items: list[pytest.Item]) -> None:
    """After xdist's hook, in a worker with C{--dist loadgroup}: a grouped item whose
    id does not carry its group (so its group is spread over the workers) is made
    to fail at setup (L{fail_if_ungrouped}), saying why. (Raising here would not
    do: xdist's main process would report a crashed worker and not the reason.)"""
    for item in items:
        mark = item.get_closest_marker("xdist_group")
        if mark is None or "@" in item.nodeid:
            continue
        if getattr(item.config.option, "loadgroup", False):
            name = mark.kwargs.get("name") or (mark.args[0] if mark.args else "default")
            item.stash[_LOST] = (
                f"--dist loadgroup: xdist did not put this test's group {name!r} in "
                "its id, so the group is spread over the workers (pytest 9.2 with "
                "pytest-xdist 3.8: pytest-xdist#1386; see pyproject.toml's bound on pytest)"
            )


def fail_if_ungrouped(item: pytest.Item) -> None:
    """Fail C{item} if L{check_grouped} found it lost its group."""
    why = item.stash.get(_LOST, None)
    if why is not None:
        pytest.fail(why, pytrace=False)
