"""Broker presence events through ion's L{AmqpBroker}: on the suite's own RabbitMQ node
(C{event_broker}, with C{rabbitmq_event_exchange}), deleting a queue, or closing the
connection that owns an exclusive one, is reported on C{amq.rabbitmq.event} with the
queue's C{name} and C{vhost} as str headers. On the shared broker, which has no such
plugin, binding to that exchange fails with L{NoSuchExchangeError}, and the
connection stays usable: that is how ion tells the plugin is absent.

Run with C{-s} to see the measured latencies.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import uuid4

import pytest
import pytest_twisted

from ion.core.exception import NoSuchExchangeError
from ion.core.messaging.amqp import AmqpBroker
from ion.core.messaging.broker import IDelivery
from tests.helpers import Collector, wait_for
from tests.rabbit import URL as SHARED_URL
from tests.rabbit import require_rabbitmq

pytestmark = pytest.mark.rabbitmq

EVENTS = "amq.rabbitmq.event"


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class Events:
    """A consumer of presence events: acks each and records (arrival time, delivery)."""

    def __init__(self) -> None:
        self.got: Collector[tuple[float, IDelivery]] = Collector()

    def __call__(self, delivery: IDelivery) -> None:
        arrived = time.perf_counter()
        delivery.ack()
        self.got((arrived, delivery))

    async def first(self, key: str, timeout: float = 10.0, **headers: Any) -> tuple[float, Any]:
        """(arrival time, delivery) of the first C{key} event whose headers include C{headers}."""

        def matches(item: tuple[float, IDelivery]) -> bool:
            d = item[1]
            return d.routing_key == key and all(d.headers.get(k) == v for k, v in headers.items())

        return (await self.got.wait_until(matches, timeout))[-1]


async def _connected(url: str, made: list[AmqpBroker], name: str | None = None) -> AmqpBroker:
    broker = AmqpBroker(_reactor(), url, reconnect=False, name=name)
    await wait_for(broker.connect(), timeout=10)
    made.append(broker)
    return broker


async def _close_all(made: list[AmqpBroker]) -> None:
    for broker in made:
        await wait_for(broker.close(), timeout=10)


async def _watch(broker: AmqpBroker, *keys: str) -> Events:
    """An exclusive queue of C{broker}'s bound to C{EVENTS} with C{keys}, consumed."""
    queue = await broker.declare_queue(f"watch.{uuid4().hex[:8]}", exclusive=True)
    for key in keys:
        await broker.bind_queue(queue, EVENTS, key)
    events = Events()
    await broker.consume(queue, events)
    return events


@pytest.mark.parametrize("how", ["close", "delete"])
@pytest_twisted.ensureDeferred
async def test_a_gone_exclusive_queue_is_reported_with_its_name_and_vhost(
    event_broker: str, how: str
) -> None:
    made: list[AmqpBroker] = []
    try:
        watcher = await _connected(event_broker, made)
        events = await _watch(watcher, "queue.deleted", "connection.closed")
        owner_name = f"owner-{uuid4().hex[:8]}"
        owner = await _connected(event_broker, made, name=owner_name)
        queue = await owner.declare_queue(f"owned.{uuid4().hex[:8]}", exclusive=True)

        began = time.perf_counter()
        if how == "close":
            await wait_for(owner.close(), timeout=10)
        else:
            await owner.delete_queue(queue)
        done = time.perf_counter()
        arrived, deleted = await events.first("queue.deleted", name=queue)

        headers = deleted.headers
        assert headers["name"] == queue and type(headers["name"]) is str
        assert headers["vhost"] == "/" and type(headers["vhost"]) is str
        assert deleted.exchange == EVENTS and deleted.body == b""
        # The broker deleted it for the closed connection; the owner deleted it itself.
        by = {"close": "rmq-internal", "delete": "guest"}[how]
        assert headers["user_who_performed_action"] == by
        print(f"[event_node] {how}: queue.deleted {1000 * (arrived - began):.1f} ms after "
              f"the {how} began ({how} itself took {1000 * (done - began):.1f} ms); "
              f"headers {_types(headers)}")  # fmt: skip

        if how == "close":
            # The connection's own notice names it by the connection_name ion gives it.
            arrived, closed = await events.first("connection.closed", user_provided_name=owner_name)
            print(f"[event_node] close: connection.closed {1000 * (arrived - began):.1f} ms "
                  f"after; headers {_types(closed.headers)}")  # fmt: skip
            assert type(closed.headers["user_provided_name"]) is str
    finally:
        await _close_all(made)


def _types(headers: dict[str, Any]) -> dict[str, str]:
    return {k: type(v).__name__ for k, v in sorted(headers.items())}


@pytest_twisted.ensureDeferred
async def test_the_event_exchange_is_there_on_the_event_node(event_broker: str) -> None:
    made: list[AmqpBroker] = []
    try:
        broker = await _connected(event_broker, made)
        assert await broker.exchange_exists(EVENTS)
    finally:
        await _close_all(made)


@pytest_twisted.ensureDeferred
async def test_without_the_plugin_binding_to_the_event_exchange_is_refused_and_harmless() -> None:
    """The shared broker has no event exchange: the bind fails with NoSuchExchangeError
    (404), which closes only the control channel; the connection goes on working."""
    require_rabbitmq()
    made: list[AmqpBroker] = []
    try:
        broker = await _connected(SHARED_URL, made)
        queue = await broker.declare_queue(f"watch.{uuid4().hex[:8]}", exclusive=True)
        with pytest.raises(NoSuchExchangeError, match="404|NOT_FOUND|no exchange"):
            await wait_for(broker.bind_queue(queue, EVENTS, "queue.deleted"), timeout=10)
        assert broker.is_open
        assert not await broker.exchange_exists(EVENTS)

        # Still usable: declare, bind, publish, consume.
        later = await broker.declare_queue(f"later.{uuid4().hex[:8]}", exclusive=True)
        await broker.bind_queue(later, "amq.direct", later)
        got: Collector[IDelivery] = Collector(ack=True)
        await broker.consume(later, got)
        await broker.publish("amq.direct", later, b"still here", confirm=True)
        assert [d.body for d in await got.wait(1, timeout=10)] == [b"still here"]
    finally:
        await _close_all(made)
