"""The AMQP connection when the broker goes silent, the link flaps while a
reconnect is under way, or the connection closes with work pending: every wait
is bounded, every operation ends, every consumer comes back once and only once.

Through a proxy each test owns, and servers that misbehave (see conftest).
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint

from ion.core.config import DEFAULTS, Config
from ion.core.exception import (
    BrokerError,
    ConnectionClosedError,
    ConnectionLostError,
    StartupError,
)
from ion.core.messaging.amqp import AmqpBroker
from ion.core.messaging.amqp_channel import Consumer
from ion.core.messaging.amqp_topology import Topology
from ion.core.messaging.exchange import ExchangeManager
from tests.helpers import Collector, wait_for
from tests.rabbit import URL, block, delete_systems, unblock


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _towards(port: int) -> Any:
    return lambda reactor, _params: TCP4ClientEndpoint(reactor, "127.0.0.1", port)


async def _consuming(make_broker: Any, prefix: str, **kwargs: Any) -> tuple[Any, ...]:
    """A broker through the proxy consuming C{<prefix>.q}: (broker, queue, a
    Collector of its deliveries, the consumer's tag, a Collector of reconnects)."""
    broker = await make_broker(**kwargs)
    queue = await broker.declare_queue(f"{prefix}.q")
    got = Collector(ack=True)
    tag = await broker.consume(queue, got)
    back = Collector()
    broker.on_reconnected(lambda: back(True))
    return broker, queue, got, tag, back


async def _still_receives(broker: AmqpBroker, queue: str, got: Collector) -> None:
    await broker.publish("", queue, b"after", confirm=True)
    assert [d.body for d in await got.wait(1, timeout=10)] == [b"after"]


# --- a broker that takes the connection and says nothing -----------------------------------


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_silent_broker_fails_the_first_connect_after_the_handshake_timeout(
    mute_server: Any,
) -> None:
    """pika's adapter never times a handshake out: ion does, and says so."""
    port, connected = mute_server
    broker = AmqpBroker(_reactor(), URL, endpoint_factory=_towards(port), handshake_timeout=0.5)
    with pytest.raises(BrokerError, match="no answer to the AMQP handshake within 0.5s"):
        await wait_for(broker.connect(), timeout=5)
    assert len(connected.items) == 1
    await wait_for(broker.close())


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_reconnect_to_a_silent_broker_is_given_up_and_retried(
    proxy: Any, switchable: Any, mute_server: Any, logs: Any
) -> None:
    """A reconnect whose handshake gets no answer is dropped and tried again, so
    the link comes back once the broker answers."""
    port, connected = mute_server
    broker, target = await switchable(handshake_timeout=0.5)
    back = Collector()
    broker.on_reconnected(lambda: back(True))
    target["port"] = port
    proxy.cut()
    await connected.wait(1, timeout=10)
    await logs.wait_for_text("no answer to the AMQP handshake", timeout=5)
    target["port"] = proxy.port
    await back.wait(1, timeout=10)
    assert broker.is_open


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_boot_against_a_silent_broker_ends_after_its_attempts(mute_server: Any) -> None:
    """Boot retries a broker that never answers, then fails with StartupError."""
    port, connected = mute_server
    broker = AmqpBroker(_reactor(), URL, endpoint_factory=_towards(port), handshake_timeout=0.3)
    config = Config(DEFAULTS).merged({"broker": {"connect_attempts": 2, "retry_delay": 0.1}})
    manager = ExchangeManager(broker, f"silent{uuid4().hex[:6]}", config, _reactor())
    with pytest.raises(StartupError, match="after 2 attempts: .*no answer to the AMQP handshake"):
        await wait_for(defer.ensureDeferred(manager.boot()), timeout=10)
    assert len(connected.items) == 2
    await wait_for(broker.close())


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_close_while_the_broker_is_unreachable_is_bounded(
    proxy: Any, make_broker: Any, logs: Any
) -> None:
    """A close nobody answers (a network black hole) drops the connection after
    the handshake timeout instead of waiting out the heartbeats."""
    broker = await make_broker(handshake_timeout=0.5)
    proxy.hold()
    await wait_for(broker.close(), timeout=5)
    assert "closed" in repr(broker)
    assert logs.texts_with("no answer to close within 0.5s")


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_close_during_a_handshake_leaves_no_timer(mute_server: Any) -> None:
    port, connected = mute_server
    reactor = _reactor()
    broker = AmqpBroker(reactor, URL, endpoint_factory=_towards(port), handshake_timeout=30)
    connecting = broker.connect()
    connecting.addErrback(lambda f: f.trap(ConnectionClosedError))
    await connected.wait(1, timeout=5)
    await wait_for(broker.close())
    left = [c for c in reactor.getDelayedCalls() if "Link." in getattr(c.func, "__qualname__", "")]
    assert left == []


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_handshake_timing_out_while_consumers_resume_is_retried(
    proxy: Any, make_broker: Any, prefix: str, logs: Any
) -> None:
    """The timeout also bounds the replay: a consumer the broker is slow to
    resume times the reconnect out (not just that consumer), and the next
    reconnect resumes every consumer."""
    broker, queue, got, tag, back = await _consuming(make_broker, prefix, handshake_timeout=1.0)
    consume = broker._sub.consume
    slowed: list[str] = []

    async def slow_once(c: Consumer) -> str:
        if not slowed:  # as a broker slower than the timeout to answer
            slowed.append(c.tag)
            await defer.Deferred()  # the timeout's cancel arrives here
        return await consume(c)

    broker._sub.consume = slow_once
    proxy.cut()
    await back.wait(1, timeout=15)
    assert logs.texts_with("no answer to the AMQP handshake within 1s")
    assert not logs.texts_with("not resumed")
    assert tag in broker._consumers
    await _still_receives(broker, queue, got)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_publish_before_the_queues_are_back_fails_rather_than_vanish(
    proxy: Any, make_broker: Any, prefix: str
) -> None:
    """While a reconnect declares the queues again, a publish that could find its
    queue missing (an exclusive one, gone with the old connection) fails with
    ConnectionLostError instead of being confirmed and dropped."""
    broker = await make_broker()
    queue = await broker.declare_queue(f"{prefix}.q", exclusive=True)
    await broker.consume(queue, Collector(ack=True))
    topology = broker._topology
    declare_queue = topology.declare_queue
    replaying: defer.Deferred[None] = defer.Deferred()
    go_on: defer.Deferred[None] = defer.Deferred()

    async def held(*args: Any) -> Any:
        if not replaying.called:
            replaying.callback(None)
        await go_on
        return await declare_queue(*args)

    topology.declare_queue = lambda *args: defer.ensureDeferred(held(*args))
    back = Collector()
    broker.on_reconnected(lambda: back(True))
    proxy.cut()
    await wait_for(replaying, timeout=10)
    assert broker._link.state == "recovering"
    with pytest.raises(ConnectionLostError):
        await wait_for(broker.publish("", queue, b"too early", confirm=True))
    go_on.callback(None)
    await back.wait(1, timeout=10)


# --- the link flapping while a reconnect resumes the consumers ------------------------------


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_consumer_being_resumed_when_the_link_drops_again_comes_back_later(
    proxy: Any, make_broker: Any, prefix: str
) -> None:
    """The connection drops while a reconnect resumes a consumer: the next
    reconnect resumes it, and it receives."""
    broker, queue, got, tag, back = await _consuming(make_broker, prefix)
    consume = broker._sub.consume
    dropped: list[bool] = []

    async def drop_once_while_resuming(c: Consumer) -> str:
        if broker._core.state == "recovering" and not dropped:
            dropped.append(True)
            proxy.cut()
        return await consume(c)

    broker._sub.consume = drop_once_while_resuming
    proxy.cut()
    await back.wait(1, timeout=20)
    assert dropped and tag in broker._consumers
    await _still_receives(broker, queue, got)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_handlers_of_resumed_consumers_can_answer_while_recovering(
    proxy: Any, make_broker: Any, prefix: str
) -> None:
    """Messages that waited while the link was down reach their consumer as soon
    as it is resumed, before the rest of the topology; their handlers can publish
    (answer) at once rather than lose the answer."""
    service = await make_broker()
    client = AmqpBroker(_reactor(), URL)
    await client.connect()
    try:
        requests = await service.declare_queue(f"{prefix}.q")
        later = await service.declare_queue(f"{prefix}.wire")  # resumed after `requests`
        answers = await client.declare_queue("", exclusive=True, auto_delete=True)
        answered = Collector(ack=True)
        await client.consume(answers, answered)
        states: list[str] = []

        def handle(delivery: Any) -> None:
            states.append(service._core.state)
            service.publish("", answers, b"re:" + delivery.body)
            delivery.ack()

        await service.consume(requests, handle)
        await service.consume(later, Collector(ack=True))
        proxy.hold()
        proxy.cut()
        for i in range(5):
            await client.publish("", requests, b"%d" % i, confirm=True)
        proxy.restore()
        got = await answered.wait(5, timeout=15)
        assert sorted(d.body for d in got) == [b"re:%d" % i for i in range(5)]
        assert "recovering" in states  # the case under test did happen
    finally:
        await client.close()


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_consumer_cancelled_while_consumers_resume_stays_cancelled(
    make_broker: Any, prefix: str
) -> None:
    """The broker closes the consumer channel (here over an unknown delivery tag);
    a consumer cancelled while the others are being resumed does not come back."""
    broker = await make_broker()
    first = await broker.declare_queue(f"{prefix}.q")
    second = await broker.declare_queue(f"{prefix}.wire")
    await broker.consume(first, Collector(ack=True))
    got = Collector(ack=True)
    tag = await broker.consume(second, got)
    resumed = Collector()
    resume = broker._topology.resume_consumers

    async def noting_the_end(consume: Any) -> None:
        try:
            await resume(consume)
        finally:
            resumed(True)

    broker._topology.resume_consumers = noting_the_end
    chan = broker._sub._chan
    chan.raw.basic_ack(999_999)  # PRECONDITION_FAILED: the broker closes the channel
    await wait_for(chan.closed)  # the consumers' resume has begun
    await broker.cancel(tag)
    await resumed.wait(1, timeout=10)
    assert tag not in broker._consumers
    frame = await wait_for(broker._topology.check_queue(second))
    assert frame.method.consumer_count == 0
    assert got.items == []


# --- closing with work pending, and what channels leave behind ------------------------------


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_control_operations_pending_at_close_all_end(make_broker: Any, prefix: str) -> None:
    """Declarations queued when close() is called each succeed or fail; none hangs."""
    broker = await make_broker()
    pending = [broker.declare_queue(f"{prefix}.q", auto_delete=True) for _ in range(3)]
    await wait_for(broker.close())
    outcomes = await wait_for(defer.DeferredList(pending, consumeErrors=True))
    assert len(outcomes) == 3
    assert all(ok or isinstance(result.value, BrokerError) for ok, result in outcomes)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_channels_reopened_leave_nothing_on_the_connection(
    make_broker: Any, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each refused passive check closes the control channel, which is reopened;
    the connection keeps no per-channel callback for its whole life."""
    broker = await make_broker()
    closed = broker._link.proto.closed
    added: list[str] = []
    for method in ("addCallbacks", "addCallback", "addErrback", "addBoth"):
        original = getattr(defer.Deferred, method)

        def counting(self: Any, *args: Any, _original: Any = original, **kw: Any) -> Any:
            if self is closed:
                added.append(_original.__name__)
            return _original(self, *args, **kw)

        monkeypatch.setattr(defer.Deferred, method, counting)
    for i in range(50):
        assert not await broker.queue_exists(f"{prefix}.missing.{i}")
    assert added == []


# --- server-named queues, which cannot come back ----------------------------------------------


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_server_named_queue_is_forgotten_with_its_connection(
    proxy: Any, make_broker: Any, prefix: str, logs: Any
) -> None:
    """A server-named queue cannot be declared again: after a reconnect its
    bindings and consumer are forgotten, and the log says the consumer ended."""
    broker = await make_broker()
    back = Collector()
    broker.on_reconnected(lambda: back(True))
    exchange = f"{prefix}.ex"
    await broker.declare_exchange(exchange, "topic")
    queue = await broker.declare_queue("", exclusive=True, auto_delete=True)
    await broker.bind_queue(queue, exchange, "#")
    tag = await broker.consume(queue, Collector(ack=True))
    proxy.cut()
    await back.wait(1, timeout=10)
    assert tag not in broker._consumers
    assert not [b for b in broker._topology.bindings if b[0] == queue]
    assert logs.texts_with(f"its server-named queue {queue} went with the connection")
    assert not logs.texts_with("could not declare")


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_private_event_subscription_receives_again_after_a_reconnect(
    proxy: Any, make_broker: Any
) -> None:
    """ion names private subscription queues itself, so a reconnect declares them
    again and events reach the subscriber after a blip as before it."""
    broker = await make_broker()
    back = Collector()
    broker.on_reconnected(lambda: back(True))
    sysname = f"sub{uuid4().hex[:8]}"
    manager = ExchangeManager(broker, sysname, Config(DEFAULTS), _reactor())
    try:
        await manager.boot()
        queue = await manager.declare_subscription("1052.#", owner="p.1@c")
        assert queue == f"{sysname}.p.1@c.events.1"
        got = Collector(ack=True)
        await manager.consume(queue, got, 0)
        proxy.cut()
        await back.wait(1, timeout=10)
        await manager.publish_event("1052.p.2@c", b"after")
        assert [d.body for d in await got.wait(1, timeout=10)] == [b"after"]
    finally:
        await delete_systems({sysname})


# --- the topology's record, without a broker --------------------------------------------------


def _topology_with(*tags: str) -> Topology:
    topology = Topology(lambda: defer.fail(ConnectionLostError("no connection")), "t")
    for tag in tags:
        topology.consumers[tag] = Consumer(tag, f"q.{tag}", lambda d: None, 0)
    return topology


@pytest_twisted.ensureDeferred
async def test_consumers_stay_remembered_when_the_link_drops_during_their_resume() -> None:
    topology = _topology_with("a", "b")

    async def consume(c: Consumer) -> str:
        raise ConnectionLostError("lost while resuming")

    with pytest.raises(ConnectionLostError):
        await topology.resume_consumers(consume)
    assert sorted(topology.consumers) == ["a", "b"]


@pytest_twisted.ensureDeferred
async def test_a_consumer_dropped_during_the_resume_of_another_is_not_resumed() -> None:
    topology = _topology_with("a", "b")
    gate: defer.Deferred[None] = defer.Deferred()
    resumed: list[str] = []

    async def consume(c: Consumer) -> str:
        if c.tag == "a":
            await gate
        resumed.append(c.tag)
        topology.consumers[c.tag] = c  # as ConsumerChannel.consume records it
        return c.tag

    resuming = defer.ensureDeferred(topology.resume_consumers(consume))
    dropped = topology.drop_consumer("b")
    assert dropped is not None and dropped.cancelled
    gate.callback(None)
    await resuming
    assert resumed == ["a"] and sorted(topology.consumers) == ["a"]


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_resource_alarm_blocking_the_connection_is_logged(
    make_broker: Any, prefix: str, logs: Any
) -> None:
    """RabbitMQ's connection.blocked (memory or disk alarm) stalls publishing
    silently unless said: ion logs it, and its end. (The frames are fed in as if
    from the broker, whose alarms a test must not set off.)"""
    broker = await make_broker()
    block(broker)
    assert logs.texts_with("blocks this connection (low on memory)")
    unblock(broker)
    assert logs.texts_with("unblocked this connection")
    assert not await wait_for(broker.queue_exists(f"{prefix}.q"))  # the connection works on
