"""Fakes for the gateway's tests: a request, a Store that keeps to the Protocol in memory."""

from __future__ import annotations

import io
import uuid as uuidlib
from dataclasses import dataclass, field, replace
from typing import Any

from twisted.web.http_headers import Headers

from ion.gateway.store import Delivery, LeaseLost, Subscription


class FakeRequest:
    """Just what the gateway's parsers read of a twisted.web request."""

    def __init__(
        self, body: bytes = b"", headers: dict[str, str] | None = None, method: bytes = b"POST"
    ) -> None:
        self.method = method
        self.content = io.BytesIO(body)
        self.requestHeaders = Headers()
        for name, value in (headers or {}).items():
            self.requestHeaders.addRawHeader(name.encode(), value.encode())

    def getHeader(self, name: bytes) -> bytes | None:
        values = self.requestHeaders.getRawHeaders(name)
        return values[-1] if values else None


@dataclass
class _Row:
    id: str
    seq: int
    subscription: str
    event_key: str
    event: dict
    attempts: int = 0
    next_attempt: float = 0.0
    delivered: bool = False
    parked: bool = False
    lease_worker: str | None = None
    lease_until: float = 0.0
    errors: list[str] = field(default_factory=list)


class FakeStore:
    """The Store Protocol in memory, with the claim rule of the real ones."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.counter = 0
        self.sightings: set[tuple[str, str]] = set()
        self.rows: list[_Row] = []
        self.fail_enqueue = 0  # enqueue raises this many more times
        self.leases: dict[str, tuple[str, float]] = {}  # name -> (owner, until)
        self.calls: list[str] = []

    # --- test set-up ----------------------------------------------------------------------
    def add_subscription(self, jsonpath: str, target_url: str = "http://t.example/",
                         auth: dict | None = None, name: str = "s") -> Subscription:  # fmt: skip
        sub = Subscription(uuidlib.uuid4().hex, "alice", name, jsonpath, target_url, auth,
                           False, None)  # fmt: skip
        self.subscriptions[sub.uuid] = sub
        self.counter += 1
        return sub

    def set_subscription(self, uuid: str, **changes: Any) -> None:
        self.subscriptions[uuid] = replace(self.subscriptions[uuid], **changes)
        self.counter += 1

    # --- the Protocol ---------------------------------------------------------------------
    async def close(self) -> None:
        pass

    async def active_subscriptions(self) -> list[Subscription]:
        self.calls.append("active_subscriptions")
        return [s for s in self.subscriptions.values() if not s.disabled]

    async def changed(self) -> int:
        return self.counter

    async def first_sighting(self, source: str, event_id: str) -> bool:
        if (source, event_id) in self.sightings:
            return False
        self.sightings.add((source, event_id))
        return True

    async def seen(self, source: str, event_id: str) -> bool:
        return (source, event_id) in self.sightings

    async def prune(self, before: float) -> int:
        return 0  # (no clock here: it keeps everything; the real stores' prune: test_store)

    async def enqueue(self, event_key: str, event: dict, subscriptions: list[str],
                      holder: tuple[str, str] | None = None) -> int:  # fmt: skip
        if self.fail_enqueue:
            self.fail_enqueue -= 1
            raise RuntimeError("database is down")
        if holder is not None and self.leases.get(holder[0], (None,))[0] != holder[1]:
            raise LeaseLost(f"lease {holder[0]!r} is not {holder[1]}'s")
        new = 0
        for sub in subscriptions:
            if any(r.event_key == event_key and r.subscription == sub for r in self.rows):
                continue
            self.rows.append(_Row(uuidlib.uuid4().hex, len(self.rows) + 1, sub, event_key,
                                  event))  # fmt: skip
            new += 1
        return new

    async def hold(self, name: str, owner: str, now: float, ttl: float) -> bool:
        held = self.leases.get(name)
        if held is not None and held[0] != owner and held[1] > now:
            return False
        self.leases[name] = (owner, now + ttl)
        return True

    async def release(self, name: str, owner: str) -> None:
        if self.leases.get(name, (None,))[0] == owner:
            del self.leases[name]

    async def claim(self, worker: str, now: float, lease: float, limit: int) -> list[Delivery]:
        out = []
        for sub_id in {r.subscription for r in self.rows}:
            sub = self.subscriptions.get(sub_id)
            if sub is None or sub.disabled or sub.error:
                continue
            pending = [r for r in self.rows
                       if r.subscription == sub_id and not r.delivered and not r.parked]  # fmt: skip
            if not pending:
                continue
            row = min(pending, key=lambda r: r.seq)
            if row.next_attempt > now:
                continue
            if row.lease_worker is not None and row.lease_until > now:
                continue  # leased (to any worker, this one too), as the SQL stores do
            out.append(row)
        out.sort(key=lambda r: r.seq)
        out = out[:limit]
        for row in out:
            row.lease_worker, row.lease_until = worker, now + lease
        return [self._delivery(r) for r in out]

    def _delivery(self, row: _Row) -> Delivery:
        sub = self.subscriptions[row.subscription]
        return Delivery(row.id, row.subscription, row.seq, row.event, sub.target_url, sub.auth,
                        row.attempts)  # fmt: skip

    def _row(self, delivery_id: str, worker: str) -> _Row:
        row = next(r for r in self.rows if r.id == delivery_id)
        assert row.lease_worker == worker, "settled by a worker that does not hold the lease"
        return row

    async def delivered(self, delivery_id: str, worker: str) -> None:
        row = self._row(delivery_id, worker)
        row.delivered, row.lease_worker = True, None

    async def failed(self, delivery_id: str, worker: str, error: str,
                     retry_at: float | None) -> None:  # fmt: skip
        row = self._row(delivery_id, worker)
        row.attempts += 1
        row.errors.append(error)
        row.lease_worker = None
        if retry_at is None:
            row.parked = True
            self.subscriptions[row.subscription] = replace(
                self.subscriptions[row.subscription], error=error
            )
        else:
            row.next_attempt = retry_at

    async def retry_parked(self, subscription: str) -> int:
        rows = [r for r in self.rows if r.subscription == subscription and r.parked]
        for r in rows:
            r.parked, r.next_attempt = False, 0.0
        self.subscriptions[subscription] = replace(self.subscriptions[subscription], error=None)
        return len(rows)
