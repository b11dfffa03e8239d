"""Channels under L{ion.core.messaging.amqp}: Deferred RPCs, batched acks, deliveries,
consumers and the confirming publisher.

Acks are batched per channel: a delivery settled by C{ack} is acknowledged on
the reactor's next turn, together with every other one settled meanwhile,
with one C{basic.ack multiple} for the run of settled tags at the head of the
channel's unacked ones (and single acks for settled tags behind an unsettled
one). The ack frames so go out with the replies written in the same turn, at
a fraction of the frames. Rejects go out at once.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import takewhile
from typing import Any

import pika.spec
from twisted.internet import defer
from twisted.python.failure import Failure
from zope.interface import implementer

from ion.core.exception import (
    BrokerBusyError,
    BrokerError,
    BrokerNackError,
    PreconditionFailedError,
    UnroutableError,
)
from ion.core.messaging.amqp_connection import map_error
from ion.core.messaging.broker import IDelivery

# One shared, empty property set for publishes that carry none (pika only reads it).
_NO_PROPERTIES = pika.spec.BasicProperties()
_PERSISTENT = pika.spec.PERSISTENT_DELIVERY_MODE


class Channel:
    """One pika channel, with Deferred-returning RPCs that fail if the channel closes.

    C{closed} fires (never fails) with the pika reason once the channel is
    closed, whoever closed it.
    """

    def __init__(self, raw: Any, clock: Any = None) -> None:
        self.raw = raw
        self.reason: BaseException | None = None
        self.closed: defer.Deferred[BaseException] = defer.Deferred()
        self._pending: set[defer.Deferred[Any]] = set()
        self.fail_with: Callable[[BaseException], BaseException] = map_error
        self._clock = clock
        # Manual-ack delivery tags not yet acknowledged, in delivery order, and
        # those of them settled since the last flush.
        self._unacked: dict[int, None] = {}
        self._settled: list[int] = []
        self._flush_call: Any = None
        raw.add_on_close_callback(self._on_close)

    @classmethod
    def open(cls, protocol: Any, clock: Any = None) -> defer.Deferred[Channel]:
        """Open a new channel on C{protocol}'s connection (acks batched on C{clock}'s turns)."""
        d: defer.Deferred[Channel] = defer.Deferred()
        opening = _opening(protocol)
        opening.add(d)

        def opened(raw: Any) -> None:
            opening.discard(d)
            d.callback(cls(raw, clock))

        try:
            protocol._impl.channel(on_open_callback=opened)
        except BaseException:
            opening.discard(d)
            raise
        return d

    @property
    def is_open(self) -> bool:
        return self.raw.is_open

    def rpc(self, method: str, **kwargs: Any) -> defer.Deferred[Any]:
        """Call C{raw.<method>(callback=..., **kwargs)}; the Deferred fires with the reply frame."""
        if not self.raw.is_open:
            return defer.fail(self.fail_with(self.reason or BrokerError("channel is closed")))
        # The broker may close the channel over this RPC (a queue gone since it
        # was checked, say): acks already settled go out first, so none is lost.
        self.flush_acks()
        d: defer.Deferred[Any] = defer.Deferred()
        self._pending.add(d)

        def reply(frame: Any = None) -> None:
            self._pending.discard(d)
            d.callback(frame)

        try:
            getattr(self.raw, method)(callback=reply, **kwargs)
        except Exception:
            self._pending.discard(d)
            return defer.fail()
        return d

    # -- acknowledgements ------------------------------------------------------------------

    def delivered(self, tag: int) -> None:
        """Note a delivery that will be acked or rejected here."""
        self._unacked[tag] = None

    def ack(self, tag: int) -> None:
        """Acknowledge C{tag} on the next turn (at once without a clock)."""
        self._settled.append(tag)
        if self._clock is None:
            self.flush_acks()
        elif self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush_acks)

    def reject(self, tag: int, requeue: bool) -> None:
        """Reject C{tag} now."""
        self._unacked.pop(tag, None)
        self.raw.basic_reject(tag, requeue=requeue)

    def flush_acks(self) -> None:
        """Send the acks settled so far."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        settled, self._settled = self._settled, []
        if not settled or not self.raw.is_open:
            return  # a closed channel's unacked messages went back to their queues
        unacked = self._unacked
        done = set(settled)
        head = list(takewhile(done.__contains__, unacked))
        for tag in head:
            del unacked[tag]
        if head:
            # Every unacked tag up to head[-1] is settled: one frame acks them all.
            self.raw.basic_ack(head[-1], multiple=len(head) > 1)
        for tag in sorted(done.difference(head)):
            if unacked.pop(tag, 0) is None:
                self.raw.basic_ack(tag)

    def close(self) -> defer.Deferred[BaseException]:
        """Close the channel (after sending the acks settled so far); fires once it is closed."""
        if self.raw.is_open:
            self.flush_acks()
            self.raw.close()
        return self.closed

    def _on_close(self, _raw: Any, reason: BaseException) -> None:
        self.reason = reason
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        self._unacked.clear()
        self._settled = []
        pending, self._pending = self._pending, set()
        error = self.fail_with(reason)
        for d in pending:
            d.errback(error)
        self.closed.callback(reason)


@implementer(IDelivery)
class Delivery:
    """One message handed to a consumer, settled on the channel it came on."""

    __slots__ = ("body", "exchange", "routing_key", "headers", "redelivered", "user_id",
                 "_broker", "_chan", "_tag", "_settled")  # fmt: skip

    def __init__(
        self, broker, chan, tag, body, exchange, routing_key, headers, redelivered, user_id=None
    ):
        self.body = body
        self.user_id = user_id  # the sender's broker user, as the broker checked it (or None)
        self.exchange = exchange
        self.routing_key = routing_key
        self.headers = headers
        self.redelivered = redelivered
        self._broker = broker
        self._chan = chan
        self._tag = tag
        self._settled = False
        if tag is not None:
            chan.delivered(tag)

    def __repr__(self) -> str:
        return f"<Delivery {self.exchange}:{self.routing_key} {len(self.body)}B tag={self._tag}>"

    def ack(self) -> None:
        """Acknowledge: the broker forgets the message (nothing to do when auto-acked)."""
        if self._tag is not None:
            self._settle()
            self._chan.ack(self._tag)

    def reject(self, requeue: bool = False) -> None:
        """Drop the message, or put it back at the head of its queue if C{requeue}."""
        if self._tag is not None:
            self._settle()
            self._chan.reject(self._tag, requeue)

    def _settle(self) -> None:
        if self._settled:
            raise PreconditionFailedError(
                f"PRECONDITION_FAILED - delivery {self._tag} settled twice"
            )
        if not self._chan.is_open:
            raise self._broker._gone("the channel it came on is gone; it went back to its queue")
        self._settled = True


def forward(result: Any, d: defer.Deferred[Any]) -> None:
    """Fire C{d} with C{result} (use with C{addBoth}), unless its caller cancelled it."""
    if d.called:
        if isinstance(result, Failure):
            result.trap(Exception)  # handled: the caller has gone
        return
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(result)


def _opening(protocol: Any) -> set[defer.Deferred[Channel]]:
    """The channel opens pending on C{protocol}'s connection. If the connection
    dies first, pika answers none of them: one callback on it (not one per
    channel, which would pile up for the connection's life) fails them all."""
    pending: set[defer.Deferred[Channel]] | None = getattr(protocol, "ion_opening", None)
    if pending is not None:
        return pending
    pending = set()
    closed = protocol.closed  # None until the handshake is through
    if closed is not None:
        protocol.ion_opening = pending

        def fail_all(reason: Any) -> Any:
            waiting = list(pending)
            pending.clear()
            for d in waiting:
                d.errback(BrokerError(f"{reason}"))
            return reason

        closed.addBoth(fail_all)
    return pending


class Consumer:
    """A consumer: its tag, queue, callback, prefetch and the channel it is on."""

    __slots__ = ("tag", "queue", "callback", "prefetch", "auto_ack", "chan", "cancelled")

    def __init__(
        self, tag: str, queue: str, callback: Callable, prefetch: int, auto_ack: bool = False
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.callback = callback
        self.prefetch = 0 if auto_ack else prefetch
        self.auto_ack = auto_ack
        self.chan: Channel | None = None
        self.cancelled = False  # its owner cancelled it: it must not start (again)


class Publisher:
    """A publish channel. In confirm mode it keeps one pending entry per publish,
    by sequence number; a plain one keeps nothing."""

    def __init__(
        self, chan: Channel, confirming: bool = True, limit: int = 0, user_id: str | None = None
    ) -> None:
        self.chan = chan
        self.set_user_id(user_id)
        self.confirming = confirming
        self.limit = limit  # publishes awaiting a confirm at most (0: no limit)
        self.seq = 0
        self.unconfirmed: dict[int, tuple[defer.Deferred[None], str, str] | None] = {}
        self.returned: set[int] = set()
        self.on_nack: Callable[[Publisher], None] | None = None
        self.retired = False  # takes no more publishes; closes once all are confirmed

    def set_user_id(self, user_id: str | None) -> None:
        """Set the C{user_id} property of the publishes from now on (None: none)."""
        self.user_id = user_id
        # The properties of a plain publish with no headers, made once.
        self._bare = pika.spec.BasicProperties(user_id=user_id) if user_id else _NO_PROPERTIES

    def publish(
        self, exchange, key, body, headers, mandatory, confirm, expiration=None
    ) -> defer.Deferred[None]:
        # AMQP's expiration is a string of milliseconds.
        ttl = None if expiration is None else str(expiration)
        if not self.confirming:
            # Returns on a plain channel are told apart by their body, not a sequence number.
            if headers or ttl:
                props = pika.spec.BasicProperties(
                    headers=headers, expiration=ttl, user_id=self.user_id
                )
            else:
                props = self._bare
            self.chan.raw.basic_publish(exchange, key, body, props, mandatory)
            return defer.succeed(None)
        if self.limit and len(self.unconfirmed) >= self.limit:
            raise BrokerBusyError(
                f"{len(self.unconfirmed)} publishes await the broker's confirm "
                f"(broker.max_unconfirmed is {self.limit}); try again later"
            )
        seq = self.seq + 1
        props = pika.spec.BasicProperties(
            headers=headers,
            message_id=str(seq) if mandatory else None,
            expiration=ttl,
            delivery_mode=_PERSISTENT if confirm else None,  # see IBroker.publish
            user_id=self.user_id,
        )
        self.chan.raw.basic_publish(exchange, key, body, props, mandatory)
        self.seq = seq
        if mandatory or confirm:
            d: defer.Deferred[None] = defer.Deferred()
            self.unconfirmed[seq] = (d, exchange, key)
            return d
        self.unconfirmed[seq] = None
        return defer.succeed(None)

    def on_return(self, _raw: Any, _method: Any, props: Any, _body: bytes) -> None:
        try:
            self.returned.add(int(props.message_id))
        except (TypeError, ValueError):
            pass

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = method.delivery_tag
        nack = isinstance(method, pika.spec.Basic.Nack)
        pending = self.unconfirmed
        if method.multiple:
            while pending:
                seq = next(iter(pending))
                if seq > tag:
                    break
                self._resolve(seq, pending.pop(seq), nack)
        elif tag in pending:
            self._resolve(tag, pending.pop(tag), nack)
        if nack and self.on_nack is not None:
            self.on_nack(self)
        if self.retired and not pending and self.chan.is_open:
            self.chan.raw.close()

    def _resolve(self, seq: int, entry: Any, nack: bool) -> None:
        returned = seq in self.returned
        if returned:
            self.returned.discard(seq)
        if entry is None or entry[0].called:  # its caller gave up waiting (cancelled it)
            return
        d, exchange, key = entry
        if returned:
            d.errback(UnroutableError(f"NO_ROUTE - {exchange!r} has no queue for {key!r}"))
        elif nack:
            d.errback(
                BrokerNackError(
                    f"the broker refused (nacked) a message to {exchange!r} ({key!r}): a queue "
                    "it routes to could not take it (a quorum queue electing a leader, say); "
                    "nothing was queued"
                )
            )
        else:
            d.callback(None)

    def fail_all(self, error: BaseException) -> None:
        pending, self.unconfirmed = self.unconfirmed, {}
        for entry in pending.values():
            if entry is not None and not entry[0].called:
                entry[0].errback(error)
