"""The delivery worker: posts the outbox's deliveries to their targets, retrying.

The worker loops on C{store.claim}: each claimed delivery is posted to its
target as a structured CloudEvent (C{application/cloudevents+json}; the
subscription's extensions merged in as Pacifica does, L{posted_event}) with the
header C{Ion-Delivery-Id} (the delivery's id, the same on every attempt) and
the subscription's auth (Pacifica's forms: C{basic} username/password, or
C{header} type and credentials as C{Authorization}). A 2xx answer settles it
delivered; anything else (another status, a connection error, no answer
within C{delivery.timeout}) fails it with a retry after an exponential backoff
with full jitter (C{delivery.backoff} doubling up to C{delivery.backoff_max});
the C{delivery.max_attempts}-th failure, or a target the allow-list refuses
when its post connects (L{ion.gateway.webhook}), parks it and sets the subscription's
error (C{retry_parked} resumes it).

Order: C{claim} hands out at most one delivery per subscription, its oldest
undelivered one, so a subscription's deliveries arrive in order; a failing one
holds back the later ones of its subscription only.

Several instances: a claim leases its deliveries to this worker (C{worker_id},
unique per gateway process) until C{now + delivery.lease}, atomically in the
database, so two gateways on one store never post the same delivery at once.
A gateway killed mid-delivery leaves a leased row that becomes claimable when
its lease expires: delivery is at least once, and receivers drop duplicates by
C{Ion-Delivery-Id}.

The worker wakes when poked (the matcher enqueued something), when a post
ends, when a retry falls due, and every C{poll} seconds (for what other
instances enqueued, and expired leases).
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger

from ion.gateway.cloudevent import STRUCTURED
from ion.gateway.targets import Unresolved
from ion.gateway.web import HttpError

if TYPE_CHECKING:
    from ion.gateway.config import GatewayConfig

__all__ = ["DeliveryWorker", "auth_headers", "posted_event"]

log = Logger()

# (url, body, headers) -> the target's HTTP status; raises HttpError when the
# allow-list refuses the target's address (parked), Unresolved when its name
# does not resolve (retried).
Poster = Callable[[str, bytes, dict[str, str]], Awaitable[int]]


def auth_headers(auth: dict[str, Any] | None) -> dict[str, str]:
    """The C{Authorization} header for a subscription's auth, as Pacifica sends it."""
    if not auth:
        return {}
    kind = auth.get("type")
    if kind == "basic":
        basic = auth.get("basic") or {}
        pair = f"{basic.get('username', '')}:{basic.get('password', '')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode("ascii")}
    if kind == "header":
        header = auth.get("header") or {}
        return {"Authorization": f"{header.get('type', '')} {header.get('credentials', '')}"}
    return {}


def posted_event(delivery: Any) -> dict[str, Any]:
    """The event as posted: whole, with the subscription's C{extensions} merged into
    its C{extensions} member as Pacifica does (only when the subscription has some)."""
    extra = getattr(delivery, "extensions", None)
    if not extra:
        return delivery.event  # type: ignore[no-any-return]
    event = dict(delivery.event)
    merged = event.get("extensions")
    event["extensions"] = {**(merged if isinstance(merged, dict) else {}), **extra}
    return event


class DeliveryWorker:
    """Claims due deliveries from C{store} and posts them, C{concurrency} at once.

    @param worker_id: unique per gateway process (container id and process id).
    @param clock: the reactor's time (C{callLater}, C{seconds}).
    @param poster: posts one delivery; returns the status.
    @param random: a source of floats in [0, 1) for the jitter.
    """

    def __init__(
        self,
        store: Any,
        worker_id: str,
        clock: Any,  # IReactorTime
        poster: Poster,
        *,
        timeout: float = 10.0,
        max_attempts: int = 8,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        lease: float = 30.0,
        concurrency: int = 32,
        poll: float = 1.0,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.clock = clock
        self.poster = poster
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.lease = lease
        self.concurrency = concurrency
        self.poll = poll
        self.random = random
        self.in_flight: dict[str, Deferred[None]] = {}
        self._reclaimed: dict[str, Any] = {}
        self._running = False
        self._looping = False
        self._again = False
        self._timer: Any = None  # IDelayedCall
        self._loop_done: Deferred[None] | None = None

    @classmethod
    def from_config(
        cls,
        store: Any,
        config: GatewayConfig,
        worker_id: str,
        clock: Any,  # IReactorTime
        poster: Poster,
    ) -> DeliveryWorker:
        """A worker with the C{gateway.delivery.*} settings of C{config}."""
        return cls(
            store,
            worker_id,
            clock,
            poster,
            timeout=config.delivery_timeout,
            max_attempts=config.delivery_max_attempts,
            backoff=config.delivery_backoff,
            backoff_max=config.delivery_backoff_max,
            lease=config.delivery_lease,
            concurrency=config.delivery_concurrency,
        )

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming (at once, then as woken)."""
        self._running = True
        self.poke()

    async def stop(self) -> None:
        """Claim no more; wait for the posts under way to end (each within the timeout)."""
        self._running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._loop_done is not None:
            await self._loop_done
        while self.in_flight:
            await next(iter(self.in_flight.values()))

    def poke(self) -> None:
        """Look for due deliveries now (new ones were enqueued)."""
        if not self._running:
            return
        if self._looping:
            self._again = True
            return
        self._loop_done = ensureDeferred(self._loop())

    # --- the claim loop -------------------------------------------------------------------

    async def _loop(self) -> None:
        self._looping = True
        try:
            while self._running:
                self._again = False
                free = self.concurrency - len(self.in_flight)
                if free <= 0:
                    break  # a post that ends pokes
                # Every delivery claimed is leased to this worker: ask for no
                # more than it starts.
                claimed = await self.store.claim(
                    self.worker_id, self.clock.seconds(), self.lease, free
                )
                fresh = []
                for delivery in claimed:
                    if delivery.id in self.in_flight:
                        # Settled (and made due again, by a retry) while its post
                        # was winding up here: posted again once that has ended.
                        self._reclaimed[delivery.id] = delivery
                    else:
                        fresh.append(delivery)
                for delivery in fresh:
                    self._start(delivery)
                if not fresh or (len(claimed) < free and not self._again):
                    break
        except Exception:
            log.failure("gateway delivery: claiming failed; trying again in {poll}s",
                        poll=self.poll)  # fmt: skip
        finally:
            self._looping = False
            self._loop_done = None
        self._arm(self.clock.seconds() + self.poll)

    def _arm(self, at: float) -> None:
        """Wake at C{at} at the latest."""
        if not self._running:
            return
        timer = self._timer
        if timer is not None and timer.active():
            if timer.getTime() <= at:
                return
            timer.cancel()
        self._timer = self.clock.callLater(max(0.0, at - self.clock.seconds()), self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.poke()

    # --- one delivery ---------------------------------------------------------------------

    def _start(self, delivery: Any) -> None:
        d = ensureDeferred(self._deliver(delivery))
        self.in_flight[delivery.id] = d

        def ended(_: Any) -> None:
            self.in_flight.pop(delivery.id, None)
            again = self._reclaimed.pop(delivery.id, None)
            if again is not None and self._running:
                self._start(again)
            self.poke()

        d.addErrback(lambda f: log.failure("gateway delivery {id} failed", f, id=delivery.id))
        d.addBoth(ended)

    async def _deliver(self, delivery: Any) -> None:
        park = False
        try:
            error = await self._post(delivery)
        except Unresolved as e:  # (a DNS hiccup must not park a subscription)
            error = e.message
        except HttpError as e:  # the allow-list refuses the target now (the poster's connect)
            error, park = f"target refused: {e.message}", True
        except Exception as e:
            error = _describe(e)
        attempts = delivery.attempts + 1
        if error is None:
            await self.store.delivered(delivery.id, self.worker_id)
        elif park or attempts >= self.max_attempts:
            if not park:
                error = f"{error} (attempt {attempts} of {self.max_attempts}; parked)"
            log.warn("gateway delivery {id} to {url} parked: {error}", id=delivery.id,
                     url=delivery.target_url, error=error)  # fmt: skip
            await self.store.failed(delivery.id, self.worker_id, error, None)
        else:
            retry_at = self.clock.seconds() + self.delay(delivery.attempts)
            await self.store.failed(delivery.id, self.worker_id, error, retry_at)
            self._arm(retry_at)

    def delay(self, attempts: int) -> float:
        """The wait before the next attempt after C{attempts} earlier ones failed, and
        this one: full jitter over an exponential ceiling."""
        ceiling = min(self.backoff_max, self.backoff * 2.0 ** min(attempts, 64))
        return self.random() * ceiling

    async def _post(self, delivery: Any) -> str | None:
        """Post C{delivery}; None on a 2xx, else what went wrong."""
        body = json.dumps(posted_event(delivery), separators=(",", ":")).encode()
        headers = {"Content-Type": STRUCTURED, "Ion-Delivery-Id": delivery.id}
        headers.update(auth_headers(delivery.auth))
        posting = self.poster(delivery.target_url, body, headers)
        if not isinstance(posting, Deferred):
            posting = ensureDeferred(posting)  # type: ignore[arg-type]
        posting.addTimeout(self.timeout, self.clock)
        status = await posting
        if 200 <= status < 300:
            return None
        return f"the target answered {status}"


def _describe(e: BaseException) -> str:
    from twisted.internet.defer import TimeoutError as DeferredTimeout

    if isinstance(e, DeferredTimeout):
        return "no answer within the timeout"
    text = str(e) or type(e).__name__
    return f"{type(e).__name__}: {text}"[:500]
