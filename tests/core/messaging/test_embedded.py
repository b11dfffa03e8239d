"""Synchronous unit tests of what is specific to the embedded broker, on a C{task.Clock}."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet import defer, task

from ion.core.exception import ConnectionClosedError
from ion.core.messaging.embedded import EmbeddedBroker, EmbeddedConnection


def result(d: defer.Deferred[Any]) -> Any:
    """The result of an already-fired Deferred (raising its failure)."""
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "Deferred has not fired"
    if isinstance(out[0], defer.Failure):
        out[0].raiseException()
    return out[0]


@pytest.fixture
def clock() -> task.Clock:
    return task.Clock()


@pytest.fixture
def broker(clock: task.Clock) -> EmbeddedBroker:
    return EmbeddedBroker(clock)


def open_conn(broker: EmbeddedBroker) -> EmbeddedConnection:
    conn = broker.connection()
    result(conn.connect())
    return conn


def test_declarations_fire_at_once(broker: EmbeddedBroker) -> None:
    """Declarations and lookups return already-fired Deferreds."""
    conn = open_conn(broker)
    assert result(conn.declare_exchange("ex")) is None
    assert result(conn.declare_queue("q")) == "q"
    assert result(conn.bind_queue("q", "ex", "k")) is None
    assert result(conn.queue_exists("q")) is True


def test_not_connected_refuses(broker: EmbeddedBroker) -> None:
    """A connection refuses operations until C{connect()}, and cannot reopen once closed."""
    conn = broker.connection()
    with pytest.raises(ConnectionClosedError):
        result(conn.declare_queue("q"))
    result(conn.connect())
    result(conn.close())
    with pytest.raises(ConnectionClosedError):
        result(conn.connect())


def test_one_scheduled_call_delivers_a_batch(broker: EmbeddedBroker, clock: task.Clock) -> None:
    """Many publishes schedule a single drain call, which delivers them all in order."""
    conn = open_conn(broker)
    result(conn.declare_queue("q"))
    got: list[bytes] = []
    result(conn.consume("q", lambda d: (got.append(d.body), d.ack())))
    for n in range(100):
        conn.publish("", "q", b"%d" % n)
    assert got == []
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert got == [b"%d" % n for n in range(100)]
    assert clock.getDelayedCalls() == []


class CountingClock(task.Clock):
    """A Clock that counts the calls scheduled on it."""

    scheduled = 0

    def callLater(self, *args: Any, **kwargs: Any) -> Any:
        self.scheduled += 1
        return super().callLater(*args, **kwargs)


def test_max_batch_yields_to_the_reactor() -> None:
    """A drain hands out at most C{max_batch} deliveries, then schedules another for the rest."""
    clock = CountingClock()
    broker = EmbeddedBroker(clock, max_batch=10)
    conn = open_conn(broker)
    result(conn.declare_queue("q"))
    drains: list[int] = []
    result(conn.consume("q", lambda d: (drains.append(clock.scheduled), d.ack())))
    for n in range(25):
        conn.publish("", "q", b"%d" % n)
    assert clock.scheduled == 1
    clock.advance(0)
    assert drains == [1] * 10 + [2] * 10 + [3] * 5
    assert clock.getDelayedCalls() == []


def test_replies_published_by_consumers_join_the_drain(
    broker: EmbeddedBroker, clock: task.Clock
) -> None:
    """A ping-pong between two queues runs within one drain, after each callback returns."""
    conn = open_conn(broker)
    for q in ("ping", "pong"):
        result(conn.declare_queue(q))
    log: list[str] = []

    def bounce(d: Any) -> None:
        d.ack()
        n = int(d.body)
        log.append(f"{d.routing_key}{n}")
        if n < 5:
            conn.publish("", "pong" if d.routing_key == "ping" else "ping", b"%d" % (n + 1))

    result(conn.consume("ping", bounce))
    result(conn.consume("pong", bounce))
    conn.publish("", "ping", b"0")
    clock.advance(0)
    assert log == ["ping0", "pong1", "ping2", "pong3", "ping4", "pong5"]
    assert clock.getDelayedCalls() == []


def test_close_deletes_exclusive_queues(broker: EmbeddedBroker) -> None:
    """The exclusive queues of a closed connection are gone; others stay."""
    conn = open_conn(broker)
    result(conn.declare_queue("mine", exclusive=True))
    result(conn.declare_queue("shared"))
    anon = result(conn.declare_queue("", exclusive=True))
    assert sorted(broker.queue_names()) == sorted(["mine", "shared", anon])
    result(conn.close())
    assert broker.queue_names() == ["shared"]


def test_close_returns_unacked_in_order(broker: EmbeddedBroker, clock: task.Clock) -> None:
    """Unacked deliveries return to the head of their queue in their original order."""
    first, second = open_conn(broker), open_conn(broker)
    result(first.declare_queue("q"))
    for n in range(3):
        first.publish("", "q", b"%d" % n)
    held: list[Any] = []
    result(first.consume("q", held.append, prefetch=2))
    clock.advance(0)
    assert [d.body for d in held] == [b"0", b"1"]
    assert broker.message_count("q") == 1
    result(first.close())
    assert broker.message_count("q") == 3
    got: list[Any] = []
    result(second.consume("q", got.append))
    clock.advance(0)
    assert [(d.body, d.redelivered) for d in got] == [(b"0", True), (b"1", True), (b"2", False)]
    with pytest.raises(ConnectionClosedError):
        held[0].ack()


def test_failing_consumer_does_not_stop_the_drain(
    broker: EmbeddedBroker, clock: task.Clock
) -> None:
    """A consumer that raises is logged; the drain goes on delivering."""
    conn = open_conn(broker)
    result(conn.declare_queue("q"))
    got: list[bytes] = []

    def flaky(d: Any) -> None:
        got.append(d.body)
        d.ack()
        if d.body == b"0":
            raise RuntimeError("boom")

    result(conn.consume("q", flaky))
    conn.publish("", "q", b"0")
    conn.publish("", "q", b"1")
    clock.advance(0)
    assert got == [b"0", b"1"]


def test_headers_are_copied_per_queue(broker: EmbeddedBroker, clock: task.Clock) -> None:
    """Each queue gets its own copy of the headers, independent of the publisher's dict."""
    conn = open_conn(broker)
    result(conn.declare_exchange("fan", "fanout"))
    got: list[Any] = []
    for q in ("a", "b"):
        result(conn.declare_queue(q))
        result(conn.bind_queue(q, "fan", ""))
        result(conn.consume(q, got.append))
    headers = {"k": 1}
    conn.publish("fan", "", b"x", headers=headers)
    headers["k"] = 2
    clock.advance(0)
    got[0].headers["k"] = 3
    assert [d.headers for d in got] == [{"k": 3}, {"k": 1}]


def test_body_must_be_bytes(broker: EmbeddedBroker) -> None:
    """A str body is refused; bytes-like bodies are taken as bytes."""
    conn = open_conn(broker)
    result(conn.declare_queue("q"))
    with pytest.raises(TypeError):
        result(conn.publish("", "q", "text"))  # type: ignore[arg-type]
    result(conn.publish("", "q", bytearray(b"ok")))
    assert broker.message_count("q") == 1


def test_route_cache_follows_binding_changes(broker: EmbeddedBroker) -> None:
    """Cached routes are dropped when bindings change."""
    conn = open_conn(broker)
    result(conn.declare_exchange("ex"))
    result(conn.declare_queue("q"))
    result(conn.bind_queue("q", "ex", "a.*"))
    result(conn.publish("ex", "a.b", b"1", mandatory=True))
    result(conn.unbind_queue("q", "ex", "a.*"))
    with pytest.raises(Exception, match="NO_ROUTE"):
        result(conn.publish("ex", "a.b", b"2", mandatory=True))
    assert broker.message_count("q") == 1


def _watch(broker: EmbeddedBroker, clock: task.Clock, key: str) -> list[tuple[str, dict[str, Any]]]:
    """Bind a queue to amq.rabbitmq.event with C{key}; the notices it gets."""
    conn = open_conn(broker)
    got: list[tuple[str, dict[str, Any]]] = []
    result(conn.declare_queue("watch", exclusive=True))
    result(conn.bind_queue("watch", "amq.rabbitmq.event", key))
    result(conn.consume("watch", lambda d: got.append((d.routing_key, dict(d.headers))), 0, True))
    return got


def test_presence_notices_name_the_deleted_queue_and_the_closed_connection(
    broker: EmbeddedBroker, clock: task.Clock
) -> None:
    """As RabbitMQ's event exchange plugin: queue.deleted for a queue deleted or
    gone with its connection, connection.closed for the connection."""
    got = _watch(broker, clock, "#")
    owner = open_conn(broker)
    result(owner.declare_queue("mine", exclusive=True))
    result(owner.declare_queue("other"))
    result(owner.delete_queue("other"))
    result(owner.close())
    clock.advance(0)
    assert got == [
        ("queue.deleted", {"name": "other", "vhost": "/"}),
        ("queue.deleted", {"name": "mine", "vhost": "/"}),
        ("connection.closed", {"name": owner.name, "vhost": "/"}),
    ]
    assert "amq.rabbitmq.event" not in broker.exchange_names()  # the broker's own


def test_without_presence_events_there_is_no_event_exchange(clock: task.Clock) -> None:
    """presence_events=False is a broker without the plugin: binding fails (404)."""
    from ion.core.exception import NoSuchExchangeError

    conn = open_conn(EmbeddedBroker(clock, presence_events=False))
    result(conn.declare_queue("watch", exclusive=True))
    with pytest.raises(NoSuchExchangeError):
        result(conn.bind_queue("watch", "amq.rabbitmq.event", "queue.deleted"))
