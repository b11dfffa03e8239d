"""Queues a broker connection lost its hold on, won back or given up visibly:
an exclusive queue still held by another connection after a reconnect
(RESOURCE_LOCKED), a queue deleted by someone else (the broker's basic.cancel).

Through a proxy each test owns (see conftest), on RabbitMQ; the backoff on a
test clock.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from ion.core.exception import ConnectionLostError, ResourceLockedError
from ion.core.messaging.amqp import AmqpBroker
from ion.core.messaging.amqp_restore import Restorer
from tests.helpers import Collector, closed_port, wait_for
from tests.rabbit import URL


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


async def _other() -> AmqpBroker:
    """A second connection, straight to the broker (someone else on it)."""
    other = AmqpBroker(_reactor(), URL, reconnect=False)
    await other.connect()
    return other


async def _exclusive_consumer(broker: AmqpBroker, queue: str) -> tuple[Collector, str, Collector]:
    """Consume exclusive C{queue} on C{broker}: (deliveries, tag, reconnects)."""
    await broker.declare_queue(queue, exclusive=True, auto_delete=True)
    got = Collector(ack=True)
    tag = await broker.consume(queue, got)
    back = Collector()
    broker.on_reconnected(lambda: back(True))
    return got, tag, back


async def _receives(broker: AmqpBroker, queue: str, got: Collector, body: bytes) -> None:
    await broker.publish("", queue, body, mandatory=True, confirm=True)
    await got.wait_until(lambda d: d.body == body, timeout=10)


async def _reconnect_to_a_held_queue(proxy: Any, target: dict, logs: Any, queue: str) -> Any:
    """Cut the link; before it reconnects, another connection takes exclusive C{queue};
    return that connection (closing it frees the queue)."""
    target["port"] = closed_port()  # reconnects fail until the other connection holds it
    proxy.cut()
    await logs.wait_for_text("connection to", timeout=10)
    holder = await _other()
    await holder.declare_queue(queue, exclusive=True, auto_delete=True)
    target["port"] = proxy.port
    return holder


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_an_exclusive_queue_locked_after_a_reconnect_is_retried_until_free(
    proxy: Any, switchable: Any, prefix: str, logs: Any
) -> None:
    """The replay finds the queue held by another connection (as by a dead one the
    broker has not dropped yet): no "restored", a retry with backoff, and the
    consumer is back once the queue is free."""
    broker, target = await switchable()
    queue = f"{prefix}.q"
    got, tag, back = await _exclusive_consumer(broker, queue)
    holder = await _reconnect_to_a_held_queue(proxy, target, logs, queue)
    try:
        await logs.wait_for_text("reconnected, but not restored", timeout=15)
        assert logs.texts_with("RESOURCE_LOCKED")
        assert back.items == []  # not announced as restored
        assert tag in broker._consumers
        assert broker.restoring(queue)  # what is sent to it now would not arrive
    finally:
        await holder.close()  # the queue goes with it
    await back.wait(1, timeout=15)
    assert not broker.restoring(queue)
    assert logs.texts_with(f"queue {queue} declared and consumed again")
    await _receives(broker, queue, got, b"after")


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_queue_locked_for_good_is_given_up_and_said(
    proxy: Any, switchable: Any, prefix: str, logs: Any
) -> None:
    """Still locked after restore_timeout: the consumer is given up, its owner told
    (on_consumer_failed), an error logged, and the reconnect never called restored."""
    broker, target = await switchable(restore_timeout=1.0)
    queue = f"{prefix}.q"
    _got, tag, back = await _exclusive_consumer(broker, queue)
    failed = Collector()
    broker.on_consumer_failed(lambda t, q, e: failed((t, q, e)))
    holder = await _reconnect_to_a_held_queue(proxy, target, logs, queue)
    try:
        [(failed_tag, failed_queue, error)] = await failed.wait(1, timeout=15)
    finally:
        await holder.close()
    assert (failed_tag, failed_queue) == (tag, queue)
    assert "RESOURCE_LOCKED" in str(error)
    assert logs.texts_with(f"gave up restoring queue {queue} after 1s")
    assert tag not in broker._consumers
    assert back.items == []


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_queue_deleted_by_someone_else_is_declared_and_consumed_again(
    make_broker: Any, prefix: str, logs: Any
) -> None:
    """RabbitMQ cancels the consumers of a deleted queue (basic.cancel): the queue is
    declared again, bound again and consumed, so messages routed to it are served."""
    broker = await make_broker()
    queue, exchange = f"{prefix}.q", f"{prefix}.ex"
    await broker.declare_exchange(exchange, "direct")
    await broker.declare_queue(queue)
    await broker.bind_queue(queue, exchange, "key")
    got = Collector(ack=True)
    await broker.consume(queue, got)
    other = await _other()
    try:
        await other.delete_queue(queue)
    finally:
        await other.close()
    await logs.wait_for_text(f"queue {queue} declared and consumed again", timeout=10)
    await broker.publish(exchange, "key", b"routed", mandatory=True, confirm=True)
    await got.wait_until(lambda d: d.body == b"routed", timeout=10)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_our_own_delete_of_a_consumed_queue_is_not_undone(
    make_broker: Any, prefix: str, logs: Any
) -> None:
    broker = await make_broker()
    queue = await broker.declare_queue(f"{prefix}.q")
    await broker.consume(queue, Collector(ack=True))
    await broker.delete_queue(queue)
    assert not await wait_for(broker.queue_exists(queue))
    assert not logs.texts_with("cancelled consumer")


class _Topology:
    """Stands in for a Topology whose restore of a queue fails C{fails} times."""

    def __init__(self, fails: int, error: Exception | None = None) -> None:
        self.fails = fails
        self.error = error or ResourceLockedError("RESOURCE_LOCKED - held elsewhere")
        self.tries: list[float] = []
        self.anew: list[bool] = []
        self.given_up: list[str] = []
        self.clock = task.Clock()
        self.consumers = 1  # as the broker counts them on the queue (None: no queue)
        self.looked: list[float] = []

    async def restore(self, queue: str, consume: Any, anew: bool = False) -> None:
        self.tries.append(self.clock.seconds())
        self.anew.append(anew)
        if len(self.tries) <= self.fails:
            raise self.error

    def consumers_of(self, queue: str) -> list[Any]:
        return [_Consumer()]

    async def declare_again(self, queue: str) -> None:
        pass

    async def queue_info(self, queue: str) -> tuple[int, int] | None:
        self.looked.append(self.clock.seconds())
        return None if self.consumers is None else (0, self.consumers)

    def give_up_on(self, queue: str) -> list[Any]:
        self.given_up.append(queue)
        return []


class _Consumer:
    cancelled = False


def _restorer(topology: _Topology, timeout: float = 60.0) -> tuple[Restorer, list, list]:
    restored: list[bool] = []
    given_up: list[tuple] = []
    r = Restorer(
        topology.clock,
        topology,  # type: ignore[arg-type]
        lambda c: defer.succeed(c.tag),
        "test",
        timeout=timeout,
        max_delay=4.0,
        on_restored=lambda: restored.append(True),
        on_given_up=lambda q, cs, e: given_up.append((q, e)),
    )
    return r, restored, given_up


def test_retries_back_off_on_the_clock_until_the_queue_is_back() -> None:
    topology = _Topology(fails=4)
    r, restored, given_up = _restorer(topology)
    r.add({"q": ResourceLockedError("first")})
    topology.clock.pump([0.25] * 80)
    assert topology.tries == [0.5, 1.5, 3.5, 7.5, 11.5]  # 0.5, then doubling up to max_delay
    assert restored == [True] and given_up == [] and not r.busy


def test_a_queue_still_broken_after_the_timeout_is_given_up_not_restored() -> None:
    topology = _Topology(fails=1000)
    r, restored, given_up = _restorer(topology, timeout=10.0)
    r.add({"q": ResourceLockedError("first")})
    topology.clock.pump([0.25] * 200)
    assert given_up == [("q", topology.error)] and topology.given_up == ["q"]
    assert restored == [] and not r.busy
    assert topology.tries[-1] >= 10.0 and not topology.clock.getDelayedCalls()


def test_a_lost_connection_stops_the_retries() -> None:
    topology = _Topology(fails=1000, error=ConnectionLostError("gone"))
    r, restored, given_up = _restorer(topology, timeout=1.0)
    r.add({"q": ResourceLockedError("first")})
    topology.clock.pump([0.25] * 40)
    r.stop()
    topology.clock.pump([0.25] * 40)
    assert len(topology.tries) == 1 and restored == given_up == []
    assert not topology.clock.getDelayedCalls()


def test_a_lost_queue_is_looked_at_again_after_its_restore() -> None:
    """All is well: the queue, declared again, has its consumers at each look."""
    topology = _Topology(fails=0)
    r, restored, _ = _restorer(topology)
    r.lost("q", ResourceLockedError("cancelled"))
    topology.clock.pump([0.25] * 40)
    assert topology.tries == [0.0] and topology.anew == [False] and restored == [True]
    assert topology.looked == [1.0, 4.0] and not topology.clock.getDelayedCalls()


@pytest.mark.parametrize("after", [None, 0], ids=["queue-gone", "no-consumer"])
def test_a_lost_queue_gone_again_after_its_restore_is_consumed_anew(after: int | None) -> None:
    """The broker's clean-up of a lost node deletes the queue declared again, or
    leaves it with no consumer: it is declared again and its consumers started
    anew, then looked at again."""
    topology = _Topology(fails=0)
    r, restored, _ = _restorer(topology)
    r.lost("q", ResourceLockedError("cancelled"))
    topology.clock.pump([0.25] * 3)
    topology.consumers = after
    topology.clock.pump([0.25] * 2)  # the look at 1.0 s finds it so
    topology.consumers = 1
    topology.clock.pump([0.25] * 40)
    assert topology.tries == [0.0, 1.0] and topology.anew == [False, True]
    assert topology.looked == [1.0, 2.0, 5.0] and restored == [True, True]
    assert not topology.clock.getDelayedCalls()


def test_a_stop_ends_the_looks_at_a_lost_queue() -> None:
    topology = _Topology(fails=0)
    r, _, _ = _restorer(topology)
    r.lost("q", ResourceLockedError("cancelled"))
    topology.clock.pump([0.25])
    r.stop()  # the connection went: its replay declares the queue again
    assert not topology.clock.getDelayedCalls() and topology.looked == []
