"""Database connections kept in threads of their own, one transaction per call.

C{await backend.transact(fn, *args)} runs C{fn(cursor, *args)} in a thread,
inside a transaction that commits when C{fn} returns and rolls back when it
raises. SQLite gets one thread (its one writer) and one connection, in WAL
mode, each transaction C{BEGIN IMMEDIATE} (it takes the write lock at once, so
transactions of several processes on one file serialise instead of failing on
upgrade). PostgreSQL gets a few threads, each with its own connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class _Threads:
    """A thread pool of the backend's own, started at once, stopped by L{close}."""

    dialect = ""
    param = "?"

    def __init__(self, reactor: Any, threads: int, name: str) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name=name)
        self._pool.start()
        self._closed = False
        # (the pool's threads are not daemons: a store never closed must not keep
        # the process alive after the reactor stopped)
        self._trigger = reactor.addSystemEventTrigger("during", "shutdown", self._at_shutdown)

    async def transact(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise RuntimeError("the store is closed")
        result: T = await deferToThreadPool(
            self._reactor, self._pool, self._in_transaction, fn, *args
        )
        return result

    def _in_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reactor.removeSystemEventTrigger(self._trigger)
        # (stop() joins the threads: do it in a thread of the reactor's own pool)
        await deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._stop)

    def _at_shutdown(self) -> None:
        if not self._closed:
            self._closed = True
            self._stop()

    def _stop(self) -> None:
        self._pool.stop()
        self._close_connections()

    def _close_connections(self) -> None:
        raise NotImplementedError


class SqliteBackend(_Threads):
    """One SQLite file, one writer thread."""

    dialect = "sqlite"
    param = "?"

    def __init__(self, path: str, reactor: Any) -> None:
        super().__init__(reactor, 1, "ion-gateway-sqlite")
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            # (isolation_level=None: transactions are this module's BEGIN/COMMIT)
            conn = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=30.0
            )
            _wal(conn)
            # (FULL: a committed outbox row survives a power cut, not only a crash)
            conn.execute("PRAGMA synchronous=FULL")
            self._conn = conn
        return self._conn

    def _in_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._connection()
        cursor = conn.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            result = fn(cursor, *args)
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return result

    def _close_connections(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class PostgresBackend(_Threads):
    """A PostgreSQL database (psycopg 3), a connection per thread."""

    dialect = "postgresql"
    param = "%s"

    def __init__(
        self, url: str, reactor: Any, *, schema: str | None = None, threads: int = 4
    ) -> None:
        super().__init__(reactor, threads, "ion-gateway-postgresql")
        self.url = url
        self.schema = schema
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:  # (a lost server: connect again)
            import psycopg
            from psycopg import sql

            conn = psycopg.connect(self.url, autocommit=True)
            if self.schema is not None:
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _in_transaction(self, fn: Callable[..., T], *args: Any) -> T:
        conn = self._connection()
        with conn.transaction(), conn.cursor() as cursor:
            return fn(cursor, *args)

    def _close_connections(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _wal(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """Put C{conn}'s database in WAL mode. Another connection opening the same
    new file at that moment makes SQLite answer "database is locked" at once,
    without its busy handler, so it is tried again (in the store's thread,
    never the reactor's) until C{patience} seconds have passed."""
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
