"""The consumer channel of an L{ion.core.messaging.amqp.AmqpBroker}.

Every consumer of a connection is on one channel, with C{basic.qos} set (per
consumer) right before each C{basic.consume}; acks and rejects go out on it. A
queue is checked (passively, on the control channel) before it is consumed, so a
missing or locked queue does not take the other consumers down with it. When the
broker closes the channel under an open connection, the consumers are resumed on
a new one.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from ion.core.messaging.amqp_channel import Channel, Consumer, Delivery
from ion.core.messaging.amqp_topology import Topology
from ion.core.messaging.headers import from_wire_headers

if TYPE_CHECKING:
    from ion.core.exception import BrokerError
    from ion.core.messaging.amqp import AmqpBroker

__all__ = ["ConsumerChannel"]

_log = Logger()


class ConsumerChannel:
    """The channel shared by the consumers of C{broker}, which C{topology} records."""

    def __init__(self, broker: AmqpBroker, topology: Topology) -> None:
        self._broker = broker
        self._topology = topology
        self._chan: Channel | None = None
        self._opening: defer.Deferred[Channel] | None = None

    def forget(self) -> None:
        """Drop the channel of a lost connection."""
        self._chan = None

    def flush_acks(self) -> None:
        if self._chan is not None:
            self._chan.flush_acks()

    async def consume(self, c: Consumer) -> str:
        """Start consumer C{c} under its tag and record it."""
        await self._topology.check_queue(c.queue)  # a refused basic.consume would close the channel
        chan = await self.open()
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
        if c.cancelled:  # while the broker was starting it: stop it now
            if chan.is_open:
                chan.rpc("basic_cancel", consumer_tag=c.tag).addErrback(lambda _: None)
            return c.tag
        self._topology.consumers[c.tag] = c
        return c.tag

    async def open(self) -> Channel:
        """The channel, opened first if need be (once, however many callers wait)."""
        if self._chan is not None and self._chan.is_open:
            return self._chan
        if self._opening is None:
            self._opening = self._broker._open_channel()
        opening = self._opening
        try:
            chan = await opening
        finally:
            if self._opening is opening:
                self._opening = None
        if self._chan is None or not self._chan.is_open:
            self._chan = chan
            chan.raw.add_on_cancel_callback(self._cancelled_by_broker)
            chan.closed.addCallback(self._closed, chan)
        return self._chan

    def _on_message(self, c: Consumer, _raw: Any, method: Any, props: Any, body: bytes) -> None:
        d = Delivery(
            self._broker,
            c.chan,
            None if c.auto_ack else method.delivery_tag,
            body,
            method.exchange,
            method.routing_key,
            from_wire_headers(props.headers),
            method.redelivered,
            props.user_id,
        )
        try:
            c.callback(d)
        except BaseException:  # SystemExit too: a callback's error stays its own
            _log.failure("on_delivery of consumer {tag} raised", tag=c.tag)

    def _cancelled_by_broker(self, frame: Any) -> None:
        c = self._topology.consumers.get(frame.method.consumer_tag)
        if c is None or c.cancelled:
            return
        # Its queue was deleted, say: nothing more would arrive. Declared again
        # and consumed, it serves on; or its owner is told it cannot.
        _log.warn("{name}: the broker cancelled consumer {tag} of {queue}; declaring and "
                  "consuming it again", name=self._broker.name, tag=c.tag, queue=c.queue)  # fmt: skip
        self._broker.queue_lost(c.queue, f"the broker cancelled consumer {c.tag}")

    def _retry_broken(self, broken: dict[str, BrokerError]) -> None:
        """Queues a resume could not consume from again: the restorer keeps trying."""
        if broken:
            self._broker._restorer.add(broken)

    def _closed(self, reason: BaseException, chan: Channel) -> None:
        if self._chan is chan:
            self._chan = None
        if self._broker.is_open and self._topology.consumers:
            _log.warn("{name}: consumer channel closed ({reason}); resuming consumers",
                      name=self._broker.name, reason=reason)  # fmt: skip
            resuming = defer.Deferred.fromCoroutine(self._topology.resume_consumers(self.consume))
            resuming.addCallback(self._retry_broken)
            resuming.addErrback(
                lambda f: _log.warn(
                    "{name}: resuming consumers stopped: {why}", name=self._broker.name, why=f.value
                )  # fmt: skip
            )
