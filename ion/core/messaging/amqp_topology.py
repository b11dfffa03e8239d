"""What an L{ion.core.messaging.amqp.AmqpBroker} declared, and its control channel.

L{Topology} runs declarations, bindings, deletions and passive checks on the
connection's I{control} channel one at a time, so a refused declaration (which
makes the broker close the channel) fails only its own call; the channel is
reopened for the next. It remembers the exchanges, queues, bindings and consumers
of the connection, to declare them again and resume the consumers after a
reconnect, and the exchanges known to exist on the current connection, which
can be published to without a check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.exception import (
    BrokerError,
    ConnectionClosedError,
    ConnectionLostError,
    NoSuchExchangeError,
    NoSuchQueueError,
    ResourceLockedError,
)
from ion.core.messaging.amqp_channel import Channel, Consumer

__all__ = ["Topology"]

_log = Logger()

# What ends a replay rather than one step of it: the connection went, or the
# handshake's timeout cancelled it.
_ENDS_REPLAY = (ConnectionLostError, ConnectionClosedError, defer.CancelledError)


class Topology:
    """The control channel of one broker connection and the record of what it declared.

    @param open_channel: opens a channel on the current connection, or fails.
    @param name: the connection's name, for the log.
    """

    def __init__(self, open_channel: Callable[[], defer.Deferred[Channel]], name: str) -> None:
        self._open_channel = open_channel
        self._name = name
        self._ctl: Channel | None = None
        self._ctl_tail: defer.Deferred[None] = defer.succeed(None)
        self.known_exchanges: set[str] = set()
        self.exchanges: dict[str, tuple[str, bool]] = {}
        # exclusive, auto_delete, durable, queue type: as declared
        self.queues: dict[str, tuple[bool, bool, bool, str]] = {}
        self.server_named: dict[str, tuple[bool, bool, bool, str]] = {}  # this connection's
        self.bindings: dict[tuple[str, str, str], None] = {}
        self.consumers: dict[str, Consumer] = {}
        # On a reconnect: whether the replay has declared everything again (so a
        # publish finds its queue), before the consumers are resumed.
        self.redeclared = False

    async def open_control(self) -> None:
        """Open the control channel on a new connection, which knows no exchange yet."""
        self._ctl = None
        self.known_exchanges.clear()
        self.redeclared = False
        self._ctl = await self._open_channel()

    def _control(self, op: Callable[[Channel], defer.Deferred[Any]]) -> defer.Deferred[Any]:
        """Run C{op(channel)} on the control channel once earlier control operations are done."""
        result: defer.Deferred[Any] = defer.Deferred()

        def run(_: Any) -> defer.Deferred[None]:
            if self._ctl is not None and self._ctl.is_open:
                d = defer.maybeDeferred(op, self._ctl)
            else:
                d = defer.maybeDeferred(self._open_channel)

                def opened(chan: Channel) -> defer.Deferred[Any]:
                    self._ctl = chan
                    return op(chan)

                d.addCallback(opened)
            return d.chainDeferred(result)

        self._ctl_tail.addCallback(run)
        return result

    # --- exchanges ----------------------------------------------------------------------------

    def declare_exchange(self, name: str, type: str, auto_delete: bool) -> defer.Deferred[None]:
        def done(_: Any) -> None:
            self.exchanges[name] = (type, auto_delete)
            self.known_exchanges.add(name)

        d = self._control(
            lambda ch: ch.rpc(
                "exchange_declare", exchange=name, exchange_type=type, auto_delete=auto_delete
            )
        )
        return d.addCallback(done)

    def delete_exchange(self, name: str) -> defer.Deferred[None]:
        def done(_: Any) -> None:
            self.exchanges.pop(name, None)
            self.known_exchanges.discard(name)
            for binding in [b for b in self.bindings if b[1] == name]:
                del self.bindings[binding]

        return self._control(lambda ch: ch.rpc("exchange_delete", exchange=name)).addCallback(done)

    def check_exchange(self, name: str) -> defer.Deferred[None]:
        """Check passively that exchange C{name} exists; it is known to from then on."""
        d = self._control(lambda ch: ch.rpc("exchange_declare", exchange=name, passive=True))
        return d.addCallback(lambda _: self.known_exchanges.add(name))

    # --- queues and bindings ------------------------------------------------------------------

    def declare_queue(
        self, name: str, exclusive: bool, auto_delete: bool, durable: bool, queue_type: str
    ) -> defer.Deferred[str]:
        flags = (exclusive, auto_delete, durable, queue_type)

        def done(frame: Any) -> str:
            if name:
                self.queues[name] = flags
            else:  # it cannot be declared again under its name: it ends with the connection
                self.server_named[frame.method.queue] = flags
            return frame.method.queue

        # A classic queue is declared without the argument, as before there were
        # types: a queue declared so by an older ion stays equivalent.
        arguments = None if queue_type == "classic" else {"x-queue-type": queue_type}
        d = self._control(
            lambda ch: ch.rpc(
                "queue_declare",
                queue=name,
                exclusive=exclusive,
                auto_delete=auto_delete,
                durable=durable,
                arguments=arguments,
            )
        )
        return d.addCallback(done)

    def delete_queue(self, name: str) -> defer.Deferred[None]:
        # Forgotten first: the broker cancels our consumers of it (basic.cancel)
        # before it answers, and those must not be taken for a deletion by others.
        self.forget_queue(name)
        return self._control(lambda ch: ch.rpc("queue_delete", queue=name)).addCallback(
            lambda _: None
        )

    def forget_queue(self, name: str) -> None:
        """Forget queue C{name}, its bindings and its consumers."""
        self.queues.pop(name, None)
        self.server_named.pop(name, None)
        for binding in [b for b in self.bindings if b[0] == name]:
            del self.bindings[binding]
        for tag in [t for t, c in self.consumers.items() if c.queue == name]:
            self.consumers.pop(tag).cancelled = True

    def check_queue(self, name: str) -> defer.Deferred[Any]:
        return self._control(lambda ch: ch.rpc("queue_declare", queue=name, passive=True))

    def exchange_exists(self, name: str) -> defer.Deferred[bool]:
        def missing(failure: Failure) -> bool:
            if failure.check(NoSuchExchangeError):
                return False
            return failure  # type: ignore[return-value]

        return self.check_exchange(name).addCallbacks(lambda _: True, missing)

    def queue_exists(self, name: str) -> defer.Deferred[bool]:
        def missing(failure: Failure) -> bool:
            if failure.check(NoSuchQueueError):
                return False
            if failure.check(ResourceLockedError):  # another connection's exclusive queue
                return True
            return failure  # type: ignore[return-value]

        return self.check_queue(name).addCallbacks(lambda _: True, missing)

    def queue_consumers(self, name: str) -> defer.Deferred[int]:
        def missing(failure: Failure) -> int:
            if failure.check(NoSuchQueueError):
                return 0
            return failure  # type: ignore[return-value]

        d = self.check_queue(name)
        return d.addCallbacks(lambda frame: int(frame.method.consumer_count), missing)

    def queue_info(self, name: str) -> defer.Deferred[tuple[int, int] | None]:
        def missing(failure: Failure) -> None:
            if failure.check(NoSuchQueueError):
                return None
            return failure  # type: ignore[return-value]

        def counts(frame: Any) -> tuple[int, int]:
            return int(frame.method.message_count), int(frame.method.consumer_count)

        return self.check_queue(name).addCallbacks(counts, missing)

    def bind(self, queue: str, exchange: str, key: str) -> defer.Deferred[None]:
        def done(_: Any) -> None:
            self.bindings[(queue, exchange, key)] = None

        d = self._control(
            lambda ch: ch.rpc("queue_bind", queue=queue, exchange=exchange, routing_key=key)
        )
        return d.addCallback(done)

    def unbind(self, queue: str, exchange: str, key: str) -> defer.Deferred[None]:
        def done(_: Any) -> None:
            self.bindings.pop((queue, exchange, key), None)

        d = self._control(
            lambda ch: ch.rpc("queue_unbind", queue=queue, exchange=exchange, routing_key=key)
        )
        return d.addCallback(done)

    # --- consumers ----------------------------------------------------------------------------

    def drop_consumer(self, tag: str) -> Consumer | None:
        """Forget consumer C{tag}, and its queue if the broker deletes that with it."""
        c = self.consumers.pop(tag, None)
        if c is None:
            return None
        c.cancelled = True
        flags = self.queues.get(c.queue) or self.server_named.get(c.queue)
        if (
            flags is not None
            and flags[1]
            and not any(other.queue == c.queue for other in self.consumers.values())
        ):
            self.forget_queue(c.queue)  # the broker deletes an auto-delete queue now
        return c

    # --- reconnecting -------------------------------------------------------------------------

    def consumers_of(self, queue: str) -> list[Consumer]:
        return [c for c in self.consumers.values() if c.queue == queue]

    def give_up_on(self, queue: str) -> list[Consumer]:
        """Forget the consumers of C{queue} (the broker has none of them); return them."""
        gone = self.consumers_of(queue)
        for c in gone:
            self.consumers.pop(c.tag, None)
            c.cancelled = True
        return gone

    def _queues_to_restore(self) -> list[str]:
        """The queues declared, then those only consumed, each once, in order."""
        names = dict.fromkeys(self.queues)
        names.update(dict.fromkeys(c.queue for c in self.consumers.values()))
        return list(names)

    async def replay(self, consume: Callable[[Consumer], Awaitable[str]]) -> dict[str, BrokerError]:
        """Declare again what was declared, then resume the consumers with C{consume};
        return the queues that could not be restored (declared, bound and consumed
        again), with why: they and their consumers stay remembered, for
        L{restore} to try again. Server-named queues went with the old connection:
        their bindings and consumers are forgotten, and said so."""
        for queue in list(self.server_named):
            for tag in [t for t, c in self.consumers.items() if c.queue == queue]:
                _log.warn("{name}: consumer {tag} ends: its server-named queue {queue} "
                          "went with the connection", name=self._name, tag=tag, queue=queue)  # fmt: skip
            self.forget_queue(queue)
        for name, (type, auto_delete) in list(self.exchanges.items()):
            try:
                await self.declare_exchange(name, type, auto_delete)
            except BrokerError as e:
                if isinstance(e, _ENDS_REPLAY):
                    raise
                # the bindings to it fail next: their queues are what is not restored
                _log.error("{name}: could not declare exchange {what} again: {error}",
                           name=self._name, what=name, error=e)  # fmt: skip
        broken: dict[str, BrokerError] = {}
        for queue in self._queues_to_restore():
            try:
                await self.declare_again(queue)
            except BrokerError as e:
                if isinstance(e, _ENDS_REPLAY):
                    raise
                broken[queue] = e
        self.redeclared = True
        broken.update(await self.resume_consumers(consume, skip=broken))
        return broken

    async def restore(
        self, queue: str, consume: Callable[[Consumer], Awaitable[str]], anew: bool = False
    ) -> None:
        """Declare C{queue} again (if it was declared here), bind it and resume its
        consumers; with C{anew}, those the broker still has are cancelled first
        (they are on a queue nothing is routed to)."""
        await self.declare_again(queue)
        for c in self.consumers_of(queue):
            if anew and not c.cancelled and _active(c):
                await c.chan.rpc("basic_cancel", consumer_tag=c.tag)  # type: ignore[union-attr]
            if not c.cancelled and not _active(c):
                await consume(c)

    async def declare_again(self, queue: str) -> None:
        """Declare C{queue} (if it was declared here) and its bindings again."""
        flags = self.queues.get(queue)
        if flags is not None:
            await self.declare_queue(queue, *flags)
        for q, exchange, key in list(self.bindings):
            if q == queue:
                await self.bind(queue, exchange, key)

    async def resume_consumers(
        self, consume: Callable[[Consumer], Awaitable[str]], skip: Container[str] = ()
    ) -> dict[str, BrokerError]:
        """Consume again, with C{consume}, for each remembered consumer (but those
        of the queues in C{skip}); return the queues of those the broker refused,
        with why (they stay remembered). When the connection goes meanwhile, the
        error ends the resume; the rest stay remembered for the next reconnect."""
        broken: dict[str, BrokerError] = {}
        for c in list(self.consumers.values()):
            if c.cancelled or c.queue in skip or c.queue in broken:
                continue  # cancelled while an earlier one was being resumed, say
            try:
                await consume(c)
            except Exception as e:
                if isinstance(e, _ENDS_REPLAY):
                    raise
                broken[c.queue] = e if isinstance(e, BrokerError) else BrokerError(str(e))
        return broken


def _active(c: Consumer) -> bool:
    """Whether the broker delivers to C{c} now (on an open channel that has it)."""
    chan = c.chan
    return chan is not None and chan.is_open and c.tag in chan.raw.consumer_tags
