"""Calls and sends while RabbitMQ blocks the connection (its resource alarm):
they end at their deadline, and what their callers gave up on is not run after
the unblock."""

from __future__ import annotations

import pytest
import pytest_twisted

from ion.core.exception import TimeoutError
from ion.core.process.process import Process
from ion.test import RecordingService
from tests.helpers import wait_for
from tests.rabbit import block, unblock

pytestmark = [pytest.mark.rabbitmq, pytest.mark.ion_broker("amqp")]


@pytest.mark.ion_container(
    processes=[{"name": "probe", "target": RecordingService, "args": {"servicename": "probe"}}]
)
@pytest_twisted.ensureDeferred
async def test_calls_and_sends_while_blocked_end_at_their_deadline_and_are_not_run(
    ion_container,
):
    probe = ion_container.proc_manager.find("probe")
    caller = await ion_container.spawn(Process, name="caller")
    broker = ion_container.exchange.broker._conn
    block(broker)
    with pytest.raises(TimeoutError):
        await wait_for(caller.rpc_send("probe", "work", "too late", timeout=0.3), timeout=5)
    with pytest.raises(TimeoutError, match="did not take a message to 'probe' within 0.3s"):
        await wait_for(caller.send("probe", "note", "too late", timeout=0.3), timeout=5)
    unblock(broker)
    await caller.rpc_send("probe", "work", "in time")
    assert [m.content for m in probe.received()] == ["in time"]
