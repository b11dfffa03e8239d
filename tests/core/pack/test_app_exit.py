"""An app whose top supervisor ends by itself: its start type (S15, S16 of the
supervision notes) on a fake clock; and `twistd -n cc` exiting non-zero for a
permanent app."""

from __future__ import annotations

import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import task

from ion.core import events
from ion.core import exception as exc
from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.pack.app_exit import stops_container
from ion.core.process.process import Process
from tests.core.pack.apps import tree
from tests.helpers import Collector, user_procs, wait_for
from tests.launch import REPO, TIMEOUT, cc_command, clean_env

MakeContainer = Callable[..., Awaitable[Container]]
REC = "tests.core.pack.apps.tree:Recorded"

NESTED = f"""\
type: application
name: nested
version: "1"
supervisor:
  strategy: one_for_one
  intensity: 1
  period: 5
  children:
    - id: mid
      type: supervisor
      restart: {{restart}}
      intensity: 0
      children:
        - {{{{id: w, start: "{REC}", args: {{args}}}}}}
"""


def nested(restart: str = "permanent", args: str = "{}") -> str:
    return NESTED.format(restart=restart, args=args)


@pytest.fixture(autouse=True)
def journal() -> Iterator[Collector[tuple[str, str]]]:
    tree.EVENTS.items.clear()
    yield tree.EVENTS
    tree.EVENTS.items.clear()


async def boot(make_container: MakeContainer, tmp_path: Path, text: str, start_type: str) -> Any:
    """A container on a fake clock (its app manager's, which the tree counts on)
    running C{nested.app}; its on_fatal records instead of stopping it."""
    path = tmp_path / "nested.app"
    path.write_text(text)
    container = await make_container(config=Config(DEFAULTS).merged({"pack": {"root": str(REPO)}}))
    container.app_manager.clock = clock = task.Clock()
    container.app_manager.on_fatal = fatal = Collector()
    listener = await container.spawn(Process, name="listener")
    got: Collector[Any] = Collector()
    await events.EventSubscriber(
        listener, event_id=1075, origin="nested", handler=lambda e, m: got(e)
    ).start()
    await container.start_app(path, start_type=start_type)
    return container, clock, fatal, got


async def crash(container: Container, journal: Collector[Any], starts: int) -> None:
    """Make the worker w crash; wait for its C{starts}-th start (0: do not wait)."""
    client = container.proc_manager.find("listener")
    assert client is not None
    w = container.proc_manager.find("w")
    assert w is not None
    with pytest.raises(exc.ReceivedError):
        await wait_for(client.rpc_send(str(w.id), "crash"))
    if starts:
        await journal.wait_until(lambda _: journal.items.count(("start", "w")) >= starts)


def mid_of(container: Container) -> dict[str, Any]:
    top = container.proc_manager.find("nested")
    assert top is not None
    return next(c for c in top.which_children() if c["id"] == "mid")  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_s15_mid_gives_up_is_restarted_then_top_gives_up_and_a_permanent_app_fails(
    make_container: MakeContainer, tmp_path: Path, journal: Any, logs: Any
) -> None:
    """S15: w crashes: mid (intensity 0) gives up, top restarts it; w crashes again
    within the period: mid gives up, top (1 restart in 5 s) gives up; the app
    manager sees the app fail: FAILED event, not running, and (permanent) on_fatal."""
    container, _, fatal, got = await boot(make_container, tmp_path, nested(), "permanent")
    first_mid = mid_of(container)["pid"]
    await crash(container, journal, starts=2)
    assert mid_of(container)["restarts"] == 1 and mid_of(container)["pid"] != first_mid
    assert fatal.items == [] and container.app_manager.is_running("nested")
    await crash(container, journal, starts=0)
    (why,) = await fatal.wait(1)
    assert why == "app nested ended: its top supervisor exited shutdown (start_type permanent)"
    assert not container.app_manager.is_running("nested")
    assert len(logs.texts_with("reached_max_restart_intensity")) == 3  # mid twice, then top
    failed = (await got.wait_until(lambda e: e.app_lifecycle.state == 3))[-1]  # FAILED
    assert failed.container_id == container.id
    assert [p.proc_name for p in user_procs(container).values()] == ["listener"]


@pytest_twisted.ensureDeferred
async def test_restarts_outside_the_period_keep_the_app_up(
    make_container: MakeContainer, tmp_path: Path, journal: Any
) -> None:
    """The tree counts on the app manager's clock: the same two crashes 6 s apart
    (period 5) make top restart mid twice, and the app stays up."""
    container, clock, fatal, _ = await boot(make_container, tmp_path, nested(), "permanent")
    await crash(container, journal, starts=2)
    clock.advance(6)
    await crash(container, journal, starts=3)
    assert mid_of(container)["restarts"] == 2 and fatal.items == []
    assert container.app_manager.is_running("nested")


@pytest_twisted.ensureDeferred
async def test_s16_a_transient_mid_that_gives_up_is_not_restarted(
    make_container: MakeContainer, tmp_path: Path, journal: Any, logs: Any
) -> None:
    """S16: mid transient gives up (exit shutdown, normal for transient): top does
    not restart it; the app stays up with mid listed without a pid."""
    text = nested(restart="transient")
    container, _, fatal, _ = await boot(make_container, tmp_path, text, "permanent")
    await crash(container, journal, starts=0)
    await logs.wait_for_text("child mid (")
    assert mid_of(container) == {"id": "mid", "pid": None, "type": "supervisor", "restarts": 0}
    assert container.app_manager.is_running("nested") and fatal.items == []
    assert container.proc_manager.find("w") is None


@pytest_twisted.ensureDeferred
async def test_a_temporary_app_that_fails_is_only_reported(
    make_container: MakeContainer, tmp_path: Path, journal: Any, logs: Any
) -> None:
    """start_type temporary (the default): the app is gone and a FAILED event and
    a warning say so; the container goes on."""
    container, _, fatal, got = await boot(make_container, tmp_path, nested(), "temporary")
    await crash(container, journal, starts=2)
    await crash(container, journal, starts=0)
    await got.wait_until(lambda e: e.app_lifecycle.state == 3)
    assert not container.app_manager.is_running("nested") and fatal.items == []
    assert logs.texts_with("(start_type temporary: only reported)")
    assert container.running


@pytest_twisted.ensureDeferred
async def test_a_transient_app_ending_normal_is_only_reported(
    make_container: MakeContainer, tmp_path: Path
) -> None:
    """A transient app whose top supervisor exits normal is reported, not fatal."""
    container, _, fatal, got = await boot(make_container, tmp_path, nested(), "transient")
    await container.proc_manager.terminate("nested", "normal")
    await got.wait_until(lambda e: e.app_lifecycle.state == 3)
    assert fatal.items == [] and not container.app_manager.is_running("nested")


@pytest_twisted.ensureDeferred
async def test_stop_app_is_not_a_failure(make_container: MakeContainer, tmp_path: Path) -> None:
    """Stopping a permanent app ends its top supervisor as asked: STOPPED, not fatal."""
    container, _, fatal, got = await boot(make_container, tmp_path, nested(), "permanent")
    await container.stop_app("nested")
    stopped = (await got.wait_until(lambda e: e.app_lifecycle.state == 2))[-1]
    assert stopped.app_lifecycle.app_name == "nested" and fatal.items == []
    assert [e.app_lifecycle.state for e in got.items] == [1, 2]  # STARTED, STOPPED


def test_start_types_as_otp() -> None:
    """permanent always stops the container; transient unless the reason is normal
    (a give-up's shutdown is not); temporary never."""
    table = {
        (kind, reason): stops_container(kind, reason)
        for kind in ("permanent", "transient", "temporary")
        for reason in ("normal", "shutdown", "killed")
    }
    assert [k for k, stops in table.items() if stops] == [
        ("permanent", "normal"), ("permanent", "shutdown"), ("permanent", "killed"),
        ("transient", "shutdown"), ("transient", "killed"),
    ]  # fmt: skip


def test_twistd_exits_non_zero_when_a_permanent_apps_tree_gives_up(tmp_path: Path) -> None:
    """S15 in a real `twistd -n cc`: a worker that crashes as soon as it starts
    takes mid, then top down; the release says permanent: the container stops,
    exit 1, after logging why."""
    (tmp_path / "nested.app").write_text(nested(args="{crash_at_start: true}"))
    (tmp_path / "r.rel").write_text(
        "type: release\nname: r\nversion: '1'\n"
        "apps:\n  - ioncore\n  - {name: nested, start_type: permanent}\n"
    )
    done = subprocess.run(
        cc_command("appexit", "-n", "-a", f"pack.app_path=[{tmp_path}]", str(tmp_path / "r.rel")),
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "reached_max_restart_intensity" in out
    critical = [line for line in out.splitlines() if " CRITICAL: " in line]
    assert len(critical) == 1, out
    assert (
        "app nested ended: its top supervisor exited shutdown (start_type permanent)"
        in (critical[0])
    )
