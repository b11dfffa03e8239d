"""The matcher: CloudEvents from the events exchange into the outbox.

It consumes the gateway's CloudEvent events (event id 5001) from one shared
queue, C{<sysname>.gateway.match}, so that several gateway instances share the
events, each going to one of them. For each event it finds the active
subscriptions whose JSONPath filter matches and enqueues one delivery per
match (C{store.enqueue}, one transaction, idempotent on the event key and
subscription) before its handler ends: the event is acked only then, so an
event the broker confirmed is either in the outbox or still in the queue.
A failing enqueue (the database is away) is tried again until it succeeds;
a matcher stopped meanwhile leaves its event unacked, for the broker to hand
to another instance (or to this one after a restart).

Events are handled one at a time, in the order the queue hands them over, so
the outbox (and so each subscription's deliveries) keeps the order in which
this instance received them. Across several instances the queue splits the
events between their matchers, and two matchers' enqueues run side by side:
between events that different instances matched there is no order (a
subscription that needs a total order across instances needs one matcher,
e.g. a single-active-consumer queue: not done).

The subscriptions are cached with their compiled filters and read again when
C{store.changed()} (a counter every change makes grow) has moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ion.core.events import EventSubscriber
from ion.core.object.event_ids import EventId
from ion.gateway.cloudevent import event_key
from ion.gateway.publish import cloudevent_of

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from ion.core.process.process import Process

__all__ = ["QUEUE_NAME", "Matcher"]

log = Logger()

QUEUE_NAME = "gateway.match"


def _compile_filter(text: str) -> Any:
    from ion.gateway.jsonpath import compile_filter

    return compile_filter(text)


class Matcher:
    """Matches CloudEvents against the subscriptions and enqueues their deliveries.

    @param poke: called after an enqueue added deliveries (the delivery worker's
        C{poke}), so that delivery starts at once.
    @param compile_filter: JSONPath text to an object with C{matches(event)}.
    @param retry: seconds between attempts at a failing enqueue.
    """

    def __init__(
        self,
        process: Process,
        store: Any,
        poke: Callable[[], None],
        clock: IReactorTime,
        *,
        queue_name: str = QUEUE_NAME,
        compile_filter: Callable[[str], Any] = _compile_filter,
        retry: float = 1.0,
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
        self._subscriber: EventSubscriber | None = None
        self._running = False
        self._lock = DeferredLock()

    async def start(self) -> None:
        """Subscribe to the shared queue (declared durable; it outlives the gateway)."""
        self._running = True
        self._subscriber = EventSubscriber(
            self.process,
            event_id=int(EventId.CLOUDEVENT),
            queue_name=self.queue_name,
            handler=self._on_event,
        )
        await self._subscriber.start()

    async def stop(self) -> None:
        """Take no more events (the queue stays for the other instances)."""
        self._running = False
        if self._subscriber is not None:
            subscriber, self._subscriber = self._subscriber, None
            await subscriber.stop()

    def _on_event(self, event: Any, msg: Any) -> Deferred[Any]:
        # Its Deferred holds the ack: it fires once the deliveries are enqueued.
        # One event at a time, in the order they came: the outbox's order is a
        # subscription's delivery order, and two enqueues under way at once
        # (database threads) could commit in either order.
        cloudevent = cloudevent_of(event)
        return self._lock.run(lambda: Deferred.fromCoroutine(self.handle(cloudevent)))

    async def handle(self, cloudevent: dict[str, Any]) -> int:
        """Enqueue the deliveries of C{cloudevent}; return how many were new."""
        uuids = await self.match(cloudevent)
        if not uuids:
            return 0
        key = event_key(cloudevent["source"], cloudevent["id"])
        while True:
            try:
                added = await self.store.enqueue(key, cloudevent, uuids)
                break
            except Exception as e:
                if not self._running:
                    # Never acked: the broker gives the event to another consumer.
                    await Deferred()
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
