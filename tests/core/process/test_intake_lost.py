"""A service whose queue someone else deletes: on RabbitMQ it serves the queue
declared again or, when that cannot be done, fails visibly (ERROR, an event, an
error log); on the embedded broker it fails visibly at once."""

from __future__ import annotations

import pytest
import pytest_twisted

from ion.core.messaging.amqp import AmqpBroker
from ion.core.object.proto.events_pb2 import ProcessLifecycleEvent as Lifecycle
from ion.services.hello.service import HelloServiceClient
from ion.test import RecordingProcess
from tests.rabbit import URL


async def _as_someone_else(*steps: tuple[str, str]) -> None:
    """Delete (kind, name) things from another connection, in order."""
    from twisted.internet import reactor

    other = AmqpBroker(reactor, URL, reconnect=False)
    await other.connect()
    try:
        for kind, name in steps:
            await (other.delete_exchange if kind == "exchange" else other.delete_queue)(name)
    finally:
        await other.close()


@pytest.mark.rabbitmq
@pytest.mark.ion_broker("amqp")
@pytest.mark.ion_container(apps=["hello"])
@pytest_twisted.ensureDeferred
async def test_a_service_whose_queue_was_deleted_serves_it_again(ion_container, logs):
    client = HelloServiceClient(container=ion_container)
    assert "one" in await client.hello("one")
    queue = ion_container.exchange.queue_name("hello")
    await _as_someone_else(("queue", queue))
    await logs.wait_for_text(f"queue {queue} declared and consumed again", timeout=10)
    assert "two" in await client.hello("two")
    assert ion_container.proc_manager.find("hello").state == "ACTIVE"


@pytest.mark.rabbitmq
@pytest.mark.ion_broker("amqp")
@pytest.mark.ion_container(apps=["hello"])
@pytest_twisted.ensureDeferred
async def test_a_service_whose_queue_cannot_come_back_fails_visibly(ion_container, logs):
    """Its exchange deleted too, the queue cannot be bound again: after
    broker.restore_timeout the service goes to ERROR, says so in an event and
    the log, and does not look restored."""
    ion_container.exchange.broker._conn._restorer.timeout = 0.5  # broker.restore_timeout
    hello = ion_container.proc_manager.find("hello")
    recorder = await ion_container.spawn(RecordingProcess)
    await recorder.subscribe(1052, origin=str(hello.id))
    queue = ion_container.exchange.queue_name("hello")
    await _as_someone_else(("exchange", ion_container.exchange.exchange_name), ("queue", queue))
    event = await recorder.events.wait_until(
        lambda e: e.process_lifecycle.state == Lifecycle.ERROR, timeout=15
    )
    assert event.origin == str(hello.id)
    assert hello.state == "ERROR"
    [error] = logs.texts_with("receives nothing more from")
    assert queue in error and "no exchange" in error
    assert not logs.texts_with("restored")


@pytest.mark.ion_broker("local")
@pytest.mark.ion_container(apps=["hello"])
@pytest_twisted.ensureDeferred
async def test_on_the_embedded_broker_a_service_whose_queue_was_deleted_fails_visibly(
    ion_container, ion_kit, logs
):
    hello = ion_container.proc_manager.find("hello")
    recorder = await ion_container.spawn(RecordingProcess)
    await recorder.subscribe(1052, origin=str(hello.id))
    queue = ion_container.exchange.queue_name("hello")
    other = ion_kit.brokers.connection()
    await other.connect()
    try:
        await other.delete_queue(queue)
    finally:
        await other.close()
    await recorder.events.wait_until(lambda e: e.process_lifecycle.state == Lifecycle.ERROR)
    assert hello.state == "ERROR"
    [error] = logs.texts_with("receives nothing more from")
    assert queue in error and "was deleted" in error
