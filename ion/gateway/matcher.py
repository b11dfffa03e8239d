"""The matcher: CloudEvents from the events exchange into the outbox.

It consumes the gateway's CloudEvent events (event id 5001) from one shared
queue, C{<sysname>.gateway.match}, which every gateway instance binds and only
one consumes at a time (see below). For each event it finds the active
subscriptions whose JSONPath filter matches and enqueues one delivery per
match (C{store.enqueue}, one transaction, idempotent on the event key and
subscription) before its handler ends: the event is acked only then, so an
event the broker confirmed is either in the outbox or still in the queue.
A failing enqueue (the database is away) is tried again until it succeeds,
or the matcher stops or loses the lease: then the event goes back to the queue.

Events are handled one at a time, in the order the queue hands them over, so
the outbox (and so each subscription's deliveries) keeps the order in which
they were accepted. To keep it across several gateway instances only one
matcher consumes at a time: the one holding the lease C{"matcher"} in the
store (L{LEASE}; its owner the gateway's worker id, its length
C{gateway.match_lease}). Every matcher tries for it at start and every third
of the lease: the holder extends it, the others (standbys) take it once it has
expired (a killed gateway's: within about 4/3 of the lease) or was released (a
stopped one's). Each enqueue is fenced by the lease (C{enqueue(...,
holder=...)}): a matcher that lost it (paused, cut off) cannot write after the
new holder; it stops consuming at once and gives back (L{Requeue}) the events
it holds, which the queue hands to the new holder. A holder paused past its
lease with events in hand gives them back after the new holder may have taken
later ones: those few lose their order (none is lost or written twice).

The subscriptions are cached with their compiled filters and read again when
C{store.changed()} (a counter every change makes grow) has moved.
"""

from __future__ import annotations

import uuid as uuidlib
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.events import EventSubscriber, Requeue
from ion.core.object.event_ids import EventId
from ion.gateway.cloudevent import event_key
from ion.gateway.publish import cloudevent_of
from ion.gateway.store import LeaseLost

if TYPE_CHECKING:
    from ion.core.process.process import Process

__all__ = ["LEASE", "QUEUE_NAME", "Matcher"]

log = Logger()

QUEUE_NAME = "gateway.match"
LEASE = "matcher"  # the store lease the one consuming matcher holds


def _compile_filter(text: str) -> Any:
    from ion.gateway.jsonpath import compile_filter

    return compile_filter(text)


class Matcher:
    """Matches CloudEvents against the subscriptions and enqueues their deliveries.

    @param poke: called after an enqueue added deliveries (the delivery worker's
        C{poke}), so that delivery starts at once.
    @param compile_filter: JSONPath text to an object with C{matches(event)}.
    @param retry: seconds between attempts at a failing enqueue.
    @param owner: this matcher's name as the lease's owner (unique per instance;
        default: a random one).
    @param lease: seconds the lease is taken for; renewed every third of it.
    @param subscribe: makes the queue's consumer from the event handler: an object
        with async C{declare()}, C{start()} and C{stop()} (default: an L{EventSubscriber}).
    @ivar holding: whether this matcher holds the lease (and so consumes).
    """

    def __init__(
        self,
        process: Process,
        store: Any,
        poke: Callable[[], None],
        clock: Any,  # IReactorTime
        *,
        queue_name: str = QUEUE_NAME,
        compile_filter: Callable[[str], Any] = _compile_filter,
        retry: float = 1.0,
        owner: str | None = None,
        lease: float = 10.0,
        subscribe: Callable[[Callable[[Any, Any], Any]], Any] | None = None,
    ) -> None:
        self.process = process
        self.store = store
        self.poke = poke
        self.clock = clock
        self.queue_name = queue_name
        self.compile_filter = compile_filter
        self.retry = retry
        self._seen: int | None = None
        self._filters: list[tuple[str, Any]] = []
        self.owner = owner if owner is not None else uuidlib.uuid4().hex
        self.lease = lease
        self._subscribe = subscribe if subscribe is not None else self._event_subscriber
        self._subscriber: Any = None
        self._running = False
        self.holding = False
        self._until = 0.0  # when the lease this matcher last took ends
        # One event at a time: the one under way, and those that came meanwhile
        # (each with the Deferred that holds its ack).
        self._busy: Deferred[Any] | None = None
        self._waiting: deque[tuple[dict[str, Any], Deferred[Any]]] = deque()
        self._turn = DeferredLock()  # one take or drop of the lease at a time
        self._loop: LoopingCall | None = None

    def _event_subscriber(self, handler: Callable[[Any, Any], Any]) -> EventSubscriber:
        # (the shared queue is declared durable: it outlives the gateway)
        return EventSubscriber(self.process, event_id=int(EventId.CLOUDEVENT),
                               queue_name=self.queue_name, handler=handler)  # fmt: skip

    async def start(self) -> None:
        """Try for the lease now (consuming if it is had) and every third of it from now on."""
        self._running = True
        self._subscriber = self._subscribe(self._on_event)
        # Bound now, holder or not: what is accepted before a holder consumes waits
        # in the queue (an event no queue is bound for is dropped).
        await self._subscriber.declare()
        await self._tend()
        self._loop = LoopingCall(lambda: Deferred.fromCoroutine(self._tend()))
        self._loop.clock = self.clock
        self._loop.start(self.lease / 3, now=False)

    async def stop(self) -> None:
        """Take no more events, let the one under way end, release the lease (the queue
        stays for the other instances)."""
        self._running = False
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        await self._lose("stopped")
        # The event under way is enqueued or given back before a standby may take over.
        if self._busy is not None:
            await self._busy
        try:
            await self.store.release(LEASE, self.owner)
        except Exception as e:  # it expires instead
            log.warn("gateway matcher: cannot release its lease ({e})", e=e)

    async def _tend(self) -> None:
        await self._turn.run(lambda: Deferred.fromCoroutine(self._renew()))

    async def _renew(self) -> None:
        # (never raises: the loop would end)
        if not self._running:
            return
        now = self.clock.seconds()
        try:
            held = await self.store.hold(LEASE, self.owner, now, self.lease)
        except Exception as e:
            # Unknown: keep what is surely still ours, till its end.
            held = self.holding and self.clock.seconds() < self._until
            log.warn("gateway matcher: cannot renew its lease ({e})", e=e)
        else:
            if held:
                self._until = now + self.lease
        if not self._running:
            return
        if held and not self.holding:
            await self._take()
        elif not held and self.holding:
            await self._drop("lost its lease")

    async def _take(self) -> None:
        log.info("gateway matcher {owner}: took the lease; matching events from {queue}",
                 owner=self.owner, queue=self.queue_name)  # fmt: skip
        self.holding = True
        try:
            await self._subscriber.start()
        except Exception as e:
            self.holding = False
            log.warn("gateway matcher {owner}: cannot consume {queue} ({e}); letting the "
                     "lease go", owner=self.owner, queue=self.queue_name, e=e)  # fmt: skip
            try:
                await self.store.release(LEASE, self.owner)
            except Exception:  # it expires instead
                pass

    async def _lose(self, why: str) -> None:
        await self._turn.run(lambda: Deferred.fromCoroutine(self._drop(why)))

    async def _drop(self, why: str) -> None:
        if not self.holding:
            return
        self.holding = False
        log.info("gateway matcher {owner}: {why}; no longer matching", owner=self.owner, why=why)
        try:
            await self._subscriber.stop()
        except Exception as e:  # (a broker gone took the consumer with it)
            log.warn("gateway matcher {owner}: stopping its consumer failed: {e}",
                     owner=self.owner, e=e)  # fmt: skip
        # Given back once nothing consumes here (else they could come straight back),
        # newest first: RabbitMQ puts each one given back at the head of the queue
        # (the embedded broker in its place), so they stay in order, the one under
        # way (the oldest, given back after, if at all) in front.
        waiting, self._waiting = self._waiting, deque()
        for _, d in reversed(waiting):
            d.errback(Failure(Requeue(why)))

    def _on_event(self, event: Any, msg: Any) -> Deferred[Any]:
        # Its Deferred holds the ack: it fires once the deliveries are enqueued.
        # One event at a time, in the order they came: the outbox's order is a
        # subscription's delivery order, and two enqueues under way at once
        # (database threads) could commit in either order.
        acked: Deferred[Any] = Deferred()
        if not self.holding and not self._turn.locked:  # (a straggler: no drop to give it back)
            acked.errback(Failure(Requeue("this gateway's matcher does not hold the lease")))
            return acked
        self._waiting.append((cloudevent_of(event), acked))
        self._next()
        return acked

    def _next(self) -> None:
        # (not holding: those waiting are given back together, by _drop)
        if self._busy is not None or not self._waiting or not self.holding:
            return
        cloudevent, acked = self._waiting.popleft()
        self._busy = Deferred.fromCoroutine(self.handle(cloudevent))
        self._busy.addBoth(self._done, acked)

    def _done(self, result: Any, acked: Deferred[Any]) -> None:
        self._busy = None
        if isinstance(result, Failure):
            acked.errback(result)
        else:
            acked.callback(result)
        self._next()

    async def handle(self, cloudevent: dict[str, Any]) -> int:
        """Enqueue the deliveries of C{cloudevent}; return how many were new.

        @raise Requeue: this matcher does not hold the lease (any more): the event
            goes back to the queue, for the holder.
        """
        if not self.holding:
            raise Requeue("this gateway's matcher does not hold the lease")
        uuids = await self.match(cloudevent)
        if not uuids:
            return 0
        key = event_key(cloudevent["source"], cloudevent["id"])
        while True:
            if not self.holding:
                raise Requeue("this gateway's matcher no longer holds the lease")
            try:
                added = await self.store.enqueue(key, cloudevent, uuids, (LEASE, self.owner))
                break
            except LeaseLost as e:
                await self._lose(str(e))
                raise Requeue(str(e)) from e
            except Exception as e:
                log.warn("gateway matcher: enqueue failed ({e}); trying again in {retry}s",
                         e=e, retry=self.retry)  # fmt: skip
                await deferLater(self.clock, self.retry, lambda: None)
        if added:
            self.poke()
        return int(added)

    async def match(self, cloudevent: dict[str, Any]) -> list[str]:
        """The uuids of the active subscriptions whose filter matches C{cloudevent}."""
        await self._refresh()
        matched = []
        for uuid, flt in self._filters:
            try:
                if flt.matches(cloudevent):
                    matched.append(uuid)
            except Exception as e:  # one bad filter must not stop the others
                log.warn("gateway matcher: subscription {uuid}'s filter failed: {e}",
                         uuid=uuid, e=e)  # fmt: skip
        return matched

    async def _refresh(self) -> None:
        # The counter first: a change made while the list is read moves it
        # again, and the next event reads the list again.
        counter = await self.store.changed()
        if counter == self._seen:
            return
        filters = []
        for sub in await self.store.active_subscriptions():
            try:
                filters.append((sub.uuid, self.compile_filter(sub.jsonpath)))
            except Exception as e:  # stored before a stricter parser: skip, say so
                log.warn("gateway matcher: subscription {uuid}'s filter does not compile: {e}",
                         uuid=sub.uuid, e=e)  # fmt: skip
        self._filters, self._seen = filters, counter
