"""Queues an L{ion.core.messaging.amqp.AmqpBroker} has lost its hold on, won back.

After a reconnect, a queue may not be declared again at once: an exclusive one
is still held by the old connection until the broker notices that it is dead
(RESOURCE_LOCKED), or a binding's exchange is gone. And under an open
connection, someone may delete a queue we consume (the broker then cancels our
consumers: C{basic.cancel}). L{Restorer} declares such a queue again, binds it
and resumes its consumers, with backoff on the broker's clock, for up to
C{timeout} seconds a queue; then it gives the queue up: its consumers are
forgotten and the owner is told (L{Restorer.on_given_up}), so that nothing
looks restored that is not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from ion.core.exception import BrokerError, ConnectionClosedError, ConnectionLostError
from ion.core.messaging.amqp_channel import Consumer
from ion.core.messaging.amqp_topology import Topology

__all__ = ["Restorer"]

_log = Logger()

# Errors that say the connection went: the next reconnect's replay restores everything.
_LINK_GONE = (ConnectionLostError, ConnectionClosedError, defer.CancelledError)

# Seconds after a lost queue is back when it is looked at again (L{Restorer._recheck}).
RECHECKS = (1.0, 3.0)


class Restorer:
    """Restores the queues of C{topology} that are broken, one attempt each per round.

    @param consume: starts one consumer (the consumer channel's C{consume}).
    @param on_restored: called when the last broken queue is back.
    @param on_given_up: C{(queue, consumers, error)} for a queue given up.
    """

    def __init__(
        self,
        clock: Any,
        topology: Topology,
        consume: Callable[[Consumer], Awaitable[str]],
        name: str,
        *,
        timeout: float,
        max_delay: float,
        on_restored: Callable[[], None],
        on_given_up: Callable[[str, list[Consumer], BrokerError], None],
    ) -> None:
        self._clock = clock
        self._topology = topology
        self._consume = consume
        self._name = name
        self.timeout = timeout
        self._max_delay = max_delay
        self._on_restored = on_restored
        self._on_given_up = on_given_up
        self.broken: dict[str, BrokerError] = {}
        self._since: dict[str, float] = {}
        self._wait: defer.Deferred[None] | None = None
        self._running: defer.Deferred[None] | None = None
        self._gave_up = False
        self._epoch = 0  # connections seen: a run outlived by its connection restarts
        self._lost: set[str] = set()  # queues the broker took from us: looked at again
        self._anew: set[str] = set()  # queues whose consumers must be started anew
        self._looks: set[defer.Deferred[None]] = set()  # the rechecks' waits, cancelled at stop

    def lost(self, queue: str, error: BrokerError) -> None:
        """The broker cancelled our consumers of C{queue}: restore it at once, and
        look at it again after (L{_recheck})."""
        self._lost.add(queue)
        self.add({queue: error}, at_once=True)

    @property
    def busy(self) -> bool:
        return bool(self.broken)

    def add(self, broken: dict[str, BrokerError], at_once: bool = False) -> None:
        """Restore the queues of C{broken} (queue: why it is broken), trying again
        first after a delay (at once with C{at_once})."""
        now = self._clock.seconds()
        for queue, error in broken.items():
            self._since.setdefault(queue, now)
            self.broken[queue] = error
        if self._running is None:
            running = defer.Deferred.fromCoroutine(self._run(at_once))
            running.addErrback(lambda f: _log.failure("{name}: restoring queues failed", f,
                                                      name=self._name))  # fmt: skip
            if not running.called:  # (a run that ended at once has cleared _running itself)
                self._running = running
        elif at_once and self._wait is not None:
            self._wait.cancel()

    def stop(self) -> None:
        """The connection went: stop (what is broken stays remembered in the topology,
        for the reconnect's replay to declare again)."""
        self._epoch += 1
        self.broken.clear()
        self._since.clear()
        self._lost.clear()
        self._anew.clear()
        for look in list(self._looks):
            look.cancel()
        if self._wait is not None:
            self._wait.cancel()

    async def _run(self, at_once: bool) -> None:
        delay = 0.0 if at_once else 0.5
        self._gave_up = False
        epoch = self._epoch
        try:
            while self.broken and epoch == self._epoch:
                if delay:
                    self._wait = task.deferLater(self._clock, delay, lambda: None)
                    try:
                        await self._wait
                    except defer.CancelledError:
                        pass  # stopped, or a queue to try at once
                    finally:
                        self._wait = None
                delay = min(max(delay, 0.25) * 2, self._max_delay)
                if epoch != self._epoch or not await self._round():
                    return
            if not self._gave_up and epoch == self._epoch:
                self._on_restored()
        finally:
            self._running = None
            if self.broken and epoch != self._epoch:  # a new connection's, added meanwhile
                self.add({})

    async def _round(self) -> bool:
        """Try each broken queue once; False when the connection went meanwhile."""
        for queue in list(self.broken):
            if queue not in self.broken:  # stopped meanwhile
                continue
            try:
                await self._topology.restore(queue, self._consume, anew=queue in self._anew)
            except _LINK_GONE:
                return False
            except BrokerError as e:
                if queue not in self.broken:  # stopped meanwhile
                    return False
                self.broken[queue] = e
                if self._clock.seconds() - self._since[queue] >= self.timeout:
                    self._give_up(queue, e)
                continue
            if self.broken.pop(queue, None) is None:  # stopped meanwhile
                return False
            self._since.pop(queue, None)
            self._anew.discard(queue)
            _log.info("{name}: queue {queue} declared and consumed again",
                      name=self._name, queue=queue)  # fmt: skip
            if queue in self._lost:
                self._lost.discard(queue)
                self._look_again(queue)
        return True

    def _look_again(self, queue: str) -> None:
        checking = defer.Deferred.fromCoroutine(self._recheck(queue, self._epoch))
        checking.addErrback(lambda f: _log.failure("{name}: looking at {queue} again failed", f,
                                                   name=self._name, queue=queue))  # fmt: skip

    async def _recheck(self, queue: str, epoch: int) -> None:
        """Look at lost queue C{queue} again, a while after it was declared again.

        Seen on RabbitMQ 3.10 (the first node lost after a cluster formed): the
        queue declared again right after the broker's cancel took a call, then
        none for seconds, and no cancel came. Nothing was routed to it: the
        broker's clean-up of the lost node's queues, it seems, ran after the
        declare and took the new queue's record and bindings with the old. So:
        declare and bind it again (a no-op when all is well), and when it has
        no consumer, start ours anew."""
        for delay in RECHECKS:
            look = task.deferLater(self._clock, delay, lambda: None)
            self._looks.add(look)
            try:
                await look
            except defer.CancelledError:
                return  # stopped
            finally:
                self._looks.discard(look)
            if epoch != self._epoch or queue in self.broken:
                return  # the connection went (its replay restores it), or restoring again
            if not [c for c in self._topology.consumers_of(queue) if not c.cancelled]:
                return
            try:
                await self._topology.declare_again(queue)
                info = await self._topology.queue_info(queue)
            except _LINK_GONE:
                return
            except BrokerError as e:
                info, why = None, str(e)
            else:
                why = "it has no consumer"
            if info is None or info[1] == 0:
                if epoch != self._epoch:
                    return
                _log.warn("{name}: queue {queue}, declared again, is not served ({why}): "
                          "declaring and consuming it anew", name=self._name, queue=queue,
                          why=why)  # fmt: skip
                self._anew.add(queue)
                self.lost(queue, BrokerError(f"queue {queue} not served after its restore"))
                return

    def _give_up(self, queue: str, error: BrokerError) -> None:
        self._gave_up = True
        del self.broken[queue]
        del self._since[queue]
        gone = self._topology.give_up_on(queue)
        _log.error("{name}: gave up restoring queue {queue} after {t:g}s: {error}; "
                   "its consumers ({tags}) receive nothing more",
                   name=self._name, queue=queue, t=self.timeout, error=error,
                   tags=", ".join(c.tag for c in gone) or "none")  # fmt: skip
        self._on_given_up(queue, gone, error)
