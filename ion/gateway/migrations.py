"""The gateway store's schema, as numbered migrations applied in order.

C{schema_version} holds the number of the last migration applied. Opening a
store applies the missing ones in one transaction, holding a lock so that two
instances opening one database at once do not both migrate: SQLite's write
lock (C{BEGIN IMMEDIATE}), PostgreSQL's transaction-scoped advisory lock on the
schema's name. A database newer than this code is refused.

A migration is a list of statements written once for both backends: the
types used (TEXT, INTEGER, BIGINT, DOUBLE PRECISION) mean the same in both;
C{{serial}} is the one spelling that differs (the outbox's ordered id).
Times are seconds since the epoch (UTC); JSON columns hold JSON text.
"""

from __future__ import annotations

from typing import Any

from ion.core.exception import StartupError

SERIAL = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
}

MIGRATIONS: list[list[str]] = [
    # 1: subscriptions (Pacifica's fields), sightings, the outbox, the change counter
    [
        """CREATE TABLE subscriptions (
            uuid TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            "user" TEXT NOT NULL,
            jsonpath TEXT NOT NULL,
            target_url TEXT NOT NULL,
            auth TEXT NOT NULL DEFAULT '{{}}',
            extensions TEXT NOT NULL DEFAULT '{{}}',
            version TEXT NOT NULL DEFAULT 'v0.1',
            created DOUBLE PRECISION NOT NULL,
            updated DOUBLE PRECISION NOT NULL,
            deleted DOUBLE PRECISION,
            disabled DOUBLE PRECISION,
            error TEXT
        )""",
        'CREATE INDEX subscriptions_user ON subscriptions ("user", created)',
        """CREATE TABLE sightings (
            source TEXT NOT NULL,
            event_id TEXT NOT NULL,
            seen DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (source, event_id)
        )""",
        """CREATE TABLE outbox (
            seq {serial},
            id TEXT NOT NULL UNIQUE,
            subscription TEXT NOT NULL,
            event_key TEXT NOT NULL,
            event TEXT NOT NULL,
            enqueued DOUBLE PRECISION NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt DOUBLE PRECISION NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_until DOUBLE PRECISION,
            parked INTEGER NOT NULL DEFAULT 0,
            delivered_at DOUBLE PRECISION,
            last_error TEXT,
            UNIQUE (event_key, subscription)
        )""",
        # (claim's question: each subscription's oldest pending delivery)
        """CREATE INDEX outbox_pending ON outbox (subscription, seq)
            WHERE delivered_at IS NULL AND parked = 0""",
        "CREATE TABLE changes (id INTEGER PRIMARY KEY, counter BIGINT NOT NULL)",
        "INSERT INTO changes (id, counter) VALUES (1, 0)",
    ],
    # 2: named leases (the one gateway that matches holds "matcher")
    [
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            until DOUBLE PRECISION NOT NULL
        )""",
    ],
]

VERSION = len(MIGRATIONS)


def statements(dialect: str, number: int) -> list[str]:
    """The statements of migration C{number} (1-based) for C{dialect}."""
    return [s.format(serial=SERIAL[dialect]) for s in MIGRATIONS[number - 1]]


def migrate(cursor: Any, dialect: str, param: str) -> int:
    """Bring the schema up to L{VERSION} inside the caller's transaction (locked).

    @return: the version found before.
    @raise StartupError: the database's schema is newer than this code.
    """
    cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    cursor.execute("SELECT version FROM schema_version")
    row = cursor.fetchone()
    found = row[0] if row else 0
    if found > VERSION:
        raise StartupError(
            f"the gateway database has schema version {found}; this ion knows up to {VERSION}"
        )
    for number in range(found + 1, VERSION + 1):
        for sql in statements(dialect, number):
            cursor.execute(sql)
    if row is None:
        cursor.execute(f"INSERT INTO schema_version (version) VALUES ({param})", (VERSION,))
    elif found != VERSION:
        cursor.execute(f"UPDATE schema_version SET version = {param}", (VERSION,))
    return found
