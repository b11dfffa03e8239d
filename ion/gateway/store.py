"""The gateway's durable state: subscriptions, sightings and the delivery outbox.

L{Store} is what the gateway's parts ask of the database; L{open_store} opens
the one C{gateway.database} names: SQLite (a file under C{gateway.data_dir})
when it is None, else PostgreSQL. Both are L{ion.gateway.sqlstore.SqlStore}s:
the same SQL, run in threads so nothing blocks the reactor.

Deliveries that were delivered stay in the outbox (with C{delivered_at}) so a
redelivered event is not enqueued twice (C{enqueue} is idempotent on the
event's key and the subscription), and sightings stay so a duplicate CloudEvent
is accepted once; C{prune(before)} forgets both once older than a retention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from ion.core.exception import IonError
from ion.gateway.config import GatewayConfig


class LeaseLost(IonError):
    """A write made on a lease's behalf found the lease held by another owner (or by none)."""


@dataclass(frozen=True)
class Subscription:
    """What the matcher needs of a subscription."""

    uuid: str
    user: str
    name: str
    jsonpath: str
    target_url: str
    auth: dict[str, Any] | None
    disabled: bool
    error: str | None
    extensions: dict[str, Any] | None = None  # (Pacifica merges them into the posted event)


@dataclass(frozen=True)
class Delivery:
    """One event to post to one subscription's target."""

    id: str  # stable delivery id (uuid4 hex), sent as header Ion-Delivery-Id
    subscription: str  # subscription uuid
    seq: int  # order within the subscription (outbox row id)
    event: dict[str, Any]  # the CloudEvent, whole
    target_url: str
    auth: dict[str, Any] | None
    attempts: int
    extensions: dict[str, Any] | None = None  # the subscription's, for the posted event


# The fields a user gives (and may change) in Pacifica's API, and their defaults.
USER_FIELDS = (
    "name",
    "jsonpath",
    "target_url",
    "auth",
    "extensions",
    "version",
    "disabled",
    "error",
)


@dataclass(frozen=True)
class SubscriptionRecord:
    """A subscription as stored: Pacifica's fields (times in seconds since the epoch)."""

    uuid: str
    name: str
    user: str
    jsonpath: str
    target_url: str
    auth: dict[str, Any]
    extensions: dict[str, Any]
    version: str
    created: float
    updated: float
    deleted: float | None
    disabled: float | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """Pacifica's JSON shape: times as ISO 8601 (UTC), absent ones null."""
        return {
            "uuid": self.uuid,
            "name": self.name,
            "user": self.user,
            "jsonpath": self.jsonpath,
            "target_url": self.target_url,
            "auth": self.auth,
            "extensions": self.extensions,
            "version": self.version,
            "created": iso(self.created),
            "updated": iso(self.updated),
            "deleted": iso(self.deleted),
            "disabled": iso(self.disabled),
            "error": self.error,
        }

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> SubscriptionRecord:
        """From a row of L{RECORD_COLUMNS}."""
        (uuid, name, user, jsonpath, target_url, auth, extensions, version) = row[:8]
        created, updated, deleted, disabled, error = row[8:]
        return cls(
            uuid,
            name,
            user,
            jsonpath,
            target_url,
            json.loads(auth),
            json.loads(extensions),
            version,
            created,
            updated,
            deleted,
            disabled,
            error,
        )


RECORD_COLUMNS = (
    'uuid, name, "user", jsonpath, target_url, auth, extensions, version, '
    "created, updated, deleted, disabled, error"
)


def iso(seconds: float | None) -> str | None:
    """C{seconds} since the epoch as an RFC 3339 time in UTC, or None."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat()


class Store(Protocol):
    """The gateway's database (see the module docstring)."""

    async def close(self) -> None: ...

    # subscriptions, for the /eventmatch API
    async def create_subscription(self, user: str, fields: dict[str, Any]) -> SubscriptionRecord:
        """A new subscription of C{user} with C{fields} (L{USER_FIELDS}; defaults for the rest)."""
        ...

    async def get_subscription(self, uuid: str) -> SubscriptionRecord | None:
        """The subscription C{uuid}, deleted or not; None if there is none."""
        ...

    async def list_subscriptions(self, user: str) -> list[SubscriptionRecord]:
        """C{user}'s subscriptions that are not deleted, oldest first."""
        ...

    async def update_subscription(
        self, uuid: str, changes: dict[str, Any]
    ) -> SubscriptionRecord | None:
        """Apply C{changes} (L{USER_FIELDS}) to a live subscription; None if deleted or absent.
        Clearing C{error} also unparks its deliveries (as L{retry_parked})."""
        ...

    async def delete_subscription(self, uuid: str) -> bool:
        """Mark a live subscription deleted; False if deleted or absent."""
        ...

    # for the matcher and the delivery worker
    async def active_subscriptions(self) -> list[Subscription]: ...
    async def changed(self) -> int: ...
    async def seen(self, source: str, event_id: str) -> bool: ...
    async def first_sighting(self, source: str, event_id: str) -> bool: ...
    async def enqueue(
        self,
        event_key: str,
        event: dict[str, Any],
        subscriptions: list[str],
        holder: tuple[str, str] | None = None,
    ) -> int:
        """One delivery per subscription, in one transaction; idempotent on (event_key,
        subscription); how many are new. With C{holder} (lease name, owner) it commits
        only if that lease is still the owner's, else raises L{LeaseLost}."""
        ...

    # leases: one holder of a name at a time, for a time
    async def hold(self, name: str, owner: str, now: float, ttl: float) -> bool:
        """Take the lease C{name} for C{owner} until C{now + ttl} if it is free, expired
        or already C{owner}'s (then extend it); whether C{owner} holds it now."""
        ...

    async def release(self, name: str, owner: str) -> None:
        """Give up the lease C{name} if C{owner} holds it."""
        ...

    async def claim(self, worker: str, now: float, lease: float, limit: int) -> list[Delivery]: ...
    async def delivered(self, delivery_id: str, worker: str) -> None: ...
    async def failed(
        self, delivery_id: str, worker: str, error: str, retry_at: float | None
    ) -> None: ...
    async def retry_parked(self, subscription: str) -> int: ...
    async def prune(self, before: float) -> int:
        """Forget delivered deliveries and sightings older than C{before} (seconds)."""
        ...


async def open_store(
    config: GatewayConfig, reactor: Any, *, clock: Any = None, schema: str | None = None
) -> Store:
    """Open (creating and migrating as needed) the store C{config} names.

    @param clock: what stamps created/updated/enqueued times (C{seconds()});
        None: the reactor.
    @param schema: PostgreSQL only: the schema to use (which must exist);
        None: the connection's default search path.
    """
    from ion.gateway.dbthreads import PostgresBackend, SqliteBackend
    from ion.gateway.sqlstore import SqlStore

    if config.database is None:
        backend: Any = SqliteBackend(config.sqlite_path, reactor)
    else:
        backend = PostgresBackend(config.database, reactor, schema=schema)
    return await SqlStore.open(backend, clock if clock is not None else reactor)
