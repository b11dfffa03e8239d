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

This module holds the connection's life cycle, the L{IBroker} methods (which
hand their work to those three) and the fast path of L{AmqpBroker.publish}.

The owner learns of a lost connection through L{AmqpBroker.on_connection_lost}.
With C{reconnect} (the default), a Twisted C{ClientService} reconnects with
backoff, declares again the exchanges, queues and bindings this connection
declared, resumes its consumers (same tags) and calls the L{on_reconnected}
callbacks. Until then, every operation fails promptly with L{ConnectionLostError}.
Server-named queues cannot be declared again under their name: they, and their
consumers, are gone after a reconnect (ion names its queues itself).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pika.exceptions
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, task
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ion.core.exception import (
    BrokerError,
    BrokerRefusedError,
    ConnectionClosedError,
    ConnectionLostError,
)
from ion.core.messaging.amqp_channel import Channel, Consumer
from ion.core.messaging.amqp_connection import (
    DEFAULT_URL,
    AmqpParameters,
    connection_parameters,
    default_endpoint,
    describe,
    is_refusal,
    map_error,
    parse_amqp_url,
    protocol_class,
    to_wire_headers,
)
from ion.core.messaging.amqp_consume import ConsumerChannel
from ion.core.messaging.amqp_publish import PublishPath
from ion.core.messaging.amqp_topology import Topology
from ion.core.messaging.broker import EXCHANGE_TYPES, IBroker, IDelivery

__all__ = ["AmqpBroker", "AmqpParameters", "parse_amqp_url"]

_log = Logger()
_serial = itertools.count(1)

_NEW, _CONNECTING, _OPEN, _LOST, _RECOVERING, _CLOSING, _CLOSED = (
    "new", "connecting", "open", "lost", "recovering", "closing", "closed",
)  # fmt: skip


class _Factory(protocol.Factory):
    noisy = False

    def __init__(self, broker: AmqpBroker) -> None:
        self.broker = broker

    def buildProtocol(self, addr: Any) -> Any:
        b = self.broker
        proto = protocol_class()(b._pika_params, custom_reactor=b._reactor)
        proto.factory = self
        proto.on_lost = b._protocol_lost
        return proto


@implementer(IBroker)
class AmqpBroker:
    """A connection to RabbitMQ; see L{IBroker} and the module docstring.

    @param reactor: the reactor (pika timers run on it too).
    @param url: an C{amqp://} or C{amqps://} URL, or L{AmqpParameters}.
    @param heartbeat: seconds; a dead peer is noticed within about twice this plus 10 s.
    @param endpoint_factory: C{(reactor, params) -> IStreamClientEndpoint}, to
        connect through something else (a test's proxy); default: the URL's host.
    @param reconnect: reconnect after a loss (with backoff up to C{max_retry_delay}).
    """

    def __init__(
        self,
        reactor: Any,
        url: str | AmqpParameters = DEFAULT_URL,
        heartbeat: int = 10,
        endpoint_factory: Callable[[Any, AmqpParameters], Any] | None = None,
        reconnect: bool = True,
        max_retry_delay: float = 10.0,
        name: str | None = None,
    ) -> None:
        self.params = parse_amqp_url(url) if isinstance(url, str) else url
        self.name = name or f"amqp-{next(_serial)}"
        self._reactor = reactor
        self._pika_params = connection_parameters(self.params, heartbeat, self.name)
        self._endpoint = (endpoint_factory or default_endpoint)(reactor, self.params)
        self._reconnect = reconnect
        self._max_retry_delay = max_retry_delay
        self._state = _NEW
        self._service: ClientService | None = None
        self._proto: Any = None
        self._error: BrokerError | None = None
        self._closing: defer.Deferred[None] | None = None
        self._generation = 0
        self._handshake_error: BaseException | None = None
        self._failed_handshakes = 0  # in a row: added to the service's count, for the backoff
        self._topology = Topology(self._open_channel, self.name)
        self._pub = PublishPath(self, self._topology)
        self._sub = ConsumerChannel(self, self._topology)
        self._ctags = itertools.count(1)
        self._lost_callbacks: list[Callable[[ConnectionLostError], None]] = []
        self._reconnected_callbacks: list[Callable[[], None]] = []
        self._returned_callbacks: list[Callable[[str, str, bytes], None]] = []

    def __repr__(self) -> str:
        return f"<AmqpBroker {self.name} {self.params.url} {self._state}>"

    @property
    def _consumers(self) -> dict[str, Consumer]:
        """The consumers to resume after a reconnect, by tag (tests read it too)."""
        return self._topology.consumers

    # --- life cycle ---------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Whether operations are accepted now."""
        return self._state == _OPEN

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
        self._lost_callbacks.append(callback)

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        """Call C{callback()} each time a reconnect has restored topology and consumers."""
        self._reconnected_callbacks.append(callback)

    def connect(self) -> defer.Deferred[None]:
        if self._state == _OPEN:
            return defer.succeed(None)
        if self._state != _NEW:
            return defer.fail(self._gone(f"cannot connect: {self._state}"))
        self._state = _CONNECTING
        self._failed_handshakes = 0
        policy = backoffPolicy(initialDelay=0.5, maxDelay=self._max_retry_delay, factor=2.0)
        self._service = ClientService(
            self._endpoint,
            _Factory(self),
            # A failed handshake is a connection made (which resets the service's
            # count) and lost (which counts one): the rest of the run counts here.
            retryPolicy=lambda failed: policy(failed + max(0, self._failed_handshakes - 1)),
            clock=self._reactor,
            prepareConnection=self._prepare,
        )
        self._service.startService()
        return defer.Deferred.fromCoroutine(self._first_connect())

    async def _first_connect(self) -> None:
        try:
            await self._service.whenConnected(failAfterFailures=1)  # type: ignore[union-attr]
            error = self._handshake_error
        except Exception as e:
            error = e
        if error is None:
            return
        if self._state in (_CLOSING, _CLOSED):
            raise ConnectionClosedError(f"{self.name} was closed while connecting") from None
        self._state = _NEW
        # Not from inside the ClientService's own transition (it refuses re-entry).
        await task.deferLater(self._reactor, 0, self._service.stopService)  # type: ignore[union-attr]
        kind = BrokerRefusedError if is_refusal(error) else BrokerError
        raise kind(f"cannot connect to {self.params.url}: {describe(error)}") from None

    async def _prepare(self, proxy: Any) -> None:
        """Called by the ClientService on each new TCP connection; it is ours once this returns.

        It never fails: Twisted's ClientService has no transition for a failed
        preparation whose connection is then lost (the usual case: a refused
        login, a TLS handshake failure). A failed handshake is kept in
        C{_handshake_error} and its connection aborted, so the service sees a
        connection that was made and lost, and retries (with backoff). Closed
        meanwhile, it never answers: the service then only waits for the loss.
        """
        proto = getattr(proxy, "_protocol", proxy)  # the ClientService hands us a proxy
        self._handshake_error = None
        try:
            await self._handshake(proto)
        except Exception as e:
            if self._proto is proto:
                self._proto = None
            proto.transport.abortConnection()
            if self._state in (_CLOSING, _CLOSED) or isinstance(e, defer.CancelledError):
                # Being stopped, the service waits (Disconnecting) for this
                # connection to go and has no transition for any answer from here.
                await defer.Deferred()  # never fires; dropped with the service
            self._handshake_error = proto.first_error or e
            self._failed_handshakes += 1
            self._state = _LOST if self._generation else _CONNECTING
            if self._generation:
                _log.warn(
                    "{name}: reconnecting to {url} failed: {error}",
                    name=self.name,
                    url=self.params.url,
                    error=describe(self._handshake_error),
                )
            return
        self._failed_handshakes = 0
        _log.info("{name} connected to {url}", name=self.name, url=self.params.url)
        if self._generation > 1:
            for callback in list(self._reconnected_callbacks):
                self._reactor.callLater(0, callback)

    async def _handshake(self, proto: Any) -> None:
        await proto.ready
        if self._state in (_CLOSING, _CLOSED):
            raise ConnectionClosedError(f"{self.name} is closed")
        self._proto = proto
        self._sub.forget()
        self._pub.forget_publishers()
        await self._topology.open_control()
        await self._pub.open_publishers()
        await self._sub.open()
        if self._generation:
            self._state = _RECOVERING
            await self._topology.replay(self._sub.consume)
        self._generation += 1
        self._state = _OPEN
        self._error = None

    def _protocol_lost(self, proto: Any, reason: Any) -> None:
        """The TCP connection of C{proto} ended; pika has not torn its channels down yet."""
        if proto is not self._proto:
            return
        self._proto = None
        if self._state in (_CLOSING, _CLOSED):
            return
        first = self._state == _OPEN
        self._state = _LOST
        self._error = ConnectionLostError(
            f"{self.name}: connection to {self.params.url} lost: {describe(proto.first_error)}"
        )
        if not self._reconnect:
            self._reactor.callLater(0, self._service.stopService)  # type: ignore[union-attr]
        if first:
            _log.warn("{error}", error=self._error)
            for callback in list(self._lost_callbacks):
                self._reactor.callLater(0, callback, self._error)

    def close(self) -> defer.Deferred[None]:
        if self._state == _CLOSED:
            return defer.succeed(None)
        if self._closing is None:
            self._closing = defer.Deferred.fromCoroutine(self._close())
        d: defer.Deferred[None] = defer.Deferred()
        self._closing.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    async def _close(self) -> None:
        self._state = _CLOSING
        proto = self._proto
        self._sub.flush_acks()  # what was handled must not come back to another consumer
        try:
            if proto is not None and proto.is_open:
                await proto.close()
        finally:
            if self._service is not None:
                await self._service.stopService()
            self._state = _CLOSED
            _log.info("{name} closed", name=self.name)

    def _gone(self, what: str = "") -> BrokerError:
        """The error for an operation refused in the current state."""
        suffix = f" ({what})" if what else ""
        if self._state in (_LOST, _RECOVERING):
            again = "; reconnecting" if self._reconnect else ""
            return ConnectionLostError(f"{self._error}{again}{suffix}")
        if self._state == _OPEN:  # a channel went away under an open connection
            return ConnectionLostError(f"{self.name}: channel closed{suffix}")
        return ConnectionClosedError(f"{self.name} is {self._state}{suffix}")

    def _channel_error(self, reason: BaseException) -> BaseException:
        """What calls pending on a channel fail with when it closes for C{reason}."""
        if isinstance(reason, pika.exceptions.ChannelClosedByBroker):
            return map_error(reason)
        return self._gone()

    def _open_channel(self) -> defer.Deferred[Channel]:
        proto = self._proto
        if proto is None:
            return defer.fail(self._gone())

        def opened(chan: Channel) -> Channel:
            chan.fail_with = self._channel_error
            return chan

        def failed(failure: Failure) -> Failure:
            if failure.check(BrokerError) and self._proto is proto:
                return failure
            return Failure(self._gone(describe(failure.value)))

        return Channel.open(proto, self._reactor).addCallbacks(opened, failed)

    # --- control operations (see Topology) ----------------------------------------------------

    def _refused(self) -> defer.Deferred[Any] | None:
        return None if self._state == _OPEN else defer.fail(self._gone())

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
    ) -> defer.Deferred[str]:
        if refused := self._refused():
            return refused
        return self._topology.declare_queue(name, exclusive, auto_delete, durable)

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

    def bind_queue(self, queue: str, exchange: str, binding_key: str) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused
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
    ) -> defer.Deferred[None]:
        if self._state != _OPEN:
            return defer.fail(self._gone())
        if type(body) is not bytes:
            if not isinstance(body, bytearray | memoryview):
                return defer.fail(TypeError(f"body must be bytes, not {type(body).__name__}"))
            body = bytes(body)
        if headers:
            try:
                headers = to_wire_headers(headers)
            except TypeError:
                return defer.fail()
        pub = self._pub
        if mandatory and report_returns and not confirm:
            # Sent mandatory on the plain channel: a return goes to on_returned.
            args = (exchange, routing_key, body, headers or None, True, False)
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
        args = (exchange, routing_key, body, headers or None, mandatory, confirm)
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
        if prefetch < 0:
            return defer.fail(ValueError(f"prefetch must be >= 0, not {prefetch}"))
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
        if self._state != _OPEN:
            return defer.succeed(None)  # the broker dropped it with the connection
        chan = c.chan
        if chan is None or not chan.is_open or consumer_tag not in chan.raw.consumer_tags:
            return defer.succeed(None)
        return chan.rpc("basic_cancel", consumer_tag=consumer_tag).addCallback(lambda _: None)
