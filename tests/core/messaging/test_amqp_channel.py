"""Batched acks on one AMQP channel, against a fake pika channel and a task.Clock."""

from __future__ import annotations

from typing import Any

import pika.spec
from twisted.internet.task import Clock

from ion.core.exception import BrokerNackError
from ion.core.messaging.amqp_channel import Channel, Publisher


class FakeRaw:
    """Records the frames a pika channel would send."""

    def __init__(self) -> None:
        self.is_open = True
        self.sent: list[tuple[Any, ...]] = []
        self._on_close: list[Any] = []

    def add_on_close_callback(self, callback: Any) -> None:
        self._on_close.append(callback)

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.sent.append(("ack", tag, multiple))

    def basic_reject(self, tag: int, requeue: bool = False) -> None:
        self.sent.append(("reject", tag, requeue))

    def basic_consume(self, callback: Any = None, **kwargs: Any) -> None:
        self.sent.append(("consume", kwargs["queue"]))

    def close(self) -> None:
        self.sent.append(("close",))
        self.closed_by_broker(None)

    def closed_by_broker(self, reason: Any) -> None:
        self.is_open = False
        for callback in self._on_close:
            callback(self, reason)


def channel(tags: int) -> tuple[Channel, FakeRaw, Clock]:
    raw, clock = FakeRaw(), Clock()
    chan = Channel(raw, clock)
    for tag in range(1, tags + 1):
        chan.delivered(tag)
    return chan, raw, clock


def test_acks_of_one_turn_go_out_as_one_multiple_ack_on_the_next():
    chan, raw, clock = channel(4)
    for tag in (3, 1, 2, 4):
        chan.ack(tag)
    assert raw.sent == []
    clock.advance(0)
    assert raw.sent == [("ack", 4, True)]


def test_a_lone_ack_is_not_multiple():
    chan, raw, clock = channel(2)
    chan.ack(1)
    clock.advance(0)
    assert raw.sent == [("ack", 1, False)]


def test_acks_behind_an_unsettled_delivery_go_out_singly():
    chan, raw, clock = channel(4)
    chan.ack(4)
    chan.ack(2)
    clock.advance(0)
    assert raw.sent == [("ack", 2, False), ("ack", 4, False)]
    chan.ack(1)
    chan.ack(3)
    clock.advance(0)
    assert raw.sent[2:] == [("ack", 3, True)]  # 1 and 3; 2 and 4 went already


def test_a_rejected_delivery_goes_at_once_and_leaves_the_run():
    chan, raw, clock = channel(3)
    chan.ack(1)
    chan.reject(2, requeue=True)
    chan.ack(3)
    assert raw.sent == [("reject", 2, True)]
    clock.advance(0)
    assert raw.sent[1:] == [("ack", 3, True)]


def test_close_sends_the_settled_acks_first():
    chan, raw, clock = channel(2)
    chan.ack(1)
    chan.ack(2)
    chan.close()
    assert raw.sent == [("ack", 2, True), ("close",)]
    clock.advance(0)
    assert len(raw.sent) == 2


def test_a_channel_closed_by_the_broker_sends_nothing_more():
    chan, raw, clock = channel(2)
    chan.ack(1)
    raw.closed_by_broker(Exception("gone"))
    raw.is_open = True  # even if pika said otherwise, the old tags are void
    clock.advance(0)
    assert raw.sent == []
    assert clock.getDelayedCalls() == []


def test_without_a_clock_acks_go_at_once():
    raw = FakeRaw()
    chan = Channel(raw)
    chan.delivered(1)
    chan.ack(1)
    assert raw.sent == [("ack", 1, False)]


def test_an_rpc_sends_the_settled_acks_first():
    """The broker may close the channel over an RPC (a queue gone since it was
    checked): acks settled before it must already be on their way."""
    chan, raw, clock = channel(2)
    chan.ack(1)
    chan.ack(2)
    chan.rpc("basic_consume", queue="q")
    assert raw.sent == [("ack", 2, True), ("consume", "q")]
    clock.advance(0)
    assert len(raw.sent) == 2


# --- a confirming publisher that meets a nack ---------------------------------------------


class _Frame:
    def __init__(self, method: Any) -> None:
        self.method = method


def _publisher() -> tuple[Publisher, FakeRaw, list[Publisher]]:
    raw = FakeRaw()
    raw.basic_publish = lambda *args: raw.sent.append(("publish", args[1]))  # type: ignore[attr-defined]
    chan = Channel(raw, Clock())
    publisher = Publisher(chan, confirming=True)
    nacked: list[Publisher] = []
    publisher.on_nack = nacked.append
    return publisher, raw, nacked


def test_a_nack_fails_its_publish_as_nothing_queued_and_is_told():
    publisher, _raw, nacked = _publisher()
    d = publisher.publish("ion.sys", "svc", b"x", None, True, True)
    publisher.on_confirm(_Frame(pika.spec.Basic.Nack(delivery_tag=1)))
    failure = []
    d.addErrback(failure.append)
    assert failure[0].check(BrokerNackError) and "nothing was queued" in str(failure[0].value)
    assert nacked == [publisher]


def test_a_retired_publisher_closes_once_its_confirms_are_in():
    """Retired at a nack (PublishPath moves later publishes to a new channel), the
    channel stays open for the confirms still due, then closes."""
    publisher, raw, _nacked = _publisher()
    first, second = (publisher.publish("ex", "k", b"x", None, True, True) for _ in range(2))
    publisher.retired = True
    publisher.on_confirm(_Frame(pika.spec.Basic.Ack(delivery_tag=1)))
    assert ("close",) not in raw.sent and first.called and not second.called
    publisher.on_confirm(_Frame(pika.spec.Basic.Ack(delivery_tag=2)))
    assert raw.sent[-1] == ("close",) and second.called
