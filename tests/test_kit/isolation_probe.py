"""One side of test_rabbit's two-runs-at-once test (run by it in a subprocess, never
collected on its own: the file name does not start with test_).

Environment: ION_PROBE_DIR (shared directory), ION_PROBE_TAG (this run), ION_PROBE_OTHER
(the other run). Both runs wait for each other before sending, so their traffic overlaps.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from ion.core.events import EventPublisher
from ion.core.object.event_ids import EventId
from ion.core.process.process import Process
from ion.test import RecordingProcess, RecordingService

ROUNDS = 20
PROBE = {"name": "probe", "target": RecordingService, "args": {"servicename": "probe"}}


async def _wait_for_file(path: Path, timeout: float = 60.0) -> None:
    """Wait until C{path} exists, checking every 20 ms, failing after C{timeout}s."""
    done: defer.Deferred[None] = defer.Deferred()

    def check() -> None:
        if path.exists() and not done.called:
            loop.stop()
            done.callback(None)

    loop = task.LoopingCall(check)
    loop.start(0.02)
    done.addTimeout(timeout, reactor, onTimeoutCancel=lambda r, t: (loop.stop(), r)[1])
    await done


class Publisher(EventPublisher):
    event_id = EventId.BUSINESS_STATE_MODIFICATION


@pytest.mark.ion_container(processes=[PROBE])
@pytest_twisted.ensureDeferred
async def test_probe(ion_container, ion_broker):
    """This run's calls and events reach only this run's processes, while the other runs."""
    assert ion_broker.is_amqp
    here = Path(os.environ["ION_PROBE_DIR"])
    tag, other = os.environ["ION_PROBE_TAG"], os.environ["ION_PROBE_OTHER"]
    probe = ion_container.proc_manager.find("probe")
    probe.replies["echo"] = lambda content, headers, msg: tag
    listener = await ion_container.spawn(RecordingProcess)
    await listener.subscribe(EventId.BUSINESS_STATE_MODIFICATION, origin="probe")
    caller = await ion_container.spawn(Process, name="caller")
    publisher = Publisher(caller, origin="probe")

    (here / f"{tag}.ready").write_text(ion_container.sysname)
    await _wait_for_file(here / f"{other}.ready")
    for i in range(ROUNDS):
        assert await caller.rpc_send("probe", "echo", f"{tag}-{i}") == tag
        await publisher.create_and_publish_event(resource_id=tag)
    await listener.events.wait(ROUNDS)
    (here / f"{tag}.done").write_text("")
    await _wait_for_file(here / f"{other}.done")  # the other run has sent all it sends

    assert (here / f"{other}.ready").read_text() != ion_container.sysname
    assert [m.content for m in probe.received("echo")] == [f"{tag}-{i}" for i in range(ROUNDS)]
    assert {e.resource_modification.resource_id for e in listener.events} == {tag}
    assert len(listener.events) == ROUNDS
