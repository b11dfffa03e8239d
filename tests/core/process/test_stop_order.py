"""Stopping a container terminates its processes newest first, each parent's
children (newest first) before the parent itself, whatever was terminated
before by hand."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest_twisted

from ion.core.process.process import Process


class Noted(Process):
    """Notes its name when it terminates."""

    ended: ClassVar[list[str]] = []

    def on_terminate(self) -> None:
        Noted.ended.append(self.proc_name)


@pytest_twisted.ensureDeferred
async def test_stop_terminates_newest_first_children_before_their_parent(
    make_container: Any,
) -> None:
    Noted.ended = []
    container = await make_container()
    await container.spawn(Noted, name="a")
    sup = await container.spawn(Noted, name="sup")
    kids = [await sup.spawn_child(Noted, name=f"kid{i}") for i in range(5)]
    await container.spawn(Noted, name="b")
    await container.terminate(kids[2])  # one from the middle, by hand
    assert sup.children == [kids[0], kids[1], kids[3], kids[4]]

    await container.stop()

    assert Noted.ended == ["kid2", "b", "kid4", "kid3", "kid1", "kid0", "sup", "a"]
    assert sup.children == []
    assert container.proc_manager.processes == {}
