"""Gateway stores for tests: SQLite in a temporary directory, PostgreSQL in a schema of its own.

PostgreSQL is the one at 127.0.0.1:5432 (trust auth, database C{test}); when
it is not there the PostgreSQL tests skip, or fail when C{CI} is set.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from ion.gateway.config import GatewayConfig
from ion.gateway.store import Store, open_store

POSTGRES_URL = os.environ.get("ION_TEST_POSTGRES", "postgresql://127.0.0.1:5432/test")


def require_postgres() -> None:
    """Skip the test when PostgreSQL is not reachable; fail it instead when C{CI} is set."""
    try:
        import psycopg

        psycopg.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as e:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is not available and CI is set: {e}")
        pytest.skip(
            f"PostgreSQL at {POSTGRES_URL} is not available: {e} (set CI=1 to fail instead)"
        )


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql)


class StoreMaker:
    """C{await make()} opens a store on this test's database (again: another instance)."""

    def __init__(self, kind: str, tmp_path: Any) -> None:
        self.kind = kind
        self.opened: list[Store] = []
        self.schema: str | None = None
        if kind == "sqlite":
            self.config = GatewayConfig(data_dir=str(tmp_path / "data"))
        else:
            require_postgres()
            self.schema = "gw_test_" + uuid.uuid4().hex[:12]
            _admin(f'CREATE SCHEMA "{self.schema}"')
            self.config = GatewayConfig(database=POSTGRES_URL)

    async def __call__(self, clock: Any = None) -> Store:
        store = await open_store(self.config, reactor, clock=clock, schema=self.schema)
        self.opened.append(store)
        return store

    async def cleanup(self) -> None:
        for store in self.opened:
            await store.close()
        if self.schema is not None:
            _admin(f'DROP SCHEMA "{self.schema}" CASCADE')


@pytest_twisted.async_yield_fixture(params=["sqlite", "postgresql"])
async def make_store(request: Any, tmp_path: Any) -> AsyncIterator[Callable[..., Awaitable[Store]]]:
    """C{await make_store(clock=None)}: a store on SQLite, then on PostgreSQL."""
    maker = StoreMaker(request.param, tmp_path)
    try:
        yield maker
    finally:
        await maker.cleanup()
