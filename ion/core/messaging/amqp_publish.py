"""The publish channels of an L{ion.core.messaging.amqp.AmqpBroker}, and its slow publish paths.

A connection has two publish channels: one in confirm mode for mandatory and
confirmed publishes, one plain for the rest (replies, events), so those cost the
broker no acks and the publisher no extra frames to read. C{AmqpBroker.publish}
writes straight to an open one when the exchange is known to exist; L{PublishPath}
holds the channels and handles the rest: a publish to an exchange not yet known
waits for a passive check of it, so a missing one fails just that call, and a
publish finding its channel closed waits for a new one.

While the broker blocks the connection (C{connection.blocked}: its memory or
disk alarm), publishes are held here, not written to a socket the broker does
not read: their callers' deadlines apply (a held publish whose Deferred is
cancelled is dropped, never sent), and they go out in order once unblocked.
Held and unconfirmed publishes together are bounded by C{limit}
(C{broker.max_unconfirmed}); past it a publish fails at once with
L{BrokerBusyError}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.exception import BrokerBusyError
from ion.core.messaging.amqp_channel import Publisher, forward
from ion.core.messaging.amqp_topology import Topology

if TYPE_CHECKING:
    from ion.core.messaging.amqp import AmqpBroker

__all__ = ["PublishPath"]

_log = Logger()

# Publisher.publish's (exchange, routing_key, body, headers, mandatory, confirm, expiration).
_Args = tuple[str, str, bytes, dict[str, Any] | None, bool, bool, int | None]
_Waiters = list[tuple[_Args, defer.Deferred[None]]]
# AmqpBroker._send's (exchange, routing_key, body, wire headers, mandatory, confirm,
# report_returns, expiration).
_Call = tuple[str, str, bytes, dict[str, Any] | None, bool, bool, bool, int | None]


class PublishPath:
    """The publish channels of C{broker} (by whether they confirm), and the publishes waiting."""

    def __init__(self, broker: AmqpBroker, topology: Topology, limit: int = 0) -> None:
        self._broker = broker
        self._topology = topology
        self.limit = limit
        self.blocked: str | None = None  # the broker's reason, while it blocks us
        self._held: dict[defer.Deferred[None], _Call] = {}  # in order
        self.publishers: dict[bool, Publisher | None] = {True: None, False: None}
        self._waiting: dict[bool, _Waiters] = {True: [], False: []}
        self._checking: dict[str, _Waiters] = {}

    def forget_publishers(self) -> None:
        """Drop the channels of a lost connection."""
        self.publishers = {True: None, False: None}
        self.blocked = None

    # --- flow control -------------------------------------------------------------------------

    def hold(self, call: _Call) -> defer.Deferred[None]:
        """Keep C{call} until the broker unblocks the connection (or refuse it: too many wait)."""
        waiting = len(self._held) + sum(len(p.unconfirmed) for p in self.publishers.values() if p)
        if self.limit and waiting >= self.limit:
            return defer.fail(
                BrokerBusyError(
                    f"the broker blocks this connection ({self.blocked}) and {waiting} "
                    f"publishes wait already (broker.max_unconfirmed is {self.limit})"
                )
            )

        def unsent(d: defer.Deferred[None]) -> None:  # cancelled while held: never sent
            self._held.pop(d, None)

        d: defer.Deferred[None] = defer.Deferred(unsent)
        self._held[d] = call
        return d

    def release(self) -> None:
        """The broker unblocked the connection: send what is held, in order."""
        self.blocked = None
        held, self._held = self._held, {}
        for d, call in held.items():
            self._broker._send(*call).addBoth(forward, d)

    def drop_held(self, error: BaseException) -> None:
        """The connection went: fail what is held (nothing of it was sent)."""
        held, self._held = self._held, {}
        for d in held:
            d.errback(error)

    async def open_publishers(self) -> None:
        self.publishers[True] = await self._open_publisher(True)
        self.publishers[False] = await self._open_publisher(False)

    def after_exchange_check(self, exchange: str, args: _Args) -> defer.Deferred[None]:
        """Publish once the exchange is known to exist, so a missing one fails just this call."""
        d: defer.Deferred[None] = defer.Deferred()
        waiters = self._checking.get(exchange)
        if waiters is None:
            waiters = self._checking[exchange] = []
            self._topology.check_exchange(exchange).addBoth(self._exchange_checked, exchange)
        waiters.append((args, d))
        return d

    def _exchange_checked(self, result: Any, exchange: str) -> None:
        waiters = self._checking.pop(exchange)
        if isinstance(result, Failure):
            for _, d in waiters:
                if not d.called:
                    d.errback(result.value)
            return
        for args, d in waiters:
            if not d.called:  # its caller gave up meanwhile: not sent at all
                self._publish_later(args).addBoth(forward, d)

    def _publish_later(self, args: _Args) -> defer.Deferred[None]:
        broker = self._broker
        if not broker.is_open:
            return defer.fail(broker._gone())
        publisher = self.publishers[bool(args[4] or args[5])]
        if publisher is not None and publisher.chan.is_open:
            try:
                return publisher.publish(*args)
            except Exception:
                return defer.fail()
        return self.after_publisher_opens(args)

    def after_publisher_opens(self, args: _Args) -> defer.Deferred[None]:
        """Publish once the (closed) channel for this kind of publish is open again."""
        confirming = bool(args[4] or args[5])
        d: defer.Deferred[None] = defer.Deferred()
        waiting = self._waiting[confirming]
        waiting.append((args, d))
        if len(waiting) == 1:
            opening = defer.Deferred.fromCoroutine(self._open_publisher(confirming))
            opening.addBoth(self._publisher_opened, confirming)
        return d

    async def _open_publisher(self, confirming: bool) -> Publisher:
        chan = await self._broker._open_channel()
        publisher = Publisher(chan, confirming, self.limit, self._broker.user_id)
        if confirming:
            publisher.on_nack = self._retire
            await chan.rpc("confirm_delivery", ack_nack_callback=publisher.on_confirm)
            chan.raw.add_on_return_callback(publisher.on_return)
        else:
            chan.raw.add_on_return_callback(self._broker._returned)
        chan.closed.addCallback(self._publisher_closed, publisher)
        return publisher

    def _retire(self, publisher: Publisher) -> None:
        """The broker nacked a publish: later ones go to a new channel, and this one
        closes once its confirms are in. (RabbitMQ 3.10 nacks every publish to a
        quorum queue on a channel that met the queue while its leader's node was
        lost, long after a new leader took over; a new channel finds it.)"""
        if self.publishers[True] is publisher and not publisher.retired:
            publisher.retired = True
            self.publishers[True] = None
            _log.info("{name}: the broker nacked a publish; confirmed publishes move to a new "
                      "channel", name=self._broker.name)  # fmt: skip

    def _publisher_opened(self, result: Any, confirming: bool) -> None:
        waiting, self._waiting[confirming] = self._waiting[confirming], []
        if isinstance(result, Failure):
            for _, d in waiting:
                if not d.called:
                    d.errback(result.value)
            return
        self.publishers[confirming] = result
        for args, d in waiting:
            if not d.called:
                self._publish_later(args).addBoth(forward, d)

    def _publisher_closed(self, reason: BaseException, publisher: Publisher) -> None:
        broker = self._broker
        if self.publishers[publisher.confirming] is publisher:
            self.publishers[publisher.confirming] = None
        if broker.is_open and not publisher.retired:  # the broker closed it: a stale exchange?
            self._topology.known_exchanges.clear()
            _log.warn("{name}: publish channel closed: {reason}", name=broker.name, reason=reason)
        publisher.fail_all(broker._channel_error(reason))
