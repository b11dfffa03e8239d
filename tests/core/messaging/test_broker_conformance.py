"""The broker conformance suite: AMQP 0-9-1 semantics every L{IBroker} must show.

Each test runs against every broker kind in C{conftest.BROKER_KINDS}. Tests that
assert "nothing else arrives" publish a later marker through the same queue and
rely on FIFO order instead of sleeping.
"""

from __future__ import annotations

import os

import pytest
import pytest_twisted
from zope.interface.verify import verifyObject

from ion.core.exception import (
    BrokerError,
    PreconditionFailedError,
    ResourceLockedError,
    UnroutableError,
)
from ion.core.messaging.broker import IBroker, IDelivery
from tests.helpers import Collector

END = "end.of.test"  # marker key every routing-test queue is bound to


def bodies(deliveries: list[IDelivery]) -> list[bytes]:
    return [d.body for d in deliveries]


async def expect_error(d, kind: type[Exception] = BrokerError) -> Exception:
    """Await C{d} and return the error it failed with; fail the test if it succeeded."""
    try:
        await d
    except kind as e:
        return e
    pytest.fail(f"expected {kind.__name__}")


async def routed(conn, names, ex_type: str, bindings: dict[str, list[str]], keys: list[str]):
    """Bind one queue per label of C{bindings}, publish C{keys}; return the keys each queue got."""
    ex = names("ex")
    await conn.declare_exchange(ex, ex_type)
    collectors = {}
    for label, patterns in bindings.items():
        q = await conn.declare_queue(names(label))
        for pattern in [*patterns, END]:
            await conn.bind_queue(q, ex, pattern)
        collectors[label] = Collector(ack=True)
        await conn.consume(q, collectors[label])
    for key in keys:
        await conn.publish(ex, key, key.encode())
    await conn.publish(ex, END, b"")
    got = {}
    for label, c in collectors.items():
        items = await c.wait_until(lambda d: d.routing_key == END)
        got[label] = [d.routing_key for d in items[:-1]]
    return got


async def queue_with_consumer(conn, names, label="q", ack=True, prefetch=0, **declare):
    """A fresh queue with one Collector consuming it; returns (queue, collector, tag)."""
    q = await conn.declare_queue(names(label), **declare)
    c = Collector(ack=ack)
    tag = await conn.consume(q, c, prefetch=prefetch)
    return q, c, tag


@pytest_twisted.ensureDeferred
async def test_connection_provides_ibroker(connect):
    """A connection fully provides L{IBroker}."""
    conn = await connect()
    assert verifyObject(IBroker, conn)


@pytest_twisted.ensureDeferred
async def test_delivery_provides_idelivery(connect, names):
    """A delivery fully provides L{IDelivery}."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names)
    await conn.publish("", q, b"x")
    [d] = await c.wait(1)
    assert verifyObject(IDelivery, d)


@pytest_twisted.ensureDeferred
async def test_topic_star_matches_exactly_one_word(connect, names):
    """C{*} matches exactly one word, wherever it stands."""
    conn = await connect()
    keys = ["a", "a.b", "a.b.c", "b.a", "x.b.y", "x.b", "b"]
    got = await routed(conn, names, "topic", {"tail": ["a.*"], "mid": ["*.b.*"]}, keys)
    assert got == {"tail": ["a.b"], "mid": ["a.b.c", "x.b.y"]}


@pytest_twisted.ensureDeferred
async def test_topic_hash_matches_zero_or_more_words(connect, names):
    """C{#} matches zero, one or many words, at the start, middle or end, and alone matches all."""
    conn = await connect()
    keys = ["a", "a.b", "a.b.c", "c", "b.c", "a.c", "a.x.y.c", "b"]
    bindings = {"tail": ["a.#"], "head": ["#.c"], "mid": ["a.#.c"], "all": ["#"]}
    got = await routed(conn, names, "topic", bindings, keys)
    assert got == {
        "tail": ["a", "a.b", "a.b.c", "a.c", "a.x.y.c"],
        "head": ["a.b.c", "c", "b.c", "a.c", "a.x.y.c"],
        "mid": ["a.b.c", "a.c", "a.x.y.c"],
        "all": keys,
    }


@pytest_twisted.ensureDeferred
async def test_topic_dotted_key_without_wildcards_matches_only_itself(connect, names):
    """A dotted binding key without wildcards matches only the identical routing key."""
    conn = await connect()
    keys = ["a.b.c", "a.b", "a.b.c.d", "a.bc", "ab.c"]
    got = await routed(conn, names, "topic", {"exact": ["a.b.c"]}, keys)
    assert got == {"exact": ["a.b.c"]}


@pytest_twisted.ensureDeferred
async def test_queue_bound_twice_gets_one_copy(connect, names):
    """A message matching two bindings of one queue reaches that queue once."""
    conn = await connect()
    got = await routed(conn, names, "topic", {"q": ["a.*", "*.b", "a.b"]}, ["a.b", "a.c"])
    assert got == {"q": ["a.b", "a.c"]}


@pytest_twisted.ensureDeferred
async def test_direct_exchange_matches_whole_key_literally(connect, names):
    """A direct exchange routes on the exact key; C{*} and C{#} are plain characters there."""
    conn = await connect()
    keys = ["a.b", "a.*", "a.c", "#", "x"]
    got = await routed(conn, names, "direct", {"star": ["a.*"], "hash": ["#"]}, keys)
    assert got == {"star": ["a.*"], "hash": ["#"]}


@pytest_twisted.ensureDeferred
async def test_fanout_exchange_ignores_key(connect, names):
    """A fanout exchange gives every message to every bound queue, whatever the keys."""
    conn = await connect()
    keys = ["a", "b.c", ""]
    got = await routed(conn, names, "fanout", {"one": ["x"], "two": ["y"]}, keys)
    assert got == {"one": keys, "two": keys}


@pytest_twisted.ensureDeferred
async def test_default_exchange_routes_to_queue_by_name(connect, names):
    """Publishing to the default exchange C{""} delivers to the queue named by the key."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names)
    await conn.publish("", q, b"direct to queue", mandatory=True)
    [d] = await c.wait(1)
    assert (d.body, d.exchange, d.routing_key) == (b"direct to queue", "", q)


@pytest_twisted.ensureDeferred
async def test_unbind_stops_routing(connect, names):
    """After unbinding, the key no longer reaches the queue, while other bindings still do."""
    conn = await connect()
    ex = names("ex")
    await conn.declare_exchange(ex, "topic")
    q, c, _ = await queue_with_consumer(conn, names)
    await conn.bind_queue(q, ex, "a.*")
    await conn.bind_queue(q, ex, END)
    await conn.publish(ex, "a.one", b"1")
    await conn.unbind_queue(q, ex, "a.*")
    await conn.publish(ex, "a.two", b"2")
    await conn.publish(ex, END, b"end")
    assert bodies(await c.wait_until(lambda d: d.body == b"end")) == [b"1", b"end"]


@pytest_twisted.ensureDeferred
async def test_server_named_queues_are_unique(connect):
    """C{declare_queue("")} returns a fresh broker-chosen name each time."""
    conn = await connect()
    first = await conn.declare_queue("", exclusive=True)
    second = await conn.declare_queue("", exclusive=True)
    assert first.startswith("amq.gen-") and second.startswith("amq.gen-")
    assert first != second
    assert await conn.queue_exists(first) and await conn.queue_exists(second)


@pytest_twisted.ensureDeferred
async def test_redeclare_is_idempotent(connect, names):
    """Declaring an existing queue or exchange again with equal arguments keeps its state."""
    conn = await connect()
    ex, q = names("ex"), names("q")
    await conn.declare_exchange(ex, "direct")
    assert await conn.declare_queue(q) == q
    await conn.bind_queue(q, ex, "k")
    await conn.publish(ex, "k", b"kept")
    await conn.declare_exchange(ex, "direct")
    assert await conn.declare_queue(q) == q
    await conn.publish(ex, "k", b"still bound")
    c = Collector(ack=True)
    await conn.consume(q, c)
    assert bodies(await c.wait(2)) == [b"kept", b"still bound"]


@pytest_twisted.ensureDeferred
async def test_redeclare_exchange_with_other_type_fails(connect, names):
    """Redeclaring an exchange as another type is refused."""
    conn = await connect()
    ex = names("ex")
    await conn.declare_exchange(ex, "topic")
    await expect_error(conn.declare_exchange(ex, "fanout"))


@pytest_twisted.ensureDeferred
async def test_round_robin_across_three_consumers(connect, names):
    """Three consumers of one queue take its messages in turn, each in FIFO order."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    everything = Collector(ack=True)
    per_consumer: list[list[bytes]] = [[], [], []]
    for i in range(3):
        await conn.consume(q, lambda d, i=i: (per_consumer[i].append(d.body), everything(d)))
    sent = [b"m%d" % n for n in range(9)]
    for body in sent:
        await conn.publish("", q, body)
    await everything.wait(9)
    assert [len(got) for got in per_consumer] == [3, 3, 3]
    for got in per_consumer:
        assert got == sorted(got, key=sent.index)


@pytest_twisted.ensureDeferred
async def test_prefetch_limits_unacked_until_ack(connect, names):
    """A consumer never holds more than C{prefetch} unacked deliveries; an ack lets the next one in."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    limited, unlimited = Collector(), Collector()
    await conn.consume(q, limited, prefetch=2)
    other = await conn.consume(q, unlimited)
    for n in range(6):
        await conn.publish("", q, b"m%d" % n)
    await unlimited.wait(4)
    assert len(limited) == 2  # all 6 are out; the limited consumer holds only its 2
    await conn.cancel(other)
    await conn.publish("", q, b"after")
    assert len(limited) == 2
    limited.items[0].ack()
    assert bodies(await limited.wait(3))[2] == b"after"


@pytest.mark.parametrize("error", [SystemExit, KeyboardInterrupt])
@pytest_twisted.ensureDeferred
async def test_a_consumer_raising_system_exit_keeps_the_connection(connect, names, error):
    """A consumer callback raising SystemExit or KeyboardInterrupt is logged; the
    connection stays open and the next message is delivered (the one it raised on
    is not redelivered)."""
    conn = await connect()
    lost: list[Exception] = []
    conn.on_connection_lost(lost.append)
    q = await conn.declare_queue(names("q"))
    got = Collector()

    def callback(d: IDelivery) -> None:
        got(d)
        d.ack()
        if d.body == b"raise":
            raise error()

    await conn.consume(q, callback)
    await conn.publish("", q, b"raise")
    await conn.publish("", q, b"next")
    assert bodies(await got.wait(2)) == [b"raise", b"next"]
    await conn.publish("", q, b"last")
    assert bodies(await got.wait(3)) == [b"raise", b"next", b"last"]
    assert not any(d.redelivered for d in got.items) and lost == []


@pytest_twisted.ensureDeferred
async def test_a_message_whose_expiration_passed_while_queued_is_not_delivered(connect, names):
    """C{expiration} (ms) is AMQP's per-message TTL: a message queued longer is dropped."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    conn = await connect()
    q = await conn.declare_queue(names("q"))
    await conn.publish("", q, b"stale", expiration=1)
    await conn.publish("", q, b"fresh", expiration=60_000)
    await conn.publish("", q, b"plain")
    # The stale one's TTL must pass while it is queued: this waits for time
    # itself (100 times the TTL), not for an event.
    await deferLater(reactor, 0.1, lambda: None)
    c = Collector(ack=True)
    await conn.consume(q, c)
    assert bodies(await c.wait(2)) == [b"fresh", b"plain"]


@pytest_twisted.ensureDeferred
async def test_reject_without_requeue_drops(connect, names):
    """C{reject(requeue=False)} drops the message: the next delivery is the next message."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names, ack=False)
    await conn.publish("", q, b"dropped")
    [first] = await c.wait(1)
    first.reject(requeue=False)
    await conn.publish("", q, b"next")
    second = (await c.wait(2))[1]
    assert (second.body, second.redelivered) == (b"next", False)


@pytest_twisted.ensureDeferred
async def test_reject_with_requeue_redelivers_first(connect, names):
    """C{reject(requeue=True)} puts the message back at the head of its queue, marked redelivered."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    await conn.publish("", q, b"one")
    await conn.publish("", q, b"two")
    c = Collector()
    await conn.consume(q, c, prefetch=1)
    [first] = await c.wait(1)
    assert (first.body, first.redelivered) == (b"one", False)
    first.reject(requeue=True)
    again = (await c.wait(2))[1]
    assert (again.body, again.redelivered) == (b"one", True)
    again.ack()
    third = (await c.wait(3))[2]
    assert (third.body, third.redelivered) == (b"two", False)


@pytest_twisted.ensureDeferred
async def test_settling_twice_raises(connect, names):
    """Acking or rejecting a delivery that was already acked raises a L{BrokerError}."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names)
    await conn.publish("", q, b"x")
    [d] = await c.wait(1)  # the Collector acked it
    with pytest.raises(BrokerError):
        d.ack()
    with pytest.raises(BrokerError):
        d.reject(requeue=True)


@pytest_twisted.ensureDeferred
async def test_exclusive_queue_locked_for_other_connection(connect, names):
    """Another connection may not declare, consume, bind or delete an exclusive queue, but may publish to it."""
    owner, other = await connect(), await connect()
    ex = names("ex")
    await owner.declare_exchange(ex, "direct")
    q, c, _ = await queue_with_consumer(owner, names, exclusive=True)
    await owner.bind_queue(q, ex, "k")
    await expect_error(other.declare_queue(q, exclusive=True))
    await expect_error(other.declare_queue(q))
    await expect_error(other.consume(q, Collector()))
    await expect_error(other.bind_queue(q, ex, "k2"))
    await expect_error(other.delete_queue(q))
    await other.publish(ex, "k", b"from other")
    assert bodies(await c.wait(1)) == [b"from other"]


@pytest_twisted.ensureDeferred
async def test_exclusive_queue_deleted_on_close(connect, names):
    """Closing a connection deletes its exclusive queues and their bindings."""
    owner, other = await connect(), await connect()
    ex = names("ex")
    await owner.declare_exchange(ex, "direct")
    q = await owner.declare_queue(names("q"), exclusive=True)
    await owner.bind_queue(q, ex, "k")
    assert await other.queue_exists(q)
    await owner.close()
    assert not await other.queue_exists(q)
    await expect_error(other.publish(ex, "k", b"x", mandatory=True), UnroutableError)


@pytest_twisted.ensureDeferred
async def test_auto_delete_queue_goes_with_last_consumer(connect, names):
    """An auto-delete queue lives until its last consumer is cancelled, not before."""
    conn = await connect()
    q = await conn.declare_queue(names("q"), auto_delete=True)
    assert await conn.queue_exists(q)  # no consumer yet: it stays
    first = await conn.consume(q, Collector())
    second = await conn.consume(q, Collector())
    await conn.cancel(first)
    assert await conn.queue_exists(q)
    await conn.cancel(second)
    assert not await conn.queue_exists(q)


@pytest_twisted.ensureDeferred
async def test_close_returns_unacked_to_other_consumer(connect, names):
    """Closing a connection gives its unacked deliveries, marked redelivered, to another connection's consumer."""
    first, second = await connect(), await connect()
    q = await first.declare_queue(names("q"))
    held = Collector()
    await first.consume(q, held)
    await first.publish("", q, b"a")
    await first.publish("", q, b"b")
    await held.wait(2)
    takeover = Collector(ack=True)
    await second.consume(q, takeover)
    await first.close()
    got = await takeover.wait(2)
    assert [(d.body, d.redelivered) for d in got] == [(b"a", True), (b"b", True)]


@pytest_twisted.ensureDeferred
async def test_acks_out_of_order_release_only_what_was_acked(connect, names):
    """Deliveries of two consumers on one connection, acked out of order just
    before the connection closes, are gone; the one still held comes back."""
    first, second = await connect(), await connect()
    qa, qb = await first.declare_queue(names("a")), await first.declare_queue(names("b"))
    held_a, held_b = Collector(), Collector()
    await first.consume(qa, held_a)
    await first.consume(qb, held_b)
    for n in range(3):
        await first.publish("", qa, b"a%d" % n)
        await first.publish("", qb, b"b%d" % n)
    got_a, got_b = await held_a.wait(3), await held_b.wait(3)
    for d in reversed(got_a[1:] + got_b):  # everything but the first delivery, latest first
        d.ack()
    await first.close()
    takeover = Collector(ack=True)
    await second.consume(qa, takeover)
    await second.consume(qb, takeover)
    await second.publish("", qa, b"end")
    await second.publish("", qb, b"end")
    await takeover.wait(3)
    assert sorted((d.body, d.redelivered) for d in takeover.items) == [
        (b"a0", True),
        (b"end", False),
        (b"end", False),
    ]


@pytest_twisted.ensureDeferred
async def test_auto_ack_forgets_on_delivery(connect, names):
    """An auto-ack consumer gets messages past its prefetch without acking, settling
    is a no-op, and what it held is not redelivered when its connection closes."""
    first, second = await connect(), await connect()
    q = await first.declare_queue(names("q"))
    held = Collector()
    await first.consume(q, held, prefetch=1, auto_ack=True)
    for body in (b"a", b"b", b"c"):
        await first.publish("", q, body)
    got = await held.wait(3)  # prefetch 1 does not hold the rest back
    got[0].ack()
    got[1].reject(requeue=True)  # no-ops: the broker already forgot them
    takeover = Collector(ack=True)
    await second.consume(q, takeover)
    await first.close()
    await second.publish("", q, b"marker")
    assert bodies(await takeover.wait(1)) == [b"marker"]


@pytest_twisted.ensureDeferred
async def test_cancel_keeps_unacked_owned(connect, names):
    """Cancelling a consumer leaves its unacked deliveries with it; they can still be acked."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    held = Collector()
    tag = await conn.consume(q, held)
    await conn.publish("", q, b"held")
    [d] = await held.wait(1)
    await conn.cancel(tag)
    later = Collector(ack=True)
    await conn.consume(q, later)
    await conn.publish("", q, b"marker")
    assert bodies(await later.wait(1)) == [b"marker"]
    d.ack()
    await conn.publish("", q, b"marker2")
    assert bodies(await later.wait(2)) == [b"marker", b"marker2"]


@pytest_twisted.ensureDeferred
async def test_mandatory_unroutable_fails(connect, names):
    """A mandatory message that matches no queue fails with L{UnroutableError}; without mandatory it is dropped."""
    conn = await connect()
    ex = names("ex")
    await conn.declare_exchange(ex, "topic")
    await expect_error(conn.publish(ex, "nobody.home", b"x", mandatory=True), UnroutableError)
    await expect_error(conn.publish("", names("noqueue"), b"x", mandatory=True), UnroutableError)
    assert await conn.publish(ex, "nobody.home", b"x") is None


@pytest_twisted.ensureDeferred
async def test_publish_to_missing_exchange_fails(connect, names):
    """Publishing to an exchange that does not exist fails with a L{BrokerError}."""
    conn = await connect()
    err = await expect_error(conn.publish(names("nosuch"), "k", b"x"))
    assert not isinstance(err, UnroutableError)


@pytest_twisted.ensureDeferred
async def test_missing_queue_or_exchange_refused(connect, names):
    """Consuming from, binding or unbinding a missing queue, or binding to a missing exchange, fails."""
    conn = await connect()
    ex, q = names("ex"), names("q")
    await conn.declare_exchange(ex, "topic")
    await expect_error(conn.consume(names("nosuch"), Collector()))
    await expect_error(conn.bind_queue(names("nosuch"), ex, "k"))
    await conn.declare_queue(q)
    await expect_error(conn.bind_queue(q, names("nosuchex"), "k"))


@pytest_twisted.ensureDeferred
async def test_closed_connection_refuses_operations(connect, names):
    """Every operation on a closed connection fails with a L{BrokerError}."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    await conn.close()
    await expect_error(conn.declare_queue(names("q2")))
    await expect_error(conn.declare_exchange(names("ex")))
    await expect_error(conn.publish("", q, b"x"))
    await expect_error(conn.consume(q, Collector()))
    await expect_error(conn.queue_exists(q))


@pytest_twisted.ensureDeferred
async def test_large_binary_body_arrives_identical(connect, names):
    """A 1 MiB body with every byte value arrives as identical bytes."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names)
    body = bytes(range(256)) + os.urandom(1024 * 1024 - 256)
    await conn.publish("", q, body)
    [d] = await c.wait(1)
    assert type(d.body) is bytes and d.body == body


@pytest_twisted.ensureDeferred
async def test_headers_pass_through(connect, names):
    """Headers arrive as published; a message without headers has empty ones."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names)
    headers = {"sender": "p.1@cc", "conv-seq": 3, "flag": True}
    await conn.publish("", q, b"h", headers=dict(headers))
    await conn.publish("", q, b"none")
    first, second = await c.wait(2)
    assert first.headers == headers
    assert not second.headers


@pytest_twisted.ensureDeferred
async def test_fifo_order(connect, names):
    """One consumer receives a queue's messages in publish order."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names)
    sent = [b"%d" % n for n in range(200)]
    for body in sent:
        conn.publish("", q, body)
    assert bodies(await c.wait(200)) == sent


@pytest_twisted.ensureDeferred
async def test_delete_queue(connect, names):
    """Deleting a queue removes it and its bindings."""
    conn = await connect()
    ex = names("ex")
    await conn.declare_exchange(ex, "topic")
    q = await conn.declare_queue(names("q"))
    await conn.bind_queue(q, ex, "k")
    await conn.publish(ex, "k", b"lost")
    await conn.delete_queue(q)
    assert not await conn.queue_exists(q)
    await expect_error(conn.publish(ex, "k", b"x", mandatory=True), UnroutableError)


@pytest_twisted.ensureDeferred
async def test_queue_exists(connect, names):
    """C{queue_exists} is false for an unknown name and true once declared."""
    conn = await connect()
    q = names("q")
    assert await conn.queue_exists(q) is False
    await conn.declare_queue(q)
    assert await conn.queue_exists(q) is True


@pytest_twisted.ensureDeferred
async def test_queue_consumers_counts_every_connections_consumers(connect, names):
    """C{queue_consumers} is 0 for an unknown queue (and declares nothing), counts the
    consumers of all connections, and follows cancels; another connection's exclusive
    queue is locked."""
    conn, other = await connect(), await connect()
    q = names("q")
    assert await conn.queue_consumers(q) == 0
    assert not await conn.queue_exists(q)
    await conn.declare_queue(q)
    assert await conn.queue_consumers(q) == 0
    first = await other.consume(q, Collector())
    await conn.consume(q, Collector())
    assert await conn.queue_consumers(q) == 2
    await other.cancel(first)
    assert await conn.queue_consumers(q) == 1
    private = await other.declare_queue(names("private"), exclusive=True)
    await expect_error(conn.queue_consumers(private), ResourceLockedError)
    assert await conn.queue_consumers(q) == 1  # the connection goes on working


@pytest_twisted.ensureDeferred
async def test_queue_info_counts_ready_messages_and_consumers(connect, names):
    """C{queue_info} is None for an unknown queue (and declares nothing), counts
    the messages ready (not those delivered) and every connection's consumers;
    another connection's exclusive queue is locked."""
    conn, other = await connect(), await connect()
    ex, q = names("ex"), names("q")
    assert await conn.queue_info(q) is None
    assert not await conn.queue_exists(q)
    await conn.declare_exchange(ex, "direct")
    await conn.declare_queue(q)
    await conn.bind_queue(q, ex, "k")
    assert await conn.queue_info(q) == (0, 0)
    for n in range(5):
        await conn.publish(ex, "k", b"%d" % n, confirm=True)  # queued once confirmed
    assert await conn.queue_info(q) == (5, 0)
    got = Collector(ack=True)
    await other.consume(q, got)
    await got.wait(5)
    assert await conn.queue_info(q) == (0, 1)
    private = await other.declare_queue(names("private"), exclusive=True)
    await expect_error(conn.queue_info(private), ResourceLockedError)
    assert await conn.queue_info(q) == (0, 1)  # the connection goes on working


@pytest_twisted.ensureDeferred
async def test_exchange_exists(connect, names):
    """C{exchange_exists} is false for an unknown name (and declares nothing), true
    once declared, and the connection goes on working either way."""
    conn = await connect()
    ex = names("ex")
    assert await conn.exchange_exists(ex) is False
    assert await conn.exchange_exists(ex) is False
    await conn.declare_exchange(ex, "direct")
    assert await conn.exchange_exists(ex) is True
    q = await conn.declare_queue(names("q"))
    assert await conn.queue_exists(q) is True
    assert await conn.exchange_exists("") is True  # the default exchange


@pytest_twisted.ensureDeferred
async def test_delete_exchange(connect, names):
    """A deleted exchange refuses publishes."""
    conn = await connect()
    ex = names("ex")
    await conn.declare_exchange(ex, "topic")
    await conn.publish(ex, "k", b"x")
    await conn.delete_exchange(ex)
    await expect_error(conn.publish(ex, "k", b"x"))


@pytest_twisted.ensureDeferred
async def test_delivery_not_reentrant(connect, names):
    """C{on_delivery} has not run when C{publish} returns."""
    conn = await connect()
    q, c, _ = await queue_with_consumer(conn, names)
    conn.publish("", q, b"x")
    assert not c.items
    assert bodies(await c.wait(1)) == [b"x"]


@pytest_twisted.ensureDeferred
async def test_publish_from_delivery_not_reentrant(connect, names):
    """A message published from inside C{on_delivery} is delivered after that callback returns."""
    conn = await connect()
    q = await conn.declare_queue(names("q"))
    c = Collector()
    depth = max_depth = 0

    def on_delivery(d):
        nonlocal depth, max_depth
        depth += 1
        max_depth = max(max_depth, depth)
        c(d)
        d.ack()
        if d.body == b"ping":
            conn.publish("", q, b"pong")
        depth -= 1

    await conn.consume(q, on_delivery)
    await conn.publish("", q, b"ping")
    assert bodies(await c.wait(2)) == [b"ping", b"pong"]
    assert max_depth == 1


@pytest_twisted.ensureDeferred
async def test_report_returns_hands_unroutable_to_callback(connect, names):
    """With report_returns, a mandatory message that matches no queue succeeds at send
    and comes back through on_returned; a routable one is delivered as usual."""
    conn = await connect()
    ex = names("ex")
    await conn.declare_exchange(ex, "topic")
    q = await conn.declare_queue(names("q"))
    await conn.bind_queue(q, ex, "home")
    await conn.publish(ex, "warmup", b"w", mandatory=True, confirm=True).addErrback(
        lambda f: f.trap(UnroutableError)
    )  # the first publish to an exchange may check it exists
    returned = Collector()
    conn.on_returned(lambda exchange, key, body: returned((exchange, key, body)))
    got = Collector(ack=True)
    await conn.consume(q, got)
    await conn.publish(ex, "nobody.home", b"lost", mandatory=True, report_returns=True)
    await conn.publish(ex, "home", b"found", mandatory=True, report_returns=True)
    assert await returned.wait(1) == [(ex, "nobody.home", b"lost")]
    assert bodies(await got.wait(1)) == [b"found"]


@pytest_twisted.ensureDeferred
async def test_quorum_queue_declared_again_and_used(connect, names):
    """A quorum queue (durable) declares again with the same arguments and carries messages."""
    conn = await connect()
    q = await conn.declare_queue(names("q"), durable=True, queue_type="quorum")
    assert await conn.declare_queue(q, durable=True, queue_type="quorum") == q
    got = Collector(ack=True)
    await conn.consume(q, got)
    await conn.publish("", q, b"kept", confirm=True)
    assert bodies(await got.wait(1)) == [b"kept"]


@pytest_twisted.ensureDeferred
async def test_queue_of_another_type_refused(connect, names):
    """Declaring a queue that exists as the other type (classic, quorum) fails with
    PRECONDITION_FAILED, both ways; the queue stays as it was."""
    conn = await connect()
    quorum, classic = names("quorum"), names("classic")
    await conn.declare_queue(quorum, durable=True, queue_type="quorum")
    await conn.declare_queue(classic, durable=True)
    await expect_error(conn.declare_queue(quorum, durable=True), PreconditionFailedError)
    await expect_error(
        conn.declare_queue(classic, durable=True, queue_type="quorum"), PreconditionFailedError
    )
    assert await conn.declare_queue(quorum, durable=True, queue_type="quorum") == quorum


@pytest_twisted.ensureDeferred
async def test_quorum_queue_cannot_be_exclusive_transient_or_unknown(connect, names):
    """A quorum queue must be durable and shared; an unknown queue type is refused."""
    conn = await connect()
    for flags in ({"exclusive": True, "durable": True}, {"auto_delete": True, "durable": True}, {}):
        await expect_error(
            conn.declare_queue(names("q"), queue_type="quorum", **flags), PreconditionFailedError
        )
    await expect_error(conn.declare_queue(names("q"), queue_type="stream"), BrokerError)
    assert not await conn.queue_exists(names("q"))
