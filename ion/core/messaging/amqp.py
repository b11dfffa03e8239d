"""The RabbitMQ broker: L{IBroker} over AMQP 0-9-1 with pika's Twisted adapter.

One L{AmqpBroker} is one AMQP connection with three kinds of long-lived channel:

- a I{control} channel for declarations, bindings, deletions and passive checks,
  used one operation at a time (L{ion.core.messaging.amqp_topology}, which also
  records what was declared);
- two I{publish} channels, one in confirm mode: each mandatory or confirmed
  publish gets a Deferred that fires on the broker's ack (or fails with
  L{UnroutableError} when the broker returned it), pipelined; other publishes
  fire once written (L{ion.core.messaging.amqp_publish});
- a I{consumer} channel shared by every consumer, acks and rejects on it
  (L{ion.core.messaging.amqp_consume}).

This module holds the L{IBroker} methods (which hand their work to those
three) and the fast path of L{AmqpBroker.publish}; the connection's life cycle
is L{ion.core.messaging.amqp_link}.

The owner learns of a lost connection through L{AmqpBroker.on_connection_lost}.
With C{reconnect} (the default), a Twisted C{ClientService} reconnects with
backoff, declares again the exchanges, queues and bindings this connection
declared, resumes its consumers (same tags) and calls the L{on_reconnected}
callbacks. Until then, every operation fails promptly with L{ConnectionLostError}.
Server-named queues cannot be declared again under their name: they, and their
consumers, are gone after a reconnect (ion names its queues itself). A queue
that cannot be declared or consumed again, or that someone else deleted, is
retried (L{ion.core.messaging.amqp_restore}); one given up is reported to the
L{on_consumer_failed} callbacks. While the broker blocks the connection,
publishes wait in L{ion.core.messaging.amqp_publish}, bounded.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import pika.exceptions
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ion.core.exception import BrokerError, ConnectionLostError
from ion.core.messaging.amqp_channel import Channel, Consumer
from ion.core.messaging.amqp_connection import (
    DEFAULT_URL,
    AmqpParameters,
    connection_parameters,
    default_endpoint,
    describe,
    map_error,
    parse_amqp_url,
)
from ion.core.messaging.amqp_consume import ConsumerChannel
from ion.core.messaging.amqp_link import Link
from ion.core.messaging.amqp_nodes import NodeRotation
from ion.core.messaging.amqp_publish import PublishPath
from ion.core.messaging.amqp_restore import Restorer
from ion.core.messaging.amqp_topology import Topology
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
from ion.core.messaging.headers import to_wire_headers

__all__ = ["AmqpBroker", "AmqpParameters", "parse_amqp_url"]

_log = Logger()
_serial = itertools.count(1)

# Link states in which operations are taken: open, and recovering, once the
# channels are open and resumed consumers' handlers may already be at work.
_TAKING = frozenset({"open", "recovering"})


@implementer(IBroker)
class AmqpBroker:
    """A connection to RabbitMQ; see L{IBroker} and the module docstring.

    @param reactor: the reactor (pika timers run on it too).
    @param url: an C{amqp://} or C{amqps://} URL, or L{AmqpParameters}, or several
        (a sequence, or URLs comma-separated): the nodes of one cluster, tried in
        turn (L{NodeRotation}).
    @param shuffle: try the nodes in an order of this connection's own.
    @param heartbeat: seconds; a dead peer is noticed within about twice this plus 10 s.
    @param endpoint_factory: C{(reactor, params) -> IStreamClientEndpoint}, to
        connect through something else (a test's proxy); default: the URL's host.
    @param reconnect: reconnect after a loss (with backoff up to C{max_retry_delay}).
    @param handshake_timeout: seconds a new connection may take to open (handshake,
        channels, topology) and a close to be answered, before it is dropped.
    @param max_unconfirmed: publishes awaiting the broker's confirm, or held while it
        blocks the connection, at most; past it a publish fails with
        L{ion.core.exception.BrokerBusyError}.
    @param restore_timeout: seconds a queue that cannot be declared or consumed
        again (after a reconnect, or deleted by someone else) is tried again
        before its consumers are given up (L{on_consumer_failed}).
    """

    def __init__(
        self,
        reactor: Any,
        url: str | AmqpParameters | Sequence[str | AmqpParameters] = DEFAULT_URL,
        heartbeat: int = 10,
        endpoint_factory: Callable[[Any, AmqpParameters], Any] | None = None,
        reconnect: bool = True,
        max_retry_delay: float = 10.0,
        name: str | None = None,
        handshake_timeout: float = 10.0,
        restore_timeout: float = 60.0,
        max_unconfirmed: int = 1000,
        shuffle: bool = True,
        user_id: str | None = None,
    ) -> None:
        if isinstance(url, str):
            urls: list[str | AmqpParameters] = [u.strip() for u in url.split(",")]
        else:
            urls = [url] if isinstance(url, AmqpParameters) else list(url)
        addresses = [parse_amqp_url(u) if isinstance(u, str) else u for u in urls]
        self.name = name or f"amqp-{next(_serial)}"
        self._reactor = reactor
        # Every publish carries the login as its user_id, which the broker checks
        # (406 for another), so a receiver knows which broker user sent it.
        self._user_id = user_id or addresses[0].username
        self._topology = Topology(self._open_channel, self.name)
        self._pub = PublishPath(self, self._topology, max_unconfirmed)
        self._sub = ConsumerChannel(self, self._topology)
        nodes = NodeRotation(reactor, addresses, endpoint_factory or default_endpoint, shuffle)
        self._link = Link(
            reactor,
            nodes,
            self.name,
            connection_parameters(addresses[0], heartbeat, self.name),
            open_channels=self._open_channels,
            replay=self._replay,
            before_close=self._sub.flush_acks,  # what was handled must not come back
            reconnect=reconnect,
            max_retry_delay=max_retry_delay,
            handshake_timeout=handshake_timeout,
        )
        self._core = self._link.core  # its state, read on every operation
        self._failed_callbacks: list[Callable[[str, str, BrokerError], None]] = []
        self._replayed = True  # (a first connection has nothing to replay)
        self._restorer = Restorer(
            reactor,
            self._topology,
            self._sub.consume,
            self.name,
            timeout=restore_timeout,
            max_delay=max_retry_delay,
            on_restored=self._restored,
            on_given_up=self._given_up,
        )
        self._link.on_connection_lost(self._lost)
        self._ctags = itertools.count(1)
        self._returned_callbacks: list[Callable[[str, str, bytes], None]] = []

    def __repr__(self) -> str:
        return f"<AmqpBroker {self.name} {self.params.url} {self._core.state}>"

    @property
    def user_id(self) -> str:
        """The C{user_id} property of every publish (the login, unless given)."""
        return self._user_id

    @user_id.setter
    def user_id(self, value: str) -> None:
        self._user_id = value
        for publisher in self._pub.publishers.values():
            if publisher is not None:
                publisher.set_user_id(value)

    @property
    def params(self) -> AmqpParameters:
        """The node connected to, or last tried."""
        return self._link.params

    @property
    def addresses(self) -> tuple[AmqpParameters, ...]:
        """The nodes this connection may use, in the order it tries them."""
        return self._link.nodes.addresses

    @property
    def _consumers(self) -> dict[str, Consumer]:
        """The consumers to resume after a reconnect, by tag (tests read it too)."""
        return self._topology.consumers

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether operations are accepted now."""
        return self._core.state == "open"

    def on_returned(self, callback: Callable[[str, str, bytes], None]) -> None:
        """Call C{callback(exchange, routing_key, body)} for each unroutable report_returns publish."""
        self._returned_callbacks.append(callback)

    def _returned(self, _raw: Any, method: Any, _props: Any, body: bytes) -> None:
        for callback in list(self._returned_callbacks):
            try:
                callback(method.exchange, method.routing_key, body)
            except Exception:
                _log.failure("on_returned callback raised")

    def on_connection_lost(self, callback: Callable[[ConnectionLostError], None]) -> None:
        """Call C{callback(error)} (soon after, from the reactor) each time the connection is lost."""
        self._link.on_connection_lost(callback)

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        """Call C{callback()} each time a reconnect has restored topology and consumers
        (all of them: not while a queue is still being tried again)."""
        self._link.on_reconnected(callback)

    def on_consumer_failed(self, callback: Callable[[str, str, BrokerError], None]) -> None:
        """Call C{callback(consumer_tag, queue, error)} for each consumer given up:
        its queue could not be declared or consumed again within C{restore_timeout}."""
        self._failed_callbacks.append(callback)

    async def _replay(self) -> bool:
        """Declare the topology again on a new connection; whether all of it is back."""
        broken = await self._topology.replay(self._sub.consume)
        self._replayed = True  # what is not back now, the restorer knows (restoring)
        if not broken:
            return True
        self._restorer.add(broken)
        _log.warn("{name}: reconnected, but not restored: {what}; trying again for up to {t:g}s",
                  name=self.name, what="; ".join(f"{q} ({e})" for q, e in broken.items()),
                  t=self._restorer.timeout)  # fmt: skip
        return False

    def _lost(self, error: ConnectionLostError) -> None:
        self._restorer.stop()
        self._pub.drop_held(error)

    def _restored(self) -> None:
        if self._link.state in _TAKING:
            self._link.restored()

    def _given_up(self, queue: str, consumers: list[Consumer], error: BrokerError) -> None:
        for c in consumers:
            for callback in list(self._failed_callbacks):
                try:
                    callback(c.tag, queue, error)
                except Exception:
                    _log.failure("on_consumer_failed callback raised")

    def restoring(self, queue: str) -> bool:
        """Whether C{queue} (broken by a reconnect or a deletion) is not back yet:
        the restorer's, or any while a reconnect's replay is under way (publishing
        opens before its consumers are resumed, and one may yet fail)."""
        if self._core.state == "recovering" and not self._replayed:
            return True
        return queue in self._restorer.broken

    def queue_lost(self, queue: str, why: str) -> None:
        """The broker cancelled our consumers of C{queue} (deleted, say): restore it."""
        self._restorer.lost(queue, BrokerError(why))

    def connect(self) -> defer.Deferred[None]:
        return self._link.connect()

    def close(self) -> defer.Deferred[None]:
        self._restorer.stop()
        return self._link.close()

    async def _open_channels(self) -> None:
        """Open the channels of a new connection (see L{Link})."""
        impl = self._link.proto._impl
        impl.add_on_connection_blocked_callback(self._blocked)
        impl.add_on_connection_unblocked_callback(self._unblocked)
        self._sub.forget()
        self._pub.forget_publishers()
        self._pub.drop_held(self._gone())  # held on a connection that went while recovering
        self._restorer.stop()
        self._replayed = False
        await self._topology.open_control()
        await self._pub.open_publishers()
        await self._sub.open()

    def _redeclared(self) -> bool:
        """Recovering with every queue declared again: resumed consumers' handlers
        may answer (a publish before then could go to a queue not yet back)."""
        return self._core.state == "recovering" and self._topology.redeclared

    def _blocked(self, _connection: Any, frame: Any) -> None:
        # RabbitMQ's resource alarm: it reads nothing more from this connection, so
        # publishes wait here (see PublishPath.hold); their deadlines still apply.
        reason = getattr(frame.method, "reason", None) or "?"
        self._pub.blocked = reason
        _log.warn("{name}: the broker blocks this connection ({reason}); publishing waits "
                  "until its resource alarm clears",
                  name=self.name, reason=reason)  # fmt: skip

    def _unblocked(self, _connection: Any, _frame: Any) -> None:
        _log.info("{name}: the broker unblocked this connection", name=self.name)
        self._pub.release()

    def _gone(self, what: str = "") -> BrokerError:
        return self._link.gone(what)

    def _channel_error(self, reason: BaseException) -> BaseException:
        """What calls pending on a channel fail with when it closes for C{reason}."""
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            return map_error(reason)
        return self._gone()

    def _open_channel(self) -> defer.Deferred[Channel]:
        proto = self._link.proto
        if proto is None:
            return defer.fail(self._gone())

        def opened(chan: Channel) -> Channel:
            chan.fail_with = self._channel_error
            return chan

        def failed(failure: Failure) -> Failure:
            if failure.check(BrokerError) and self._link.proto is proto:
                return failure
            return Failure(self._gone(describe(failure.value)))

        # pika refuses a channel synchronously on a closing connection.
        return defer.maybeDeferred(Channel.open, proto, self._reactor).addCallbacks(opened, failed)

    # --- control operations (see Topology) ----------------------------------------------------

    def _refused(self) -> defer.Deferred[Any] | None:
        return None if self._core.state in _TAKING else defer.fail(self._gone())

    def declare_exchange(
        self, name: str, type: str = "topic", auto_delete: bool = False
    ) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused
        if type not in EXCHANGE_TYPES:
            return defer.fail(BrokerError(f"COMMAND_INVALID - unknown exchange type '{type}'"))
        if not name:
            return defer.fail(
                BrokerError("ACCESS_REFUSED - the default exchange cannot be declared")
            )
        if error := declared_name_error(name, "exchange"):
            return defer.fail(error)
        return self._topology.declare_exchange(name, type, auto_delete)

    def delete_exchange(self, name: str) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused
        return self._topology.delete_exchange(name)

    def declare_queue(
        self,
        name: str = "",
        exclusive: bool = False,
        auto_delete: bool = False,
        durable: bool = False,
        queue_type: str = "classic",
    ) -> defer.Deferred[str]:
        if refused := self._refused():
            return refused
        if name and (error := declared_name_error(name, "queue")):
            return defer.fail(error)
        if error := queue_type_error(name, queue_type, exclusive, auto_delete, durable):
            return defer.fail(error)
        return self._topology.declare_queue(name, exclusive, auto_delete, durable, queue_type)

    def delete_queue(self, name: str) -> defer.Deferred[None]:
        if refused := self._refused():
            self._topology.forget_queue(name)  # so a reconnect does not declare it again
            return refused
        return self._topology.delete_queue(name)

    def exchange_exists(self, name: str) -> defer.Deferred[bool]:
        if refused := self._refused():
            return refused
        if not name:  # the default exchange, which RabbitMQ will not check passively
            return defer.succeed(True)
        return self._topology.exchange_exists(name)

    def queue_exists(self, name: str) -> defer.Deferred[bool]:
        if refused := self._refused():
            return refused
        return self._topology.queue_exists(name)

    def queue_consumers(self, name: str) -> defer.Deferred[int]:
        if refused := self._refused():
            return refused
        return self._topology.queue_consumers(name)

    def queue_info(self, name: str) -> defer.Deferred[tuple[int, int] | None]:
        if refused := self._refused():
            return refused
        return self._topology.queue_info(name)

    def bind_queue(self, queue: str, exchange: str, binding_key: str) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused
        if error := short_string_error(binding_key, "binding key"):
            return defer.fail(error)
        return self._topology.bind(queue, exchange, binding_key)

    def unbind_queue(self, queue: str, exchange: str, binding_key: str) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused
        return self._topology.unbind(queue, exchange, binding_key)

    # --- publishing ---------------------------------------------------------------------------

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
        if self._core.state != "open" and not self._redeclared():
            return defer.fail(self._gone())
        if type(routing_key) is not str or len(routing_key) > SHORT_ENOUGH:  # the usual: pass
            if error := short_string_error(routing_key, "routing key"):
                return defer.fail(error)
        if type(body) is not bytes:
            if not isinstance(body, bytearray | memoryview):
                return defer.fail(TypeError(f"body must be bytes, not {type(body).__name__}"))
            body = bytes(body)
        if headers:
            try:
                headers = to_wire_headers(headers)
            except TypeError:
                return defer.fail()
        return self._send(
            exchange, routing_key, body, headers, mandatory, confirm, report_returns, expiration
        )

    def _send(
        self, exchange, routing_key, body, headers, mandatory, confirm, report_returns, expiration
    ):
        """L{publish}, its arguments checked (and held while the broker blocks us)."""
        pub = self._pub
        if pub.blocked is not None:
            if self._core.state != "open" and not self._redeclared():
                return defer.fail(self._gone())
            return pub.hold(
                (
                    exchange,
                    routing_key,
                    body,
                    headers,
                    mandatory,
                    confirm,
                    report_returns,
                    expiration,
                )
            )
        if mandatory and report_returns and not confirm:
            # Sent mandatory on the plain channel: a return goes to on_returned.
            args = (exchange, routing_key, body, headers or None, True, False, expiration)
            publisher = pub.publishers[False]
            if (
                publisher is not None
                and publisher.chan.is_open
                and (not exchange or exchange in self._topology.known_exchanges)
            ):
                try:
                    return publisher.publish(*args)
                except Exception:
                    return defer.fail()
        args = (exchange, routing_key, body, headers or None, mandatory, confirm, expiration)
        if exchange and exchange not in self._topology.known_exchanges:
            return pub.after_exchange_check(exchange, args)
        publisher = pub.publishers[bool(args[4] or args[5])]
        if publisher is not None and publisher.chan.is_open:
            try:
                return publisher.publish(*args)
            except Exception:
                return defer.fail()
        return pub.after_publisher_opens(args)

    # --- consuming ----------------------------------------------------------------------------

    def consume(
        self,
        queue: str,
        on_delivery: Callable[[IDelivery], None],
        prefetch: int = 0,
        auto_ack: bool = False,
    ) -> defer.Deferred[str]:
        if refused := self._refused():
            return refused
        if error := prefetch_error(prefetch):
            return defer.fail(error)
        c = Consumer(
            f"ion.ctag-{self.name}.{next(self._ctags)}", queue, on_delivery, prefetch, auto_ack
        )
        return defer.Deferred.fromCoroutine(self._sub.consume(c))

    def cancel(self, consumer_tag: str) -> defer.Deferred[None]:
        # Forget it first, whatever the connection's state: a consumer cancelled
        # while the link is down must not come back when a reconnect resumes the rest.
        c = self._topology.drop_consumer(consumer_tag)
        if c is None:
            return defer.succeed(None)
        if self._core.state not in _TAKING:
            return defer.succeed(None)  # the broker dropped it with the connection
        chan = c.chan
        if chan is None or not chan.is_open or consumer_tag not in chan.raw.consumer_tags:
            return defer.succeed(None)
        return chan.rpc("basic_cancel", consumer_tag=consumer_tag).addCallback(lambda _: None)
