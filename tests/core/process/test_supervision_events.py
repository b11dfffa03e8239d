"""Supervision events on the events exchange: a child restarted (1053) and a
supervisor giving up (1054), each naming the supervisor and its container."""

from __future__ import annotations

from typing import Any

import pytest_twisted

from ion.core import events
from ion.core.object.event_ids import EventId
from ion.core.process.process import Process
from tests.core.process.test_supervisor import crash, spec, starts, supervise
from tests.core.process.workers import ended
from tests.helpers import Collector


@pytest_twisted.ensureDeferred
async def test_a_subscriber_hears_a_restart_then_the_give_up(container: Any) -> None:
    """b crashes: 1053 names supervisor, child id, old and new pid, reason and the
    restart count; b crashes again within the period (intensity 1): 1054 says
    reached_max_restart_intensity with the supervisor's pid, flags and container."""
    journal: Collector[Any] = Collector()
    listener = await container.spawn(Process, name="listener")
    heard: Collector[Any] = Collector()
    for kind in (events.ChildRestartedEventSubscriber, events.SupervisorGaveUpEventSubscriber):  # type: ignore[attr-defined]
        await kind(listener, handler=lambda e, m: heard(e)).start()
    await container.spawn(Process, name="client")
    sup = await supervise(container, journal, [spec(n, journal) for n in "ab"])
    old = next(c["pid"] for c in sup.which_children() if c["id"] == "b")
    await crash(container, sup, "b", "error:Boom")
    await starts(journal, 4, container, sup)
    (restarted,) = await heard.wait(1)
    new = next(c["pid"] for c in sup.which_children() if c["id"] == "b")
    assert restarted.event_id == EventId.CHILD_RESTARTED and restarted.origin == str(sup.id)
    s = restarted.supervision
    assert (s.supervisor_id, s.child_id, s.old_pid, s.new_pid, s.reason, s.restarts) == (
        str(sup.id), "b", old, new, "error:Boom", 1,
    )  # fmt: skip
    assert restarted.container_id == container.id and s.strategy == "one_for_one"
    await crash(container, sup, "b", "error:Again")
    assert await ended(journal, "sup") == "shutdown"
    gave_up = (await heard.wait(2))[1]
    assert gave_up.event_id == EventId.SUPERVISOR_GAVE_UP and gave_up.origin == str(sup.id)
    g = gave_up.supervision
    assert (g.supervisor_id, g.reason, g.intensity, g.period) == (
        str(sup.id), "reached_max_restart_intensity", 1, 5.0,
    )  # fmt: skip
    assert gave_up.container_id == container.id
