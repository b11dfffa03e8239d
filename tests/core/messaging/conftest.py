"""Fixtures for the broker conformance suite: every test runs once per broker kind.

To add a broker: append its kind to C{BROKER_KINDS} (a C{pytest.param} with a
mark if it needs a server) and a branch to L{_connection_factory}.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from uuid import uuid4

import pytest
import pytest_twisted

from ion.core.messaging.broker import IBroker

BROKER_KINDS = ["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)]


def _connection_factory(kind: str) -> Callable[[], IBroker]:
    """A callable returning a new, unconnected connection; all share one broker per test."""
    if kind == "embedded":
        from twisted.internet import reactor

        from ion.core.messaging.embedded import EmbeddedBroker

        return EmbeddedBroker(reactor).connection
    if kind == "rabbitmq":
        from twisted.internet import reactor

        from ion.core.messaging.amqp import AmqpBroker
        from tests.rabbit import URL, require_rabbitmq

        require_rabbitmq()
        return lambda: AmqpBroker(reactor, URL)
    raise ValueError(f"unknown broker kind {kind!r}")


class Names:
    """Unique names for one test: C{names("q")} is C{"<prefix>.q"}, remembered for cleanup."""

    def __init__(self) -> None:
        self.prefix = f"conf.{uuid4().hex[:8]}"
        self.made: list[str] = []

    def __call__(self, suffix: str) -> str:
        name = f"{self.prefix}.{suffix}"
        self.made.append(name)
        return name


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """The kind of broker the test runs against."""
    return request.param


@pytest.fixture
def names() -> Names:
    """A per-test name factory; every exchange and queue a test declares comes from it."""
    return Names()


@pytest_twisted.async_yield_fixture
async def connect(
    broker_kind: str, names: Names
) -> AsyncIterator[Callable[[], Awaitable[IBroker]]]:
    """C{await connect()} gives a connected L{IBroker}; all are closed at teardown."""
    factory = _connection_factory(broker_kind)
    opened: list[IBroker] = []

    async def _connect() -> IBroker:
        conn = factory()
        await conn.connect()
        opened.append(conn)
        return conn

    yield _connect

    for conn in opened:
        await conn.close()
    # Delete whatever the test declared, so tests on a shared broker leave nothing behind.
    cleaner = await _connect()
    for name in names.made:
        for delete in (cleaner.delete_queue, cleaner.delete_exchange):
            try:
                await delete(name)
            except Exception:
                pass
    await cleaner.close()
