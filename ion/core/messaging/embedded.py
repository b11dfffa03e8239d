"""The embedded broker: AMQP 0-9-1 semantics in memory, inside one reactor.

An L{EmbeddedBroker} is the server (exchanges, queues, bindings); each
L{EmbeddedConnection} it hands out is one L{IBroker} client, so several
containers in one reactor can share a broker just as they would share RabbitMQ.

Deliveries are batched: publishing schedules at most one C{callLater(0)} drain,
and the drain hands out every deliverable message, including those published
by the consumers it calls, up to C{max_batch} deliveries per reactor turn.
C{on_delivery} therefore never runs inside C{publish}.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any
from uuid import uuid4

from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from ion.core.exception import (
    BrokerError,
    ConnectionClosedError,
    NoSuchExchangeError,
    NoSuchQueueError,
    PreconditionFailedError,
    ResourceLockedError,
    UnroutableError,
)
from ion.core.messaging.broker import EXCHANGE_TYPES, IBroker, IDelivery
from ion.core.messaging.topic import compile_topic, is_wildcard

_log = Logger()

_DRAINING = object()  # stands in for the pending DelayedCall while _drain runs
_ROUTE_CACHE_MAX = 4096
_PENDING, _SETTLED, _RETURNED, _AUTO = 0, 1, 2, 3
_NEW, _OPEN, _CLOSED = "new", "open", "closed"


class _Exchange:
    __slots__ = ("name", "type", "auto_delete", "_keys", "_wild", "_cache")

    def __init__(self, name: str, type: str, auto_delete: bool) -> None:
        self.name = name
        self.type = type
        self.auto_delete = auto_delete
        self._keys: dict[str, dict[str, None]] = {}  # binding key -> queue names (ordered set)
        self._wild: dict[tuple[str, str], Callable[[str], bool]] = {}  # (pattern, queue) -> match
        self._cache: dict[str, tuple[str, ...]] = {}  # routing key -> queue names

    def bind(self, queue: str, key: str) -> None:
        if self.type == "topic" and is_wildcard(key):
            self._wild[(key, queue)] = compile_topic(key)
        else:
            self._keys.setdefault(key, {})[queue] = None
        self._cache.clear()

    def unbind(self, queue: str, key: str) -> None:
        if self._wild.pop((key, queue), None) is None:
            queues = self._keys.get(key)
            if queues is not None:
                queues.pop(queue, None)
                if not queues:
                    del self._keys[key]
        self._cache.clear()

    def bindings(self) -> list[tuple[str, str]]:
        """Every (queue, binding key) pair."""
        pairs = [(q, key) for key, queues in self._keys.items() for q in queues]
        return pairs + [(q, key) for key, q in self._wild]

    def route(self, key: str) -> Iterable[str]:
        """The names of the queues a message with routing key C{key} goes to."""
        if self.type == "direct":
            return self._keys.get(key, ())
        if self.type == "topic" and not self._wild:
            return self._keys.get(key, ())
        if self.type == "fanout":
            key = ""  # one cached answer for every key
        hit = self._cache.get(key)
        if hit is None:
            if self.type == "fanout":
                names = {q: None for queues in self._keys.values() for q in queues}
            else:
                names = dict.fromkeys(self._keys.get(key, ()))
                for (_, queue), match in self._wild.items():
                    if match(key):
                        names[queue] = None
            hit = tuple(names)
            if len(self._cache) >= _ROUTE_CACHE_MAX:
                self._cache.clear()
            self._cache[key] = hit
        return hit


class _Queue:
    __slots__ = ("name", "owner", "auto_delete", "durable", "messages",
                 "consumers", "rr", "scheduled", "bindings", "deleted")  # fmt: skip

    def __init__(self, name, owner, auto_delete, durable) -> None:
        self.name = name
        self.owner = owner  # the connection an exclusive queue belongs to
        self.auto_delete = auto_delete
        self.durable = durable
        self.messages: deque[_Delivery] = deque()
        self.consumers: list[_Consumer] = []
        self.rr = 0  # index of the consumer next in turn
        self.scheduled = False  # already in the broker's drain list
        self.bindings: set[tuple[str, str]] = set()  # (exchange, binding key)
        self.deleted = False


class _Consumer:
    __slots__ = ("tag", "queue", "conn", "callback", "prefetch", "unacked", "auto_ack")

    def __init__(self, tag, queue, conn, callback, prefetch, auto_ack=False) -> None:
        self.tag = tag
        self.queue = queue
        self.conn = conn
        self.callback = callback
        self.prefetch = 0 if auto_ack else prefetch
        self.unacked = 0
        self.auto_ack = auto_ack


@implementer(IDelivery)
class _Delivery:
    """A message in a queue, and once handed to a consumer, that consumer's delivery."""

    __slots__ = ("body", "exchange", "routing_key", "headers", "redelivered",
                 "_queue", "_consumer", "_tag", "_state")  # fmt: skip

    def __init__(self, queue, exchange, routing_key, body, headers, redelivered) -> None:
        self.body = body
        self.exchange = exchange
        self.routing_key = routing_key
        self.headers = {} if headers is None else headers
        self.redelivered = redelivered
        self._queue = queue
        self._consumer: _Consumer | None = None
        self._tag = 0
        self._state = _PENDING

    def __repr__(self) -> str:
        return f"<Delivery {self.exchange}:{self.routing_key} {len(self.body)}B tag={self._tag}>"

    def ack(self) -> None:
        """Acknowledge: the broker forgets the message."""
        if self._state != _AUTO:
            self._settle()

    def reject(self, requeue: bool = False) -> None:
        """Drop the message, or put it back at the head of its queue if C{requeue}."""
        if self._state == _AUTO:
            return
        self._settle()
        if requeue:
            self._return()

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
            conn._broker._schedule(q)

    def _return(self) -> None:
        q = self._queue
        if not q.deleted:
            again = _Delivery(q, self.exchange, self.routing_key, self.body, self.headers, True)
            q.messages.appendleft(again)
            if q.consumers and not q.scheduled:
                self._consumer.conn._broker._schedule(q)  # type: ignore[union-attr]


class EmbeddedBroker:
    """The in-memory server: exchanges, queues and bindings shared by its connections.

    @param reactor: an C{IReactorTime} (a C{task.Clock} in unit tests).
    @param max_batch: most deliveries per reactor turn before yielding to it.
    """

    def __init__(self, reactor: IReactorTime, max_batch: int = 1000) -> None:
        self._reactor = reactor
        self._max_batch = max_batch
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, _Queue] = {}
        self._dirty: deque[_Queue] = deque()  # queues that may have deliverable messages
        self._call: IDelayedCall | object | None = None
        self._serial = itertools.count(1)

    def connection(self) -> EmbeddedConnection:
        """A new, not yet connected, client connection to this broker."""
        return EmbeddedConnection(self, next(self._serial))

    def queue_names(self) -> list[str]:
        """The names of all queues, for inspection."""
        return list(self._queues)

    def exchange_names(self) -> list[str]:
        """The names of all exchanges, for inspection."""
        return list(self._exchanges)

    def message_count(self, queue: str) -> int:
        """Messages ready in C{queue} (not counting unacked deliveries)."""
        return len(self._queues[queue].messages)

    def consumer_count(self, queue: str) -> int:
        """Consumers of C{queue}."""
        return len(self._queues[queue].consumers)

    def _schedule(self, q: _Queue) -> None:
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

    def _dispatch(self, q: _Queue, budget: int) -> int:
        """Hand C{q}'s messages to its consumers round robin; return the budget left."""
        msgs = q.messages
        consumers = q.consumers
        while msgs and consumers:
            if budget <= 0:
                if not q.scheduled:
                    self._schedule(q)
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
            if c.auto_ack:  # the broker forgets it as it hands it over
                d._state = _AUTO
                d._consumer = c
                try:
                    c.callback(d)
                except Exception:
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
            except Exception:
                _log.failure("on_delivery of consumer {tag} raised", tag=c.tag)
        return budget

    def _remove_consumer(self, c: _Consumer) -> None:
        q = c.queue
        if q.deleted:
            return
        q.consumers.remove(c)
        if q.auto_delete and not q.consumers:
            self._delete_queue(q)

    def _unbind(self, ex: _Exchange, queue: str, key: str) -> None:
        ex.unbind(queue, key)
        if ex.auto_delete and not ex.bindings():
            del self._exchanges[ex.name]

    def _delete_queue(self, q: _Queue) -> None:
        q.deleted = True
        del self._queues[q.name]
        for exchange, key in q.bindings:
            self._unbind(self._exchanges[exchange], q.name, key)
        q.bindings.clear()
        for c in q.consumers:
            c.conn._consumers.pop(c.tag, None)
        q.consumers.clear()
        q.messages.clear()
        if q.owner is not None:
            q.owner._exclusive.pop(q.name, None)


def _locked(queue: str) -> ResourceLockedError:
    return ResourceLockedError(
        f"RESOURCE_LOCKED - queue '{queue}' is exclusive to another connection"
    )


def _inequivalent(kind: str, name: str) -> PreconditionFailedError:
    return PreconditionFailedError(
        f"PRECONDITION_FAILED - inequivalent arguments for {kind} '{name}'"
    )


def _operation(method: Callable[..., Any]) -> Callable[..., defer.Deferred[Any]]:
    """Refuse the call on a connection that is not open; return the result as a fired Deferred."""

    @functools.wraps(method)
    def call(self: EmbeddedConnection, *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        if self._state != _OPEN:
            return defer.fail(ConnectionClosedError(f"{self.name} is {self._state}"))
        try:
            return defer.succeed(method(self, *args, **kwargs))
        except Exception:
            return defer.fail()

    return call


@implementer(IBroker)
class EmbeddedConnection:
    """One client connection to an L{EmbeddedBroker}; see L{IBroker}."""

    def __init__(self, broker: EmbeddedBroker, serial: int) -> None:
        self.name = f"embedded-{serial}"
        self._broker = broker
        self._serial = serial
        self._state = _NEW
        self._consumers: dict[str, _Consumer] = {}
        self._unacked: dict[int, _Delivery] = {}  # by delivery tag, in delivery order
        self._exclusive: dict[str, _Queue] = {}
        self._tags = itertools.count(1)
        self._ctags = itertools.count(1)
        self._returned_callbacks: list[Callable[[str, str, bytes], None]] = []

    def __repr__(self) -> str:
        return f"<EmbeddedConnection {self.name} {self._state}>"

    def connect(self) -> defer.Deferred[None]:
        if self._state == _CLOSED:
            return defer.fail(ConnectionClosedError(f"{self.name} is closed"))
        self._state = _OPEN
        return defer.succeed(None)

    def on_connection_lost(self, callback: Callable[[Exception], None]) -> None:
        """An in-process connection is never lost: nothing to call."""

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        """An in-process connection is never lost: nothing to call."""

    def close(self) -> defer.Deferred[None]:
        """Close: consumers go, unacked deliveries return, exclusive queues are deleted."""
        if self._state == _CLOSED:
            return defer.succeed(None)
        self._state = _CLOSED
        broker = self._broker
        for c in list(self._consumers.values()):
            broker._remove_consumer(c)
        self._consumers.clear()
        # Newest first, so each queue gets its messages back at the head in the original order.
        for d in reversed(list(self._unacked.values())):
            d._return()
            d._state = _RETURNED
        self._unacked.clear()
        for q in list(self._exclusive.values()):
            broker._delete_queue(q)
        return defer.succeed(None)

    def _queue(self, name: str) -> _Queue:
        """The queue C{name}, if it exists and this connection may use it."""
        q = self._broker._queues.get(name)
        if q is None:
            raise NoSuchQueueError(f"NOT_FOUND - no queue '{name}'")
        if q.owner is not None and q.owner is not self:
            raise _locked(name)
        return q

    def _exchange(self, name: str) -> _Exchange:
        ex = self._broker._exchanges.get(name)
        if ex is None:
            raise NoSuchExchangeError(f"NOT_FOUND - no exchange '{name}'")
        return ex

    @_operation
    def declare_exchange(self, name: str, type: str = "topic", auto_delete: bool = False) -> None:
        if type not in EXCHANGE_TYPES:
            raise BrokerError(f"COMMAND_INVALID - unknown exchange type '{type}'")
        if not name:
            raise BrokerError("ACCESS_REFUSED - the default exchange cannot be declared")
        ex = self._broker._exchanges.get(name)
        if ex is None:
            self._broker._exchanges[name] = _Exchange(name, type, auto_delete)
        elif ex.type != type or ex.auto_delete != auto_delete:
            raise _inequivalent("exchange", name)

    @_operation
    def delete_exchange(self, name: str) -> None:
        ex = self._broker._exchanges.pop(name, None)
        if ex is not None:
            for queue, key in ex.bindings():
                self._broker._queues[queue].bindings.discard((name, key))

    @_operation
    def declare_queue(
        self,
        name: str = "",
        exclusive: bool = False,
        auto_delete: bool = False,
        durable: bool = False,
    ) -> str:
        broker = self._broker
        if not name:
            name = f"amq.gen-{uuid4().hex}"
        owner = self if exclusive else None
        q = broker._queues.get(name)
        if q is None:
            q = broker._queues[name] = _Queue(name, owner, auto_delete, durable)
            if exclusive:
                self._exclusive[name] = q
        elif q.owner is not owner:
            raise _locked(name)
        elif q.auto_delete != auto_delete or q.durable != durable:
            raise _inequivalent("queue", name)
        return name

    @_operation
    def delete_queue(self, name: str) -> None:
        if name in self._broker._queues:
            self._broker._delete_queue(self._queue(name))

    @_operation
    def exchange_exists(self, name: str) -> bool:
        return name in self._broker._exchanges

    @_operation
    def queue_exists(self, name: str) -> bool:
        return name in self._broker._queues

    @_operation
    def bind_queue(self, queue: str, exchange: str, binding_key: str) -> None:
        q = self._queue(queue)
        ex = self._exchange(exchange)
        if (exchange, binding_key) not in q.bindings:
            q.bindings.add((exchange, binding_key))
            ex.bind(queue, binding_key)

    @_operation
    def unbind_queue(self, queue: str, exchange: str, binding_key: str) -> None:
        q = self._queue(queue)
        ex = self._exchange(exchange)
        if (exchange, binding_key) in q.bindings:
            q.bindings.discard((exchange, binding_key))
            self._broker._unbind(ex, queue, binding_key)

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any] | None = None,
        mandatory: bool = False,
        confirm: bool = False,
        report_returns: bool = False,
    ) -> defer.Deferred[None]:
        # The hot path: written out rather than wrapped in _operation.
        if self._state != _OPEN:
            return defer.fail(ConnectionClosedError(f"{self.name} is {self._state}"))
        if type(body) is not bytes:
            if not isinstance(body, bytearray | memoryview):
                return defer.fail(TypeError(f"body must be bytes, not {type(body).__name__}"))
            body = bytes(body)
        broker = self._broker
        queues = broker._queues
        if exchange:
            ex = broker._exchanges.get(exchange)
            if ex is None:
                return defer.fail(NoSuchExchangeError(f"NOT_FOUND - no exchange '{exchange}'"))
            names = ex.route(routing_key)
        else:  # the default exchange routes to the queue named by the key
            names = (routing_key,) if routing_key in queues else ()
        headers = dict(headers) if headers else None  # the publisher may reuse its dict
        routed = False
        for name in names:
            if routed and headers:
                headers = dict(headers)  # each queue's copy is its own
            q = queues[name]
            q.messages.append(_Delivery(q, exchange, routing_key, body, headers, False))
            if q.consumers and not q.scheduled:
                broker._schedule(q)
            routed = True
        if mandatory and not routed:
            if report_returns:  # later, as a broker's basic.return would come
                self._broker._reactor.callLater(0, self._returned, exchange, routing_key, body)
                return defer.succeed(None)
            return defer.fail(
                UnroutableError(f"NO_ROUTE - {exchange!r} has no queue for {routing_key!r}")
            )
        return defer.succeed(None)

    def on_returned(self, callback: Callable[[str, str, bytes], None]) -> None:
        """Call C{callback(exchange, routing_key, body)} for each unroutable report_returns publish."""
        self._returned_callbacks.append(callback)

    def _returned(self, exchange: str, routing_key: str, body: bytes) -> None:
        for callback in list(self._returned_callbacks):
            try:
                callback(exchange, routing_key, body)
            except Exception:
                _log.failure("on_returned callback raised")

    @_operation
    def consume(
        self,
        queue: str,
        on_delivery: Callable[[IDelivery], None],
        prefetch: int = 0,
        auto_ack: bool = False,
    ) -> str:
        if prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, not {prefetch}")
        q = self._queue(queue)
        tag = f"amq.ctag-{self._serial}.{next(self._ctags)}"
        c = self._consumers[tag] = _Consumer(tag, q, self, on_delivery, prefetch, auto_ack)
        q.consumers.append(c)
        if q.messages and not q.scheduled:
            self._broker._schedule(q)
        return tag

    @_operation
    def cancel(self, consumer_tag: str) -> None:
        c = self._consumers.pop(consumer_tag, None)
        if c is not None:
            self._broker._remove_consumer(c)
