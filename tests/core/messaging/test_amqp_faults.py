"""The AMQP broker under network faults and odd input, through a TCP proxy each test owns.

The proxy sits between the L{AmqpBroker} and RabbitMQ; the broker itself is never
stopped or reconfigured. Every name a test declares starts with a unique prefix
and is deleted at teardown.
"""

from __future__ import annotations

import datetime
import decimal
import os

import pytest
import pytest_twisted
from twisted.internet.endpoints import TCP4ClientEndpoint

from ion.core.exception import (
    BrokerError,
    BrokerRefusedError,
    ConnectionClosedError,
    ConnectionLostError,
)
from ion.core.messaging.amqp import AmqpBroker
from tests.helpers import Collector, wait_for
from tests.rabbit import HOST, PORT, URL, require_rabbitmq

pytestmark = pytest.mark.rabbitmq


def _reactor():
    from twisted.internet import reactor

    return reactor


@pytest_twisted.ensureDeferred
async def test_cut_tells_owner_promptly(proxy, make_broker, logs):
    """A cut connection is reported at once with a ConnectionLostError, and calls then fail promptly."""
    broker = await make_broker(reconnect=False)
    lost = Collector()
    broker.on_connection_lost(lost)
    proxy.cut()
    [error] = await lost.wait(1, timeout=2)
    assert isinstance(error, ConnectionLostError)
    assert "lost" in str(error)
    with pytest.raises(ConnectionLostError):
        await wait_for(broker.declare_queue("whatever"), timeout=1)
    assert not any("guest:guest" in text for text in logs.texts())


@pytest_twisted.ensureDeferred
async def test_pending_publish_fails_on_cut(proxy, make_broker, prefix):
    """A publish awaiting its confirm when the connection is cut fails with ConnectionLostError."""
    broker = await make_broker(reconnect=False)
    q = await broker.declare_queue(f"{prefix}.q")
    pending = broker.publish("", q, b"in flight", mandatory=True)
    proxy.cut()
    with pytest.raises(ConnectionLostError):
        await wait_for(pending, timeout=2)


@pytest_twisted.ensureDeferred
async def test_black_hole_detected_by_heartbeats(proxy, make_broker):
    """A path that silently drops every byte is detected by heartbeats within a bounded time."""
    broker = await make_broker(heartbeat=1, reconnect=False)
    lost = Collector()
    broker.on_connection_lost(lost)
    proxy.hold()
    [error] = await lost.wait(1, timeout=15)  # pika checks every heartbeat + 5 s: at most 12 s
    assert isinstance(error, ConnectionLostError)
    assert "heartbeat" in str(error)


@pytest_twisted.ensureDeferred
async def test_reconnect_restores_topology_and_consumers(proxy, make_broker, prefix):
    """After a cut, the broker reconnects, declares its exchange, queue and binding again and resumes its consumer."""
    broker = await make_broker()
    lost, back = Collector(), Collector()
    broker.on_connection_lost(lost)
    broker.on_reconnected(lambda: back(True))
    ex = await _declare(broker, f"{prefix}.ex")
    q = await broker.declare_queue(f"{prefix}.q", exclusive=True)
    await broker.bind_queue(q, ex, "k")
    got = Collector()
    await broker.consume(q, got)
    await broker.publish(ex, "k", b"before", mandatory=True)
    [before] = await got.wait(1)
    proxy.cut()
    await lost.wait(1, timeout=2)
    with pytest.raises(ConnectionLostError):
        await wait_for(broker.publish(ex, "k", b"meanwhile"), timeout=1)
    with pytest.raises(ConnectionLostError):
        before.ack()  # its channel is gone: the broker requeued it
    await back.wait(1, timeout=10)
    await broker.publish(ex, "k", b"after", mandatory=True)
    bodies = [d.body for d in await got.wait_until(lambda d: d.body == b"after")]
    assert bodies[-1] == b"after"
    assert b"before" not in bodies[1:]  # an exclusive queue dies with its connection


@pytest_twisted.ensureDeferred
async def test_table_array_timestamp_headers_from_the_wire(make_broker, prefix):
    """A message with x-death style headers (tables, arrays, timestamps, decimals) is delivered and the consumer stays up."""
    broker = await make_broker()
    q = await broker.declare_queue(f"{prefix}.wire")
    got = Collector(ack=True)
    await broker.consume(q, got)
    when = datetime.datetime(2024, 5, 1, 12, 30, 0, tzinfo=datetime.UTC)
    headers = {
        "x-death": [
            {
                "count": 2,
                "reason": "rejected",
                "queue": q,
                "time": when,
                "exchange": "",
                "routing-keys": [q, "other"],
            }
        ],
        "x-first-death-reason": "rejected",
        "price": decimal.Decimal("1.25"),
        "raw": b"\xff\x00\xfe",
        "flag": False,
        "nothing": None,
        "big": 2**40,
    }
    await _publish_with_pika(q, b"odd headers", headers)
    await broker.publish("", q, b"plain")
    first, second = await got.wait(2)
    assert first.body == b"odd headers"
    death = first.headers["x-death"][0]
    assert (death["count"], death["reason"], death["time"]) == (2, "rejected", when)
    assert death["routing-keys"] == [q, "other"]
    assert type(first.headers["big"]) is int and first.headers["big"] == 2**40
    assert first.headers["price"] == decimal.Decimal("1.25")
    assert first.headers["raw"] == b"\xff\x00\xfe"
    assert second.body == b"plain"


@pytest_twisted.ensureDeferred
async def test_float_header_refused(make_broker, prefix):
    """A float header is refused with TypeError instead of travelling truncated."""
    broker = await make_broker()
    q = await broker.declare_queue(f"{prefix}.q")
    with pytest.raises(TypeError):
        await broker.publish("", q, b"x", headers={"ratio": 0.5})


@pytest_twisted.ensureDeferred
async def test_large_body_through_proxy(make_broker, prefix):
    """A 1 MiB body crosses the proxy in many frames and arrives identical."""
    broker = await make_broker()
    q = await broker.declare_queue(f"{prefix}.q")
    got = Collector(ack=True)
    await broker.consume(q, got)
    body = bytes(range(256)) + os.urandom(1024 * 1024 - 256)
    await broker.publish("", q, body, confirm=True)
    [d] = await got.wait(1, timeout=10)
    assert d.body == body


@pytest_twisted.ensureDeferred
async def test_connect_failure_is_clear():
    """Connecting to a port nobody listens on fails with a BrokerError naming the redacted URL."""
    require_rabbitmq()
    broker = AmqpBroker(
        _reactor(),
        "amqp://guest:secret@127.0.0.1:1/",
        endpoint_factory=lambda reactor, _p: TCP4ClientEndpoint(reactor, "127.0.0.1", 1),
    )
    with pytest.raises(BrokerError) as info:
        await wait_for(broker.connect(), timeout=5)
    assert "guest:***@127.0.0.1:1" in str(info.value) and "secret" not in str(info.value)
    await broker.close()


@pytest_twisted.ensureDeferred
async def test_refused_login_is_clear(logs):
    """A login the broker refuses fails connect() with BrokerRefusedError and the broker's own reason, and leaves no
    unhandled error behind (Twisted's ClientService cannot take a failed preparation)."""
    require_rabbitmq()
    broker = AmqpBroker(_reactor(), f"amqp://guest:wrong@{HOST}:{PORT}/", reconnect=False)
    with pytest.raises(BrokerRefusedError, match="403 ACCESS_REFUSED") as info:
        await wait_for(broker.connect(), timeout=10)
    assert "wrong" not in str(info.value)
    await broker.close()
    assert not [e for e in logs.events.items if e.get("log_failure")], logs.texts()


@pytest_twisted.ensureDeferred
async def test_failed_handshakes_while_reconnecting_are_retried(
    proxy, switchable, slammer_port, logs
):
    """Reconnect attempts whose AMQP handshake fails are logged and retried until one succeeds."""
    broker, target = await switchable()
    back = Collector()
    broker.on_reconnected(lambda: back(True))
    try:
        target["port"] = slammer_port
        proxy.cut()
        await logs.wait_for_text("reconnecting to", timeout=10)
        target["port"] = proxy.port
        await back.wait(1, timeout=10)
        assert broker.is_open
        await broker.declare_queue("", exclusive=True, auto_delete=True)
    finally:
        await broker.close()
    assert not [e for e in logs.events.items if e.get("log_failure")], logs.texts()


@pytest_twisted.ensureDeferred
async def test_close_during_stalled_first_handshake(mute_server, logs):
    """Closing while the first handshake waits on a silent broker ends promptly: the
    connect fails with ConnectionClosedError, the broker is closed, nothing unhandled."""
    port, connected = mute_server
    broker = AmqpBroker(
        _reactor(), URL, endpoint_factory=lambda r, _p: TCP4ClientEndpoint(r, "127.0.0.1", port)
    )
    connecting = broker.connect()
    await connected.wait(1)
    await wait_for(broker.close(), timeout=5)
    with pytest.raises(ConnectionClosedError):
        await wait_for(connecting, timeout=5)
    assert "closed" in repr(broker)
    assert not [e for e in logs.events.items if e.get("log_failure")], logs.texts()


@pytest_twisted.ensureDeferred
async def test_close_during_stalled_reconnect(proxy, switchable, mute_server, logs):
    """Closing while a reconnect's handshake waits on a silent broker ends promptly and
    logs no failed reconnect and nothing unhandled."""
    port, connected = mute_server
    broker, target = await switchable()
    target["port"] = port
    proxy.cut()
    await connected.wait(1, timeout=10)
    await wait_for(broker.close(), timeout=5)
    assert "closed" in repr(broker)
    assert not [t for t in logs.texts() if "reconnecting to" in t]
    assert not [e for e in logs.events.items if e.get("log_failure")], logs.texts()


# --- helpers ---------------------------------------------------------------------------------


async def _declare(broker: AmqpBroker, name: str) -> str:
    await broker.declare_exchange(name, "direct")
    return name


async def _publish_with_pika(queue: str, body: bytes, headers: dict) -> None:
    """Publish straight with pika (no ion code on the sending side), confirmed."""
    import pika
    from pika.adapters.twisted_connection import TwistedProtocolConnection
    from twisted.internet.endpoints import connectProtocol

    reactor = _reactor()
    proto = await connectProtocol(
        TCP4ClientEndpoint(reactor, HOST, PORT),
        TwistedProtocolConnection(pika.ConnectionParameters(), custom_reactor=reactor),
    )
    await proto.ready
    ch = await proto.channel()
    await ch.confirm_delivery()
    await ch.basic_publish("", queue, body, pika.BasicProperties(headers=headers))
    await proto.close()
