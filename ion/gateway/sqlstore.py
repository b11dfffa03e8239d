"""The L{ion.gateway.store.Store} in SQL, one text for SQLite and PostgreSQL.

Every method is one transaction run by a backend of L{ion.gateway.dbthreads}
in its own threads. Statements are written with C{?} placeholders and
rewritten for PostgreSQL's C{%s}.

How L{SqlStore.claim} keeps order and hands a delivery to one worker only:
for each subscription that is live (not deleted, not disabled, no error) it
takes the subscription's oldest pending (undelivered, unparked) delivery, and
only if it is due and not leased; it then leases what it took to the worker
until C{now + lease}. A subscription's next delivery is never taken while its
head is pending, so a subscription's deliveries go out one at a time, in
order. Claims of several processes exclude each other: SQLite's write lock
(C{BEGIN IMMEDIATE}) serialises them; on PostgreSQL the head rows are locked
C{FOR UPDATE SKIP LOCKED}, and a head leased or delivered meanwhile fails the
recheck PostgreSQL makes on a locked row. A worker that dies leaves its leases
to expire; the deliveries are then claimed again (at least once).

Named leases (L{SqlStore.hold}) are one upsert that takes or extends the row
only when it is free, expired or the owner's own, so two owners racing for it
cannot both win. An C{enqueue} made for a lease's holder first reads the lease
row locked (PostgreSQL: C{FOR SHARE}, which a taker's upsert waits for; SQLite:
the write lock): a holder that lost its lease cannot write after the new one.
"""

from __future__ import annotations

import json
import uuid as uuidlib
from collections.abc import Callable
from typing import Any, TypeVar

from ion.gateway import migrations
from ion.gateway.store import (
    RECORD_COLUMNS,
    USER_FIELDS,
    Delivery,
    LeaseLost,
    Subscription,
    SubscriptionRecord,
)

T = TypeVar("T")

_LIVE = "s.deleted IS NULL AND s.disabled IS NULL AND s.error IS NULL"


class SqlStore:
    """A L{ion.gateway.store.Store} over a backend of L{ion.gateway.dbthreads}."""

    def __init__(self, backend: Any, clock: Any) -> None:
        self._backend = backend
        self._clock = clock
        self._pg = backend.dialect == "postgresql"

    @classmethod
    async def open(cls, backend: Any, clock: Any) -> SqlStore:
        """A store on C{backend}, its schema migrated to the current version."""
        store = cls(backend, clock)
        try:
            await store._run(store._migrate)
        except BaseException:
            await backend.close()
            raise
        return store

    async def close(self) -> None:
        await self._backend.close()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._backend.transact(fn, *args)

    def _sql(self, text: str) -> str:
        return text.replace("?", "%s") if self._pg else text

    def _x(self, cursor: Any, text: str, params: tuple[Any, ...] = ()) -> Any:
        cursor.execute(self._sql(text), params)
        return cursor

    def _migrate(self, cursor: Any) -> int:
        if self._pg:
            # (two instances opening at once: the second waits, then finds it done)
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('ion.gateway.schema:' || current_schema()))"
            )
        return migrations.migrate(cursor, self._backend.dialect, self._backend.param)

    def _bump(self, cursor: Any) -> None:
        self._x(cursor, "UPDATE changes SET counter = counter + 1 WHERE id = 1")

    # --- subscriptions (the /eventmatch API) ---------------------------------------

    async def create_subscription(self, user: str, fields: dict[str, Any]) -> SubscriptionRecord:
        now = self._clock.seconds()
        values = {
            "auth": {},
            "extensions": {},
            "version": "v0.1",
            "disabled": None,
            "error": None,
            **{k: v for k, v in fields.items() if k in USER_FIELDS},
        }
        record = SubscriptionRecord(
            uuid=str(uuidlib.uuid4()),
            name=values["name"],
            user=user,
            jsonpath=values["jsonpath"],
            target_url=values["target_url"],
            auth=values["auth"],
            extensions=values["extensions"],
            version=values["version"],
            created=now,
            updated=now,
            deleted=None,
            disabled=values["disabled"],
            error=values["error"],
        )
        await self._run(self._insert, record)
        return record

    def _insert(self, cursor: Any, r: SubscriptionRecord) -> None:
        self._x(
            cursor,
            f"INSERT INTO subscriptions ({RECORD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                r.uuid,
                r.name,
                r.user,
                r.jsonpath,
                r.target_url,
                json.dumps(r.auth),
                json.dumps(r.extensions),
                r.version,
                r.created,
                r.updated,
                r.deleted,
                r.disabled,
                r.error,
            ),
        )
        self._bump(cursor)

    async def get_subscription(self, uuid: str) -> SubscriptionRecord | None:
        return await self._run(self._get, uuid)

    def _get(self, cursor: Any, uuid: str) -> SubscriptionRecord | None:
        row = self._x(
            cursor, f"SELECT {RECORD_COLUMNS} FROM subscriptions WHERE uuid = ?", (uuid,)
        ).fetchone()
        return SubscriptionRecord.from_row(row) if row else None

    async def list_subscriptions(self, user: str) -> list[SubscriptionRecord]:
        return await self._run(self._list, user)

    def _list(self, cursor: Any, user: str) -> list[SubscriptionRecord]:
        rows = self._x(
            cursor,
            f'SELECT {RECORD_COLUMNS} FROM subscriptions WHERE "user" = ? AND deleted IS NULL '
            "ORDER BY created, uuid",
            (user,),
        ).fetchall()
        return [SubscriptionRecord.from_row(r) for r in rows]

    async def update_subscription(
        self, uuid: str, changes: dict[str, Any]
    ) -> SubscriptionRecord | None:
        return await self._run(self._update, uuid, changes, self._clock.seconds())

    def _update(
        self, cursor: Any, uuid: str, changes: dict[str, Any], now: float
    ) -> SubscriptionRecord | None:
        current = self._get(cursor, uuid)
        if current is None or current.deleted is not None:
            return None
        sets, params = ["updated = ?"], [now]
        for key in USER_FIELDS:
            if key in changes:
                value = changes[key]
                if key in ("auth", "extensions"):
                    value = json.dumps(value)
                sets.append(f"{key} = ?")
                params.append(value)
        self._x(
            cursor, f"UPDATE subscriptions SET {', '.join(sets)} WHERE uuid = ?", (*params, uuid)
        )
        if "error" in changes and changes["error"] is None:
            self._unpark(cursor, uuid)
        self._bump(cursor)
        return self._get(cursor, uuid)

    async def delete_subscription(self, uuid: str) -> bool:
        return await self._run(self._delete, uuid, self._clock.seconds())

    def _delete(self, cursor: Any, uuid: str, now: float) -> bool:
        done = self._x(
            cursor,
            "UPDATE subscriptions SET deleted = ?, updated = ? WHERE uuid = ? AND deleted IS NULL",
            (now, now, uuid),
        ).rowcount
        if done:
            self._bump(cursor)
        return bool(done)

    # --- the matcher ------------------------------------------------------------------

    async def active_subscriptions(self) -> list[Subscription]:
        return await self._run(self._active)

    def _active(self, cursor: Any) -> list[Subscription]:
        rows = self._x(
            cursor,
            'SELECT uuid, "user", name, jsonpath, target_url, auth, disabled, error, extensions '
            "FROM subscriptions WHERE deleted IS NULL AND disabled IS NULL ORDER BY created, uuid",
        ).fetchall()
        return [
            Subscription(
                u,
                user,
                n,
                jp,
                url,
                json.loads(auth) or None,
                d is not None,
                e,
                json.loads(x) or None,
            )
            for (u, user, n, jp, url, auth, d, e, x) in rows
        ]

    async def changed(self) -> int:
        return await self._run(self._changed)

    def _changed(self, cursor: Any) -> int:
        return int(self._x(cursor, "SELECT counter FROM changes WHERE id = 1").fetchone()[0])

    async def first_sighting(self, source: str, event_id: str) -> bool:
        return await self._run(self._sight, source, event_id, self._clock.seconds())

    def _sight(self, cursor: Any, source: str, event_id: str, now: float) -> bool:
        return (
            self._x(
                cursor,
                "INSERT INTO sightings (source, event_id, seen) VALUES (?, ?, ?) "
                "ON CONFLICT (source, event_id) DO NOTHING",
                (source, event_id, now),
            ).rowcount
            == 1
        )

    async def seen(self, source: str, event_id: str) -> bool:
        return await self._run(self._seen, source, event_id)

    def _seen(self, cursor: Any, source: str, event_id: str) -> bool:
        query = "SELECT 1 FROM sightings WHERE source = ? AND event_id = ?"
        return self._x(cursor, query, (source, event_id)).fetchone() is not None

    async def enqueue(
        self,
        event_key: str,
        event: dict[str, Any],
        subscriptions: list[str],
        holder: tuple[str, str] | None = None,
    ) -> int:
        if not subscriptions:
            return 0
        text = json.dumps(event, separators=(",", ":"))
        now = self._clock.seconds()
        return await self._run(self._enqueue, event_key, text, subscriptions, now, holder)

    def _enqueue(
        self,
        cursor: Any,
        event_key: str,
        text: str,
        subscriptions: list[str],
        now: float,
        holder: tuple[str, str] | None,
    ) -> int:
        if holder is not None:
            self._check_holder(cursor, *holder)
        added = 0
        for sub in dict.fromkeys(subscriptions):  # (once each, in the order given)
            added += self._x(
                cursor,
                "INSERT INTO outbox (id, subscription, event_key, event, enqueued, next_attempt) "
                "VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (event_key, subscription) DO NOTHING",
                (uuidlib.uuid4().hex, sub, event_key, text, now),
            ).rowcount
        return added

    # --- leases ----------------------------------------------------------------------

    async def hold(self, name: str, owner: str, now: float, ttl: float) -> bool:
        return await self._run(self._hold, name, owner, now, ttl)

    def _hold(self, cursor: Any, name: str, owner: str, now: float, ttl: float) -> bool:
        row = self._x(
            cursor,
            "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until "
            "WHERE leases.owner = excluded.owner OR leases.until <= ? RETURNING owner",
            (name, owner, now + ttl, now),
        ).fetchone()
        return row is not None

    async def release(self, name: str, owner: str) -> None:
        await self._run(self._release, name, owner)

    def _release(self, cursor: Any, name: str, owner: str) -> None:
        self._x(cursor, "DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

    def _check_holder(self, cursor: Any, name: str, owner: str) -> None:
        # Held by its owner, expired or not: only a taker's write ends it, and the
        # lock makes that write wait for this transaction (or this one see it).
        lock = " FOR SHARE" if self._pg else ""
        row = self._x(cursor, f"SELECT owner FROM leases WHERE name = ?{lock}", (name,)).fetchone()
        if row is None or row[0] != owner:
            holder = "no one" if row is None else "another owner"
            raise LeaseLost(f"lease {name!r} is held by {holder}, not by {owner}")

    # --- the delivery worker ------------------------------------------------------

    async def claim(self, worker: str, now: float, lease: float, limit: int) -> list[Delivery]:
        return await self._run(self._claim, worker, now, lease, limit)

    def _claim(
        self, cursor: Any, worker: str, now: float, lease: float, limit: int
    ) -> list[Delivery]:
        lock = " FOR UPDATE OF o SKIP LOCKED" if self._pg else ""
        rows = self._x(
            cursor,
            "SELECT o.id, o.subscription, o.seq, o.event, s.target_url, s.auth, o.attempts, "
            "s.extensions "
            "FROM subscriptions s JOIN outbox o ON o.seq = ("
            "  SELECT MIN(h.seq) FROM outbox h WHERE h.subscription = s.uuid"
            "  AND h.delivered_at IS NULL AND h.parked = 0) "
            f"WHERE {_LIVE} AND o.delivered_at IS NULL AND o.parked = 0 "
            "AND o.next_attempt <= ? AND (o.lease_until IS NULL OR o.lease_until <= ?) "
            f"ORDER BY o.seq LIMIT ?{lock}",
            (now, now, limit),
        ).fetchall()
        for row in rows:
            self._x(
                cursor,
                "UPDATE outbox SET lease_owner = ?, lease_until = ? WHERE id = ?",
                (worker, now + lease, row[0]),
            )
        return [
            Delivery(
                i, sub, seq, json.loads(ev), url, json.loads(auth) or None, n, json.loads(x) or None
            )
            for (i, sub, seq, ev, url, auth, n, x) in rows
        ]

    async def delivered(self, delivery_id: str, worker: str) -> None:
        await self._run(self._delivered, delivery_id, self._clock.seconds())

    def _delivered(self, cursor: Any, delivery_id: str, now: float) -> None:
        # (whoever holds the lease now: the target has it, so no one posts it again)
        self._x(
            cursor,
            "UPDATE outbox SET delivered_at = ?, attempts = attempts + 1, lease_owner = NULL, "
            "lease_until = NULL, last_error = NULL WHERE id = ? AND delivered_at IS NULL",
            (now, delivery_id),
        )

    async def failed(
        self, delivery_id: str, worker: str, error: str, retry_at: float | None
    ) -> None:
        await self._run(self._failed, delivery_id, worker, error, retry_at)

    def _failed(
        self, cursor: Any, delivery_id: str, worker: str, error: str, retry_at: float | None
    ) -> None:
        where = "WHERE id = ? AND lease_owner = ? AND delivered_at IS NULL"
        if retry_at is not None:
            self._x(
                cursor,
                "UPDATE outbox SET attempts = attempts + 1, lease_owner = NULL, lease_until = NULL,"
                f" last_error = ?, next_attempt = ? {where}",
                (error, retry_at, delivery_id, worker),
            )
            return
        row = self._x(
            cursor,
            "UPDATE outbox SET attempts = attempts + 1, lease_owner = NULL, lease_until = NULL,"
            f" last_error = ?, parked = 1 {where} RETURNING subscription",
            (error, delivery_id, worker),
        ).fetchone()
        if row is not None:
            self._x(cursor, "UPDATE subscriptions SET error = ? WHERE uuid = ?", (error, row[0]))
            self._bump(cursor)

    async def retry_parked(self, subscription: str) -> int:
        return await self._run(self._retry, subscription)

    def _retry(self, cursor: Any, subscription: str) -> int:
        count = self._unpark(cursor, subscription)
        self._bump(cursor)
        return count

    async def prune(self, before: float) -> int:
        """Forget deliveries delivered and sightings seen before C{before}; how many rows.

        After this an event seen again is accepted and delivered again: call it
        with a retention longer than any redelivery (days, not seconds).
        """
        return await self._run(self._prune, before)

    def _prune(self, cursor: Any, before: float) -> int:
        done = self._x(
            cursor,
            "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
            (before,),
        ).rowcount
        done += self._x(cursor, "DELETE FROM sightings WHERE seen < ?", (before,)).rowcount
        return int(done)

    def _unpark(self, cursor: Any, subscription: str) -> int:
        count = self._x(
            cursor,
            "UPDATE outbox SET parked = 0, attempts = 0, next_attempt = 0, lease_owner = NULL, "
            "lease_until = NULL WHERE subscription = ? AND parked = 1 AND delivered_at IS NULL",
            (subscription,),
        ).rowcount
        self._x(cursor, "UPDATE subscriptions SET error = NULL WHERE uuid = ?", (subscription,))
        return int(count)
