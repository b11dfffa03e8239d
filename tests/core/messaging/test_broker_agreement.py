"""Where the embedded broker must do as RabbitMQ does, beyond the conformance
suite's core: requeue order, reserved names and AMQP's limits, cancelling on a
closed connection. Each test runs on every broker kind (see conftest)."""

from __future__ import annotations

import pytest_twisted

from tests.core.messaging.test_broker_conformance import expect_error
from tests.helpers import Collector


@pytest_twisted.ensureDeferred
async def test_requeued_messages_keep_their_order(connect, names):
    """Messages given back go back to their places: given back oldest first or
    newest first, they come again in the order they were published."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    for body in (b"a", b"b", b"c", b"d"):
        await conn.publish("", q, body)
    held = Collector()
    tag = await conn.consume(q, held)
    got = await held.wait(4)
    await conn.cancel(tag)
    for d in (got[2], got[0], got[3], got[1]):
        d.reject(requeue=True)
    again = Collector(ack=True)
    await conn.consume(q, again)
    assert [(d.body, d.redelivered) for d in await again.wait(4)] == [
        (b"a", True),
        (b"b", True),
        (b"c", True),
        (b"d", True),
    ]


@pytest_twisted.ensureDeferred
async def test_reserved_amq_names_are_refused(connect, names):
    """Names starting 'amq.' belong to the broker: declaring one is refused."""
    conn = await connect()
    await expect_error(conn.declare_queue(f"amq.{names('q')}"))
    await expect_error(conn.declare_exchange(f"amq.{names('ex')}", "topic"))


@pytest_twisted.ensureDeferred
async def test_names_and_keys_over_255_bytes_are_refused(connect, names):
    """AMQP's short strings hold 255 bytes: a longer queue name, routing key or
    binding key is refused, not taken."""
    conn = await connect()
    long = "k" * 256
    await expect_error(conn.declare_queue(names("q") + long), Exception)
    q = await conn.declare_queue(names("q"))
    ex = names("ex")
    await conn.declare_exchange(ex, "topic")
    await expect_error(conn.bind_queue(q, ex, long), Exception)
    await expect_error(conn.publish(ex, long, b"x"), Exception)


@pytest_twisted.ensureDeferred
async def test_prefetch_over_65535_is_refused(connect, names):
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    await expect_error(conn.consume(q, Collector(), prefetch=65536), Exception)


@pytest_twisted.ensureDeferred
async def test_cancel_on_a_closed_connection_is_done(connect, names):
    """A consumer goes with its connection: cancelling it afterwards succeeds (as
    a subscriber stopped after its container stopped does)."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    tag = await conn.consume(q, Collector())
    await conn.close()
    await conn.cancel(tag)


@pytest_twisted.ensureDeferred
async def test_transport_headers_follow_amqp_rules(connect, names):
    """Headers arrive as AMQP carries them (keys as strings, tuples as lists), a
    float is refused rather than changed, and what the publisher changes in its
    dict after publishing does not reach the message."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    await expect_error(conn.publish("", q, b"x", headers={"f": 1.5}), TypeError)
    headers = {"t": (1, 2), 3: "int key", "l": [1]}
    await conn.publish("", q, b"x", headers=headers)
    headers["l"].append("changed")
    got = Collector(ack=True)
    await conn.consume(q, got)
    [d] = await got.wait(1)
    assert d.headers == {"t": [1, 2], "3": "int key", "l": [1]}


@pytest_twisted.ensureDeferred
async def test_a_requeued_message_has_its_own_headers(connect, names):
    """What a consumer changes in a delivery's headers is not in the message it
    gives back."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    await conn.publish("", q, b"x", headers={"l": [1]})
    first = Collector()
    tag = await conn.consume(q, first)
    [d] = await first.wait(1)
    d.headers["l"].append("consumer")
    await conn.cancel(tag)
    d.reject(requeue=True)
    again = Collector(ack=True)
    await conn.consume(q, again)
    [redelivered] = await again.wait(1)
    assert redelivered.headers == {"l": [1]} and redelivered.redelivered
