"""The shell's tree() and kill() with supervisors: the tree of a running app, and a
supervised child killed from the shell restarted by its supervisor."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from ion.core import events
from ion.core.cc.container import Container
from ion.core.cc.shell_api import ShellApi
from ion.core.config import DEFAULTS, Config
from ion.core.process.process import Process
from tests.helpers import Collector
from tests.launch import REPO


async def supervised(make_container: Any) -> tuple[Container, ShellApi]:
    """A container running ion's supervised.app, and the shell's cc on it."""
    container = await make_container(config=Config(DEFAULTS).merged({"pack": {"root": str(REPO)}}))
    await container.start_app(REPO / "ion/res/apps/supervised.app")
    return container, ShellApi(container)


def row(cc: ShellApi, child_id: str) -> dict[str, str]:
    table = cc.tree()
    found = [r for r in table.rows if r[1] == child_id]
    assert len(found) == 1, str(table)
    return dict(zip(table.columns, found[0], strict=True))


@pytest_twisted.ensureDeferred
async def test_tree_shows_supervisors_children_and_roots(make_container: Any) -> None:
    """tree() lists the app's three levels indented in start order with child id,
    pid, state, restarts and each supervisor's strategy; a process under no
    supervisor is a root of its own (the container agent, spawned first, too)."""
    container, cc = await supervised(make_container)
    loner = await container.spawn(Process, name="loner")
    table = cc.tree()
    assert [r[0] for r in table.rows] == [
        "cc_agent", "supervised", "  pipeline", "    reader", "    writer", "  audit", "loner",
    ]  # fmt: skip
    top = container.proc_manager.find("supervised")
    assert table.rows[1] == [
        "supervised", "", str(top.id), "ACTIVE", "", "one_for_one (3 in 60s)",
    ]  # fmt: skip
    assert row(cc, "pipeline")["strategy"] == "one_for_all (2 in 10s)"
    reader = container.proc_manager.find("reader")
    assert row(cc, "reader") == {
        "process": "    reader", "child id": "reader", "id": str(reader.id),
        "state": "ACTIVE", "restarts": "0", "strategy": "",
    }  # fmt: skip
    assert table.rows[-1][:4] == ["loner", "", str(loner.id), "ACTIVE"]
    assert str(table).splitlines()[-1] == "7 processes"


@pytest_twisted.ensureDeferred
async def test_killing_a_supervised_child_in_the_shell_restarts_it(
    make_container: Any, logs: Any
) -> None:
    """kill('audit'): it ends killed, its supervisor restarts it with a new pid,
    and tree() shows the restart."""
    container, cc = await supervised(make_container)
    old = row(cc, "audit")["id"]
    restarted: Collector[Any] = Collector()
    listener = await container.spawn(Process, name="listener")
    await events.EventSubscriber(
        listener, event_id=1053, origin="#", handler=lambda e, m: restarted(e)
    ).start()
    assert str(await cc.kill("audit")) == f"killed {old} (killed)"
    (event,) = await restarted.wait(1)
    assert (event.supervision.child_id, event.supervision.reason) == ("audit", "killed")
    after = row(cc, "audit")
    assert after["id"] == event.supervision.new_pid != old
    assert (after["state"], after["restarts"]) == ("ACTIVE", "1")


@pytest_twisted.ensureDeferred
async def test_a_child_that_is_down_is_listed_without_a_pid(make_container: Any, logs: Any) -> None:
    """A transient child that ended normal stays down: tree() shows it, no pid, state down."""
    container, cc = await supervised(make_container)
    await cc.terminate("writer", "normal")
    await logs.wait_for_text("child writer (")
    assert row(cc, "writer") == {
        "process": "    writer", "child id": "writer", "id": "", "state": "down",
        "restarts": "0", "strategy": "",
    }  # fmt: skip
    assert row(cc, "reader")["state"] == "ACTIVE"
