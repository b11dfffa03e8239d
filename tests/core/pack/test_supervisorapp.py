"""Apps with a supervisor: block: starting one spawns its top supervisor and the
tree in order; stopping it stops the tree in reverse; a bad child is found
before anything starts."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.exception import AppFileError
from ion.core.pack.app_manager import AppStartError
from ion.core.process.supervisor import Supervisor
from tests.core.pack.apps import tree
from tests.helpers import user_procs

MakeContainer = Callable[..., Awaitable[Container]]
REC = "tests.core.pack.apps.tree:Recorded"
REPO = Path(__file__).resolve().parents[3]

TREE = f"""\
type: application
name: tree
version: "1"
supervisor:
  strategy: one_for_one
  children:
    - {{id: first, start: "{REC}"}}
    - id: mid
      type: supervisor
      strategy: one_for_all
      children:
        - id: low
          type: supervisor
          children:
            - {{id: deep, start: "{REC}"}}
        - {{id: second, start: "{REC}"}}
    - {{id: last, start: "{REC}"}}
"""


@pytest.fixture(autouse=True)
def events() -> Iterator[list[tuple[str, str]]]:
    tree.EVENTS.items.clear()
    yield tree.EVENTS.items
    tree.EVENTS.items.clear()


async def started(make_container: MakeContainer, tmp_path: Path, text: str = TREE) -> Any:
    """A container and the path of C{tree.app} holding C{text}."""
    path = tmp_path / "tree.app"
    path.write_text(text)
    container = await make_container(config=Config(DEFAULTS).merged({"pack": {"root": str(REPO)}}))
    return container, path


def names(container: Container) -> list[str]:
    return sorted(p.proc_name for p in user_procs(container).values())


@pytest_twisted.ensureDeferred
async def test_start_spawns_the_tree_in_order_and_stop_ends_it_in_reverse(
    make_container: MakeContainer, tmp_path: Path, events: list[tuple[str, str]]
) -> None:
    """The top supervisor is a process named after the app, the app's state; three
    levels start depth first in spec order and terminate in exactly the reverse."""
    container, path = await started(make_container, tmp_path)
    await container.start_app(path)
    starts = [e for e in events if e[0] == "start"]
    assert starts == [("start", n) for n in ("first", "deep", "second", "last")]
    top = container.proc_manager.find("tree")
    assert isinstance(top, Supervisor)
    assert [c["id"] for c in top.which_children()] == ["first", "mid", "last"]
    mid = container.proc_manager.find("mid")
    assert isinstance(mid, Supervisor) and mid.flags.strategy == "one_for_all"
    assert names(container) == ["deep", "first", "last", "low", "mid", "second", "tree"]
    await container.stop_app("tree")
    stops = [e for e in events if e[0] == "terminate"]
    assert stops == [("terminate", n) for n in ("last", "second", "deep", "first")]
    assert names(container) == [] and top.exit_reason == "shutdown"


@pytest_twisted.ensureDeferred
async def test_a_child_class_that_is_not_there_is_found_before_anything_starts(
    make_container: MakeContainer, tmp_path: Path, events: list[tuple[str, str]]
) -> None:
    """A nested child whose class cannot be imported fails start_app with the file,
    line and field of its start; no process was spawned."""
    text = TREE.replace('{id: deep, start: "' + REC + '"}', '{id: deep, start: "no.such:Thing"}')
    container, path = await started(make_container, tmp_path, text)
    with pytest.raises(AppFileError) as caught:
        await container.start_app(path)
    assert caught.value.field == "supervisor.children[1].children[0].children[0].start"
    assert caught.value.line == 15 and str(caught.value).startswith(f"{path}:15: ")
    assert events == [] and names(container) == []


@pytest_twisted.ensureDeferred
async def test_a_supervisor_child_must_be_a_supervisor(
    make_container: MakeContainer, tmp_path: Path
) -> None:
    """type: supervisor with a start class that is no Supervisor is refused before start."""
    text = TREE.replace("      type: supervisor\n      strategy: one_for_all\n",
                        f"      type: supervisor\n      start: \"{REC}\"\n")  # fmt: skip
    container, path = await started(make_container, tmp_path, text)
    with pytest.raises(
        AppFileError, match=r"field 'supervisor.children\[1\].start': .* is not a Supervisor"
    ):
        await container.start_app(path)


@pytest_twisted.ensureDeferred
async def test_a_child_that_fails_to_start_fails_the_app_and_leaves_nothing(
    make_container: MakeContainer, tmp_path: Path, events: list[tuple[str, str]]
) -> None:
    """A child whose init raises: those started are stopped in reverse, the app's
    start fails naming the file and its supervisor field, no process is left."""
    text = TREE.replace('{id: last, start: "' + REC + '"}',
                        '{id: last, start: "' + REC + '", args: {fail_init: true}}')  # fmt: skip
    container, path = await started(make_container, tmp_path, text)
    with pytest.raises(AppStartError) as caught:
        await container.start_app(path)
    assert caught.value.field == "supervisor" and caught.value.line == 4
    assert "child last failed to start" in str(caught.value)
    stops = [e[1] for e in events if e[0] == "terminate"]
    assert stops == ["last", "second", "deep", "first"]  # the failed one is ended first
    assert names(container) == [] and not container.app_manager.is_running("tree")
