"""Queues, consumers and deliveries of an L{ion.core.messaging.embedded.EmbeddedBroker},
and the L{DeliveryPump} that hands queued messages to consumers.

Deliveries are batched: publishing schedules at most one C{callLater(0)} drain,
and the drain hands out every deliverable message, including those published
by the consumers it calls, up to C{max_batch} deliveries per reactor turn.
C{on_delivery} therefore never runs inside C{publish}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ion.core.exception import ConnectionClosedError, PreconditionFailedError
from ion.core.messaging.broker import IDelivery
from ion.core.messaging.headers import to_wire_headers

if TYPE_CHECKING:
    from ion.core.messaging.embedded import EmbeddedConnection

__all__ = ["Consumer", "Delivery", "DeliveryPump", "Queue"]

_log = Logger()

_DRAINING = object()  # stands in for the pending DelayedCall while _drain runs
_PENDING, _SETTLED, _RETURNED, _AUTO = 0, 1, 2, 3


class Queue:
    """One queue: its ready messages, its consumers and the bindings that feed it."""

    __slots__ = ("name", "owner", "auto_delete", "durable", "queue_type", "messages",
                 "consumers", "rr", "scheduled", "bindings", "deleted", "enqueued")  # fmt: skip

    def __init__(
        self,
        name: str,
        owner: EmbeddedConnection | None,
        auto_delete: bool,
        durable: bool,
        queue_type: str = "classic",
    ) -> None:
        self.name = name
        self.owner = owner  # the connection an exclusive queue belongs to
        self.auto_delete = auto_delete
        self.durable = durable
        self.queue_type = queue_type
        self.messages: deque[Delivery] = deque()
        self.consumers: list[Consumer] = []
        self.rr = 0  # index of the consumer next in turn
        self.scheduled = False  # already in the pump's drain list
        self.bindings: set[tuple[str, str]] = set()  # (exchange, binding key)
        self.deleted = False
        self.enqueued = 0  # messages ever queued: each one's place in the queue

    def put(self, d: Delivery) -> None:
        """Queue a newly published message at the tail."""
        self.enqueued += 1
        d.place = self.enqueued
        self.messages.append(d)

    def put_back(self, d: Delivery) -> None:
        """Queue a returned message where it stood among the ready ones, as RabbitMQ
        does: messages given back oldest first or newest first keep their order."""
        msgs = self.messages
        i = 0
        for other in msgs:  # returned ones go near the head: a short walk
            if other.place > d.place:
                break
            i += 1
        msgs.insert(i, d)


class Consumer:
    """One consumer of a queue, on one connection."""

    __slots__ = ("tag", "queue", "conn", "callback", "prefetch", "unacked", "auto_ack")

    def __init__(
        self,
        tag: str,
        queue: Queue,
        conn: EmbeddedConnection,
        callback: Callable[[IDelivery], None],
        prefetch: int,
        auto_ack: bool = False,
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.conn = conn
        self.callback = callback
        self.prefetch = 0 if auto_ack else prefetch
        self.unacked = 0
        self.auto_ack = auto_ack


@implementer(IDelivery)
class Delivery:
    """A message in a queue, and once handed to a consumer, that consumer's delivery."""

    __slots__ = ("body", "exchange", "routing_key", "headers", "redelivered",
                 "place", "expires", "_queue", "_consumer", "_tag", "_state", "_kept")  # fmt: skip
    user_id = None  # the embedded broker has no users (IDelivery.user_id)

    def __init__(
        self,
        queue: Queue,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any] | None,
        redelivered: bool,
        expires: float | None = None,
    ) -> None:
        self.body = body
        self.exchange = exchange
        self.routing_key = routing_key
        self.headers = {} if headers is None else headers
        self.redelivered = redelivered
        self.place = 0  # set as it is queued (Queue.put)
        self.expires = expires  # when it is dropped if still queued (the reactor's seconds)
        self._kept: dict[str, Any] | None = None  # the headers as queued, if a consumer got a copy
        self._queue = queue
        self._consumer: Consumer | None = None
        self._tag = 0
        self._state = _PENDING

    def __repr__(self) -> str:
        return f"<Delivery {self.exchange}:{self.routing_key} {len(self.body)}B tag={self._tag}>"

    def ack(self) -> None:
        """Acknowledge: the broker forgets the message."""
        if self._state != _AUTO:
            self._settle()

    def reject(self, requeue: bool = False) -> None:
        """Drop the message, or put it back in its place in its queue if C{requeue}."""
        if self._state == _AUTO:
            return
        self._settle()
        if requeue:
            self._return()

    def _revoke(self) -> None:
        """Put the message back in its queue as its connection closes; settling it then raises."""
        self._return()
        self._state = _RETURNED

    def _settle(self) -> None:
        if self._state != _PENDING or self._consumer is None:
            if self._state == _RETURNED:
                raise ConnectionClosedError("connection closed: the message went back to its queue")
            raise PreconditionFailedError(f"PRECONDITION_FAILED - unknown delivery tag {self._tag}")
        self._state = _SETTLED
        consumer = self._consumer
        conn = consumer.conn
        del conn._unacked[self._tag]
        consumer.unacked -= 1
        q = self._queue
        if consumer.prefetch and q.messages and not q.scheduled and not q.deleted:
            conn._pump.schedule(q)

    def _return(self) -> None:
        q = self._queue
        if not q.deleted:
            # The headers as queued: what the consumer changed in its copy stays there.
            headers = self._kept if self._kept is not None else self.headers
            again = Delivery(
                q, self.exchange, self.routing_key, self.body, headers, True, self.expires
            )
            again.place = self.place
            q.put_back(again)
            if q.consumers and not q.scheduled:
                self._consumer.conn._pump.schedule(q)  # type: ignore[union-attr]


class DeliveryPump:
    """Drains scheduled queues into their consumers, C{max_batch} deliveries per reactor turn.

    @param reactor: an C{IReactorTime} (a C{task.Clock} in unit tests).
    @param max_batch: most deliveries per reactor turn before yielding to it.
    """

    def __init__(self, reactor: IReactorTime, max_batch: int) -> None:
        self._reactor: Any = reactor  # an IReactorTime (mypy reads zope methods as unbound)
        self._max_batch = max_batch
        self._dirty: deque[Queue] = deque()  # queues that may have deliverable messages
        self._call: IDelayedCall | object | None = None

    def schedule(self, q: Queue) -> None:
        """Add C{q}, not already scheduled, to the running drain or to the next one."""
        q.scheduled = True
        self._dirty.append(q)
        if self._call is None:
            self._call = self._reactor.callLater(0, self._drain)

    def _drain(self) -> None:
        self._call = _DRAINING  # publishes from consumers join this drain
        dirty = self._dirty
        budget = self._max_batch
        try:
            while dirty and budget > 0:
                q = dirty.popleft()
                q.scheduled = False
                if not q.deleted:
                    budget = self._dispatch(q, budget)
        finally:
            self._call = None
            if dirty:
                self._call = self._reactor.callLater(0, self._drain)

    def _dispatch(self, q: Queue, budget: int) -> int:
        """Hand C{q}'s messages to its consumers round robin; return the budget left."""
        msgs = q.messages
        consumers = q.consumers
        while msgs and consumers:
            if budget <= 0:
                if not q.scheduled:
                    self.schedule(q)
                break
            n = len(consumers)
            if n == 1:
                c = consumers[0]
                if c.prefetch and c.unacked >= c.prefetch:
                    break
            else:
                i = q.rr
                for _ in range(n):
                    if i >= n:
                        i = 0
                    c = consumers[i]
                    i += 1
                    if not c.prefetch or c.unacked < c.prefetch:
                        break
                else:
                    break  # every consumer is at its prefetch limit
                q.rr = i
            d = msgs.popleft()
            budget -= 1
            if d.expires is not None and d.expires <= self._reactor.seconds():
                continue  # its TTL passed while queued: dropped, as RabbitMQ does
            if d.headers:  # the consumer's own copy (ion's messages have none)
                d._kept, d.headers = d.headers, to_wire_headers(d.headers)
            if c.auto_ack:  # the broker forgets it as it hands it over
                d._state = _AUTO
                d._consumer = c
                try:
                    c.callback(d)
                except BaseException:  # SystemExit too: a callback's error stays its own
                    _log.failure("on_delivery of consumer {tag} raised", tag=c.tag)
                continue
            conn = c.conn
            tag = next(conn._tags)
            d._tag = tag
            d._consumer = c
            conn._unacked[tag] = d
            c.unacked += 1
            try:
                c.callback(d)
            except BaseException:  # SystemExit too: a callback's error stays its own
                _log.failure("on_delivery of consumer {tag} raised", tag=c.tag)
        return budget
