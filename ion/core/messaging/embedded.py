"""The embedded broker: AMQP 0-9-1 semantics in memory, inside one reactor.

An L{EmbeddedBroker} is the server (exchanges, queues, bindings); each
L{EmbeddedConnection} it hands out is one L{IBroker} client, so several
containers in one reactor can share a broker just as they would share RabbitMQ.

Exchanges and their routing are in L{ion.core.messaging.embedded_routing};
queues, consumers, deliveries and the batched delivery pump in
L{ion.core.messaging.embedded_queue}.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
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
from ion.core.messaging.broker import (
    EXCHANGE_TYPES,
    SHORT_ENOUGH,
    IBroker,
    IDelivery,
    declared_name_error,
    prefetch_error,
    queue_type_error,
    short_string_error,
)
from ion.core.messaging.embedded_queue import Consumer, Delivery, DeliveryPump, Queue
from ion.core.messaging.embedded_routing import Exchange
from ion.core.messaging.headers import to_wire_headers

__all__ = ["EmbeddedBroker", "EmbeddedConnection"]

_log = Logger()

_NEW, _OPEN, _CLOSED = "new", "open", "closed"

EVENT_EXCHANGE = "amq.rabbitmq.event"  # RabbitMQ's, of its event exchange plugin


class EmbeddedBroker:
    """The in-memory server: exchanges, queues and bindings shared by its connections.

    @param reactor: an C{IReactorTime} (a C{task.Clock} in unit tests).
    @param max_batch: most deliveries per reactor turn before yielding to it.
    @param presence_events: keep the topic exchange C{amq.rabbitmq.event} and
        publish C{queue.deleted} and C{connection.closed} there, as RabbitMQ
        does with its C{rabbitmq_event_exchange} plugin (headers C{name} and
        C{vhost} C{/}).
    """

    def __init__(
        self, reactor: IReactorTime, max_batch: int = 1000, presence_events: bool = True
    ) -> None:
        self._reactor: Any = reactor  # an IReactorTime (mypy reads zope methods as unbound)
        self._pump = DeliveryPump(reactor, max_batch)
        self._exchanges: dict[str, Exchange] = {}
        self._queues: dict[str, Queue] = {}
        self._serial = itertools.count(1)
        self._events: Exchange | None = None
        if presence_events:
            self._events = self._exchanges[EVENT_EXCHANGE] = Exchange(
                EVENT_EXCHANGE, "topic", False
            )

    def _notify(self, key: str, name: str) -> None:
        """Publish presence notice C{key} about C{name}, if anyone listens."""
        ex = self._events
        if ex is None or not ex.bindings():
            return
        for queue in ex.route(key):
            q = self._queues[queue]
            q.put(Delivery(q, EVENT_EXCHANGE, key, b"", {"name": name, "vhost": "/"}, False))
            if q.consumers and not q.scheduled:
                self._pump.schedule(q)

    def connection(self) -> EmbeddedConnection:
        """A new, not yet connected, client connection to this broker."""
        return EmbeddedConnection(self, next(self._serial))

    def queue_names(self) -> list[str]:
        """The names of all queues, for inspection."""
        return list(self._queues)

    def exchange_names(self) -> list[str]:
        """The names of the exchanges clients declared, for inspection."""
        return [name for name in self._exchanges if name != EVENT_EXCHANGE]

    def message_count(self, queue: str) -> int:
        """Messages ready in C{queue} (not counting unacked deliveries)."""
        return len(self._queues[queue].messages)

    def consumer_count(self, queue: str) -> int:
        """Consumers of C{queue}."""
        return len(self._queues[queue].consumers)

    def _remove_consumer(self, c: Consumer) -> None:
        q = c.queue
        if q.deleted:
            return
        q.consumers.remove(c)
        if q.auto_delete and not q.consumers:
            self._delete_queue(q)

    def _unbind(self, ex: Exchange, queue: str, key: str) -> None:
        ex.unbind(queue, key)
        if ex.auto_delete and not ex.bindings():
            del self._exchanges[ex.name]

    def _delete_queue(self, q: Queue, by: EmbeddedConnection | None = None) -> None:
        """Delete C{q}; consumers of other connections than C{by} (someone else
        deleted it) are told through their connection's on_consumer_failed:
        nothing declares a queue again here, as the AMQP connection does."""
        for c in q.consumers:
            if by is not None and c.conn is not by:
                error = NoSuchQueueError(f"NOT_FOUND - queue '{q.name}' was deleted")
                self._reactor.callLater(0, c.conn._consumer_failed, c.tag, q.name, error)
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
        self._notify("queue.deleted", q.name)


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
        self._pump = broker._pump  # held here too: publish and ack reach it per message
        self._serial = serial
        self._state = _NEW
        self._consumers: dict[str, Consumer] = {}
        self._unacked: dict[int, Delivery] = {}  # by delivery tag, in delivery order
        self._exclusive: dict[str, Queue] = {}
        self._tags = itertools.count(1)
        self._ctags = itertools.count(1)
        self._returned_callbacks: list[Callable[[str, str, bytes], None]] = []
        self._failed_callbacks: list[Callable[[str, str, Exception], None]] = []

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

    def restoring(self, queue: str) -> bool:
        """Never: a queue another connection deletes fails its consumers at once."""
        return False

    def on_consumer_failed(self, callback: Callable[[str, str, Exception], None]) -> None:
        """Call C{callback(consumer_tag, queue, error)} for a consumer whose queue
        another connection deleted."""
        self._failed_callbacks.append(callback)

    def _consumer_failed(self, tag: str, queue: str, error: Exception) -> None:
        for callback in list(self._failed_callbacks):
            try:
                callback(tag, queue, error)
            except Exception:
                _log.failure("on_consumer_failed callback raised")

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
            d._revoke()
        self._unacked.clear()
        for q in list(self._exclusive.values()):
            broker._delete_queue(q)
        broker._notify("connection.closed", self.name)
        return defer.succeed(None)

    def _queue(self, name: str) -> Queue:
        """The queue C{name}, if it exists and this connection may use it."""
        q = self._broker._queues.get(name)
        if q is None:
            raise NoSuchQueueError(f"NOT_FOUND - no queue '{name}'")
        if q.owner is not None and q.owner is not self:
            raise _locked(name)
        return q

    def _exchange(self, name: str) -> Exchange:
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
        if error := declared_name_error(name, "exchange"):
            raise error
        ex = self._broker._exchanges.get(name)
        if ex is None:
            self._broker._exchanges[name] = Exchange(name, type, auto_delete)
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
        queue_type: str = "classic",
    ) -> str:
        broker = self._broker
        if not name:
            name = f"amq.gen-{uuid4().hex}"
        elif error := declared_name_error(name, "queue"):
            raise error
        if error := queue_type_error(name, queue_type, exclusive, auto_delete, durable):
            raise error
        owner = self if exclusive else None
        q = broker._queues.get(name)
        if q is None:
            # One node: a quorum queue behaves as a durable classic one; its type
            # is kept so that declaring it as the other one fails as on RabbitMQ.
            q = broker._queues[name] = Queue(name, owner, auto_delete, durable, queue_type)
            if exclusive:
                self._exclusive[name] = q
        elif q.owner is not owner:
            raise _locked(name)
        elif q.queue_type != queue_type:
            raise PreconditionFailedError(
                f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue '{name}': "
                f"received '{queue_type}' but current is '{q.queue_type}'"
            )
        elif q.auto_delete != auto_delete or q.durable != durable:
            raise _inequivalent("queue", name)
        return name

    @_operation
    def delete_queue(self, name: str) -> None:
        if name in self._broker._queues:
            self._broker._delete_queue(self._queue(name), by=self)

    @_operation
    def exchange_exists(self, name: str) -> bool:
        return not name or name in self._broker._exchanges

    @_operation
    def queue_exists(self, name: str) -> bool:
        return name in self._broker._queues

    @_operation
    def queue_consumers(self, name: str) -> int:
        q = self._broker._queues.get(name)
        if q is None:
            return 0
        if q.owner is not None and q.owner is not self:
            raise _locked(name)
        return len(q.consumers)

    @_operation
    def queue_info(self, name: str) -> tuple[int, int] | None:
        q = self._broker._queues.get(name)
        if q is None:
            return None
        if q.owner is not None and q.owner is not self:
            raise _locked(name)
        return len(q.messages), len(q.consumers)

    @_operation
    def bind_queue(self, queue: str, exchange: str, binding_key: str) -> None:
        if error := short_string_error(binding_key, "binding key"):
            raise error
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
        expiration: int | None = None,
    ) -> defer.Deferred[None]:
        # The hot path: written out rather than wrapped in _operation.
        if self._state != _OPEN:
            return defer.fail(ConnectionClosedError(f"{self.name} is {self._state}"))
        if type(routing_key) is not str or len(routing_key) > SHORT_ENOUGH:  # the usual: pass
            if error := short_string_error(routing_key, "routing key"):
                return defer.fail(error)
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
        if headers:  # AMQP's rules, and a copy: the publisher may reuse its dict
            try:
                headers = to_wire_headers(headers)
            except TypeError:
                return defer.fail()
        else:
            headers = None
        routed = False
        expires = None if expiration is None else broker._reactor.seconds() + expiration / 1000
        for name in names:  # queues may share headers: each consumer gets its own copy
            q = queues[name]
            q.put(Delivery(q, exchange, routing_key, body, headers, False, expires))
            if q.consumers and not q.scheduled:
                self._pump.schedule(q)
            routed = True
        if mandatory and not routed:
            if report_returns:  # later, as a broker's basic.return would come
                self._broker._reactor.callLater(0, self._returned, exchange, routing_key, body)
                return defer.succeed(None)
            return defer.fail(
                UnroutableError(f"NO_ROUTE - {exchange!r} has no queue for {routing_key!r}")
            )
        return defer.succeed(None)

    def unheard(self, exchange: str, routing_key: str) -> bool:
        """Whether a message published now to C{exchange} with C{routing_key} would
        reach no queue (and no error): the publisher may then skip making it."""
        if self._state != _OPEN:
            return False  # publishing says why it cannot
        ex = self._broker._exchanges.get(exchange)
        return ex is not None and not ex.route(routing_key)

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
        if error := prefetch_error(prefetch):
            raise error
        q = self._queue(queue)
        tag = f"amq.ctag-{self._serial}.{next(self._ctags)}"
        c = self._consumers[tag] = Consumer(tag, q, self, on_delivery, prefetch, auto_ack)
        q.consumers.append(c)
        if q.messages and not q.scheduled:
            self._pump.schedule(q)
        return tag

    def cancel(self, consumer_tag: str) -> defer.Deferred[None]:
        # Not an _operation: a consumer went with its closed connection, and
        # cancelling it then is done (as on RabbitMQ).
        c = self._consumers.pop(consumer_tag, None)
        if c is not None:
            self._broker._remove_consumer(c)
        return defer.succeed(None)
