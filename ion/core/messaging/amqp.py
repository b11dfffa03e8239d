"""The RabbitMQ broker: L{IBroker} over AMQP 0-9-1 with pika's Twisted adapter.

One L{AmqpBroker} is one AMQP connection with three kinds of long-lived channel:

- a I{control} channel for declarations, bindings, deletions and passive checks,
  used one operation at a time, so a refused declaration (which makes the broker
  close the channel) fails only its own call; the channel is reopened for the next;
- a I{publish} channel in confirm mode: each mandatory or confirmed publish gets
  a Deferred that fires on the broker's ack (or fails with L{UnroutableError} when
  the broker returned it), pipelined; other publishes fire once written;
- a I{consumer} channel shared by every consumer, with C{basic.qos} set (per
  consumer) right before each C{basic.consume}, acks and rejects on it. A queue is
  checked (passively, on the control channel) before it is consumed, so a missing
  or locked queue does not take the other consumers down with it.

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
from functools import partial
from typing import Any

import pika.exceptions
import pika.spec
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, task
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ion.core.exception import (
    BrokerError,
    ConnectionClosedError,
    ConnectionLostError,
    NoSuchQueueError,
    ResourceLockedError,
)
from ion.core.messaging.amqp_channel import Channel, Consumer, Delivery, Publisher
from ion.core.messaging.amqp_connection import (
    DEFAULT_URL,
    AmqpParameters,
    connection_parameters,
    default_endpoint,
    describe,
    from_wire_headers,
    map_error,
    parse_amqp_url,
    protocol_class,
    to_wire_headers,
)
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


def _first_error(failure: Failure) -> Failure:
    if isinstance(failure.value, defer.FirstError):
        return failure.value.subFailure
    return failure


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
        self._ctl: Channel | None = None
        self._ctl_tail: defer.Deferred[None] = defer.succeed(None)
        # Two publish channels: one in confirm mode for mandatory and confirmed
        # publishes, one plain for the rest (replies, events), so those cost the
        # broker no acks and the publisher no extra frames to read.
        self._publishers: dict[bool, Publisher | None] = {True: None, False: None}
        self._pub_waiting: dict[bool, list[tuple[tuple, defer.Deferred[None]]]] = {
            True: [],
            False: [],
        }
        self._sub: Channel | None = None
        self._sub_opening: defer.Deferred[Channel] | None = None
        self._known_exchanges: set[str] = set()
        self._checking: dict[str, list[tuple[tuple, defer.Deferred[None]]]] = {}
        # What this connection declared, to declare again after a reconnect.
        self._exchanges: dict[str, tuple[str, bool]] = {}
        self._queues: dict[str, tuple[bool, bool, bool]] = {}
        self._bindings: dict[tuple[str, str, str], None] = {}
        self._consumers: dict[str, Consumer] = {}
        self._ctags = itertools.count(1)
        self._lost_callbacks: list[Callable[[ConnectionLostError], None]] = []
        self._reconnected_callbacks: list[Callable[[], None]] = []
        self._returned_callbacks: list[Callable[[str, str, bytes], None]] = []

    def __repr__(self) -> str:
        return f"<AmqpBroker {self.name} {self.params.url} {self._state}>"

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
        policy = backoffPolicy(initialDelay=0.5, maxDelay=self._max_retry_delay, factor=2.0)
        self._service = ClientService(
            self._endpoint,
            _Factory(self),
            retryPolicy=policy,
            clock=self._reactor,
            prepareConnection=self._prepare,
        )
        self._service.startService()
        return defer.Deferred.fromCoroutine(self._first_connect())

    async def _first_connect(self) -> None:
        try:
            await self._service.whenConnected(failAfterFailures=1)  # type: ignore[union-attr]
        except Exception as e:
            if self._state in (_CLOSING, _CLOSED):
                raise ConnectionClosedError(f"{self.name} was closed while connecting") from None
            self._state = _NEW
            # Not from inside the ClientService's own transition (it refuses re-entry).
            await task.deferLater(self._reactor, 0, self._service.stopService)  # type: ignore[union-attr]
            raise BrokerError(f"cannot connect to {self.params.url}: {describe(e)}") from None

    async def _prepare(self, proto: Any) -> None:
        """Called by the ClientService on each new TCP connection; it is ours once this returns."""
        proto = getattr(proto, "_protocol", proto)  # the ClientService hands us a proxy
        await proto.ready
        if self._state in (_CLOSING, _CLOSED):
            raise ConnectionClosedError(f"{self.name} is closed")
        self._proto = proto
        self._ctl = self._sub = None
        self._publishers = {True: None, False: None}
        self._known_exchanges.clear()
        self._ctl = await self._open_channel()
        self._publishers[True] = await self._open_publisher(True)
        self._publishers[False] = await self._open_publisher(False)
        await self._consumer_channel()
        if self._generation:
            self._state = _RECOVERING
            await self._replay()
        self._generation += 1
        self._state = _OPEN
        self._error = None
        _log.info("{name} connected to {url}", name=self.name, url=self.params.url)
        if self._generation > 1:
            for callback in list(self._reconnected_callbacks):
                self._reactor.callLater(0, callback)

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
        if self._sub is not None:
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

    # --- control operations -------------------------------------------------------------------

    def _control(self, op: Callable[[Channel], defer.Deferred[Any]]) -> defer.Deferred[Any]:
        """Run C{op(channel)} on the control channel once earlier control operations are done."""
        result: defer.Deferred[Any] = defer.Deferred()

        def run(_: Any) -> defer.Deferred[None]:
            if self._ctl is not None and self._ctl.is_open:
                d = defer.maybeDeferred(op, self._ctl)
            else:
                d = self._open_channel()

                def opened(chan: Channel) -> defer.Deferred[Any]:
                    self._ctl = chan
                    return op(chan)

                d.addCallback(opened)
            return d.chainDeferred(result)

        self._ctl_tail.addCallback(run)
        return result

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
        return self._declare_exchange(name, type, auto_delete)

    def _declare_exchange(self, name: str, type: str, auto_delete: bool) -> defer.Deferred[None]:
        def done(_: Any) -> None:
            self._exchanges[name] = (type, auto_delete)
            self._known_exchanges.add(name)

        d = self._control(
            lambda ch: ch.rpc(
                "exchange_declare", exchange=name, exchange_type=type, auto_delete=auto_delete
            )
        )
        return d.addCallback(done)

    def delete_exchange(self, name: str) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused

        def done(_: Any) -> None:
            self._exchanges.pop(name, None)
            self._known_exchanges.discard(name)
            for binding in [b for b in self._bindings if b[1] == name]:
                del self._bindings[binding]

        return self._control(lambda ch: ch.rpc("exchange_delete", exchange=name)).addCallback(done)

    def declare_queue(
        self,
        name: str = "",
        exclusive: bool = False,
        auto_delete: bool = False,
        durable: bool = False,
    ) -> defer.Deferred[str]:
        if refused := self._refused():
            return refused
        return self._declare_queue(name, exclusive, auto_delete, durable)

    def _declare_queue(self, name, exclusive, auto_delete, durable) -> defer.Deferred[str]:
        def done(frame: Any) -> str:
            if name:  # a server-named queue cannot be declared again under its name
                self._queues[name] = (exclusive, auto_delete, durable)
            return frame.method.queue

        d = self._control(
            lambda ch: ch.rpc(
                "queue_declare",
                queue=name,
                exclusive=exclusive,
                auto_delete=auto_delete,
                durable=durable,
            )
        )
        return d.addCallback(done)

    def delete_queue(self, name: str) -> defer.Deferred[None]:
        if refused := self._refused():
            self._forget_queue(name)  # so a reconnect does not declare it again
            return refused
        d = self._control(lambda ch: ch.rpc("queue_delete", queue=name))
        return d.addCallback(lambda _: self._forget_queue(name))

    def _forget_queue(self, name: str) -> None:
        self._queues.pop(name, None)
        for binding in [b for b in self._bindings if b[0] == name]:
            del self._bindings[binding]
        for tag in [t for t, c in self._consumers.items() if c.queue == name]:
            del self._consumers[tag]

    def _check_queue(self, name: str) -> defer.Deferred[Any]:
        return self._control(lambda ch: ch.rpc("queue_declare", queue=name, passive=True))

    def queue_exists(self, name: str) -> defer.Deferred[bool]:
        if refused := self._refused():
            return refused

        def missing(failure: Failure) -> bool:
            if failure.check(NoSuchQueueError):
                return False
            if failure.check(ResourceLockedError):  # another connection's exclusive queue
                return True
            return failure  # type: ignore[return-value]

        return self._check_queue(name).addCallbacks(lambda _: True, missing)

    def bind_queue(self, queue: str, exchange: str, binding_key: str) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused
        return self._bind(queue, exchange, binding_key)

    def _bind(self, queue: str, exchange: str, key: str) -> defer.Deferred[None]:
        def done(_: Any) -> None:
            self._bindings[(queue, exchange, key)] = None

        d = self._control(
            lambda ch: ch.rpc("queue_bind", queue=queue, exchange=exchange, routing_key=key)
        )
        return d.addCallback(done)

    def unbind_queue(self, queue: str, exchange: str, binding_key: str) -> defer.Deferred[None]:
        if refused := self._refused():
            return refused

        def done(_: Any) -> None:
            self._bindings.pop((queue, exchange, binding_key), None)

        d = self._control(
            lambda ch: ch.rpc(
                "queue_unbind", queue=queue, exchange=exchange, routing_key=binding_key
            )
        )
        return d.addCallback(done)

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
        if mandatory and report_returns and not confirm:
            # Sent mandatory on the plain channel: a return goes to on_returned.
            args = (exchange, routing_key, body, headers or None, True, False)
            publisher = self._publishers[False]
            if (
                publisher is not None
                and publisher.chan.is_open
                and (not exchange or exchange in self._known_exchanges)
            ):
                try:
                    return publisher.publish(*args)
                except Exception:
                    return defer.fail()
        args = (exchange, routing_key, body, headers or None, mandatory, confirm)
        if exchange and exchange not in self._known_exchanges:
            return self._after_exchange_check(exchange, args)
        publisher = self._publishers[bool(args[4] or args[5])]
        if publisher is not None and publisher.chan.is_open:
            try:
                return publisher.publish(*args)
            except Exception:
                return defer.fail()
        return self._after_publisher_opens(args)

    def _after_exchange_check(self, exchange: str, args: tuple) -> defer.Deferred[None]:
        """Publish once the exchange is known to exist, so a missing one fails just this call."""
        d: defer.Deferred[None] = defer.Deferred()
        waiters = self._checking.get(exchange)
        if waiters is None:
            waiters = self._checking[exchange] = []
            check = self._control(
                lambda ch: ch.rpc("exchange_declare", exchange=exchange, passive=True)
            )
            check.addBoth(self._exchange_checked, exchange)
        waiters.append((args, d))
        return d

    def _exchange_checked(self, result: Any, exchange: str) -> None:
        waiters = self._checking.pop(exchange)
        if isinstance(result, Failure):
            for _, d in waiters:
                d.errback(result.value)
            return
        self._known_exchanges.add(exchange)
        for args, d in waiters:
            self._publish_later(args).chainDeferred(d)

    def _publish_later(self, args: tuple) -> defer.Deferred[None]:
        if self._state != _OPEN:
            return defer.fail(self._gone())
        publisher = self._publishers[bool(args[4] or args[5])]
        if publisher is not None and publisher.chan.is_open:
            try:
                return publisher.publish(*args)
            except Exception:
                return defer.fail()
        return self._after_publisher_opens(args)

    def _after_publisher_opens(self, args: tuple) -> defer.Deferred[None]:
        confirming = bool(args[4] or args[5])
        d: defer.Deferred[None] = defer.Deferred()
        waiting = self._pub_waiting[confirming]
        waiting.append((args, d))
        if len(waiting) == 1:
            opening = defer.Deferred.fromCoroutine(self._open_publisher(confirming))
            opening.addBoth(self._publisher_opened, confirming)
        return d

    async def _open_publisher(self, confirming: bool) -> Publisher:
        chan = await self._open_channel()
        publisher = Publisher(chan, confirming)
        if confirming:
            await chan.rpc("confirm_delivery", ack_nack_callback=publisher.on_confirm)
            chan.raw.add_on_return_callback(publisher.on_return)
        else:
            chan.raw.add_on_return_callback(self._returned)
        chan.closed.addCallback(self._publisher_closed, publisher)
        return publisher

    def _publisher_opened(self, result: Any, confirming: bool) -> None:
        waiting, self._pub_waiting[confirming] = self._pub_waiting[confirming], []
        if isinstance(result, Failure):
            for _, d in waiting:
                d.errback(result.value)
            return
        self._publishers[confirming] = result
        for args, d in waiting:
            self._publish_later(args).chainDeferred(d)

    def _publisher_closed(self, reason: BaseException, publisher: Publisher) -> None:
        if self._publishers[publisher.confirming] is publisher:
            self._publishers[publisher.confirming] = None
        if self._state == _OPEN:  # the broker closed it: a stale exchange, probably
            self._known_exchanges.clear()
            _log.warn("{name}: publish channel closed: {reason}", name=self.name, reason=reason)
        publisher.fail_all(self._channel_error(reason))

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
        return defer.Deferred.fromCoroutine(self._consume(c))

    async def _consume(self, c: Consumer) -> str:
        await self._check_queue(c.queue)  # a refused basic.consume would close the shared channel
        chan = await self._consumer_channel()
        qos = chan.rpc("basic_qos", prefetch_count=c.prefetch, global_qos=False)
        consume = chan.rpc(
            "basic_consume",
            queue=c.queue,
            on_message_callback=partial(self._on_message, c),
            consumer_tag=c.tag,
            auto_ack=c.auto_ack,
        )
        c.chan = chan
        try:
            await defer.gatherResults([qos, consume], consumeErrors=True)
        except defer.FirstError as e:
            e.subFailure.raiseException()
        self._consumers[c.tag] = c
        return c.tag

    async def _consumer_channel(self) -> Channel:
        if self._sub is not None and self._sub.is_open:
            return self._sub
        if self._sub_opening is None:
            self._sub_opening = self._open_channel()
        opening = self._sub_opening
        try:
            chan = await opening
        finally:
            if self._sub_opening is opening:
                self._sub_opening = None
        if self._sub is None or not self._sub.is_open:
            self._sub = chan
            chan.raw.add_on_cancel_callback(self._cancelled_by_broker)
            chan.closed.addCallback(self._consumer_channel_closed, chan)
        return self._sub

    def _on_message(self, c: Consumer, _raw: Any, method: Any, props: Any, body: bytes) -> None:
        d = Delivery(
            self,
            c.chan,
            None if c.auto_ack else method.delivery_tag,
            body,
            method.exchange,
            method.routing_key,
            from_wire_headers(props.headers),
            method.redelivered,
        )
        try:
            c.callback(d)
        except Exception:
            _log.failure("on_delivery of consumer {tag} raised", tag=c.tag)

    def _cancelled_by_broker(self, frame: Any) -> None:
        c = self._consumers.pop(frame.method.consumer_tag, None)
        if c is not None:
            _log.info("{name}: the broker cancelled consumer {tag} of {queue}",
                      name=self.name, tag=c.tag, queue=c.queue)  # fmt: skip

    def _consumer_channel_closed(self, reason: BaseException, chan: Channel) -> None:
        if self._sub is chan:
            self._sub = None
        if self._state == _OPEN and self._consumers:
            _log.warn("{name}: consumer channel closed ({reason}); resuming consumers",
                      name=self.name, reason=reason)  # fmt: skip
            defer.Deferred.fromCoroutine(self._resume_consumers())

    async def _resume_consumers(self) -> None:
        for c in list(self._consumers.values()):
            self._consumers.pop(c.tag, None)
            try:
                await self._consume(c)
            except Exception as e:
                if isinstance(e, ConnectionLostError | ConnectionClosedError):
                    raise
                _log.error("{name}: consumer {tag} of {queue} not resumed: {error}",
                           name=self.name, tag=c.tag, queue=c.queue, error=e)  # fmt: skip

    def cancel(self, consumer_tag: str) -> defer.Deferred[None]:
        # Forget it first, whatever the connection's state: a consumer cancelled
        # while the link is down must not come back when a reconnect resumes the rest.
        c = self._consumers.pop(consumer_tag, None)
        if c is None:
            return defer.succeed(None)
        if self._queues.get(c.queue, (False, False))[1] and not any(
            other.queue == c.queue for other in self._consumers.values()
        ):
            self._forget_queue(c.queue)  # the broker deletes an auto-delete queue now
        if self._state != _OPEN:
            return defer.succeed(None)  # the broker dropped it with the connection
        chan = c.chan
        if chan is None or not chan.is_open or consumer_tag not in chan.raw.consumer_tags:
            return defer.succeed(None)
        return chan.rpc("basic_cancel", consumer_tag=consumer_tag).addCallback(lambda _: None)

    # --- reconnecting -------------------------------------------------------------------------

    async def _replay(self) -> None:
        """Declare again what this connection declared, then resume its consumers."""
        steps: list[tuple[str, Callable[[], defer.Deferred[Any]]]] = []
        for name, (type, auto_delete) in self._exchanges.items():
            steps.append((f"exchange {name}", partial(self._declare_exchange, name, type, auto_delete)))  # fmt: skip
        for name, flags in self._queues.items():
            steps.append((f"queue {name}", partial(self._declare_queue, name, *flags)))
        for queue, exchange, key in self._bindings:
            steps.append((f"binding {queue}<-{exchange}:{key}", partial(self._bind, queue, exchange, key)))  # fmt: skip
        for what, step in steps:
            try:
                await step()
            except BrokerError as e:
                if isinstance(e, ConnectionLostError | ConnectionClosedError):
                    raise
                _log.error("{name}: could not declare {what} again: {error}",
                           name=self.name, what=what, error=e)  # fmt: skip
        await self._resume_consumers()
