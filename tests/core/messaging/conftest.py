"""Fixtures for the broker conformance suite (every test runs once per broker
kind), and for RabbitMQ under faults (a proxy each test owns, and servers that
misbehave).

To add a broker: append its kind to C{BROKER_KINDS} (a C{pytest.param} with a
mark if it needs a server) and a branch to L{_connection_factory}.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import pytest
import pytest_twisted
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory

from ion.core.messaging.broker import IBroker
from ion.test.proxy import Mute, Proxy, Slammer, SwitchEndpoint
from tests.helpers import Collector
from tests.rabbit import HOST, PORT, URL, require_rabbitmq

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


async def _connected(broker: Any, made: list[Any]) -> Any:
    """C{broker}, connected, and noted in C{made} (for L{_close_all})."""
    await broker.connect()
    made.append(broker)
    return broker


async def _close_all(made: list[Any]) -> None:
    for broker in made:
        await broker.close()


@pytest_twisted.async_yield_fixture
async def connect(
    broker_kind: str, names: Names
) -> AsyncIterator[Callable[[], Awaitable[IBroker]]]:
    """C{await connect()} gives a connected L{IBroker}; all are closed at teardown."""
    factory = _connection_factory(broker_kind)
    opened: list[IBroker] = []

    async def _connect() -> IBroker:
        return await _connected(factory(), opened)

    yield _connect

    await _close_all(opened)
    # Delete whatever the test declared, so tests on a shared broker leave nothing behind.
    cleaner = await _connect()
    for name in names.made:
        for delete in (cleaner.delete_queue, cleaner.delete_exchange):
            try:
                await delete(name)
            except Exception:
                pass
    await cleaner.close()


# --- RabbitMQ under faults: a proxy each test owns, and servers that misbehave ---------------


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@pytest_twisted.async_yield_fixture
async def proxy() -> AsyncIterator[Proxy]:
    """A started proxy to RabbitMQ, stopped at teardown."""
    require_rabbitmq()
    p = Proxy(_reactor(), (HOST, PORT))
    await p.start()
    yield p
    await p.stop()


@pytest.fixture
def prefix() -> str:
    """A unique name prefix for this test (C{<prefix>.q}, C{.ex}, C{.wire} are deleted after)."""
    return f"faults.{uuid4().hex[:8]}"


@pytest_twisted.async_yield_fixture
async def make_broker(proxy: Proxy, prefix: str) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """C{await make_broker(**kw)}: a connected AmqpBroker through the proxy; all closed at teardown."""
    from ion.core.messaging.amqp import AmqpBroker

    made: list[AmqpBroker] = []

    async def make(**kwargs: Any) -> AmqpBroker:
        kwargs.setdefault("max_retry_delay", 1.0)
        broker = AmqpBroker(
            _reactor(),
            URL,
            endpoint_factory=lambda reactor, _params: TCP4ClientEndpoint(
                reactor, "127.0.0.1", proxy.port
            ),
            **kwargs,
        )
        return await _connected(broker, made)

    yield make
    await _close_all(made)
    cleaner = AmqpBroker(_reactor(), URL)
    await cleaner.connect()
    for suffix in ("q", "ex", "wire"):
        await cleaner.delete_queue(f"{prefix}.{suffix}")
        await cleaner.delete_exchange(f"{prefix}.{suffix}")
    await cleaner.close()


@pytest_twisted.async_yield_fixture
async def switchable(proxy: Proxy) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """C{broker, target = await switchable(**kw)}: a broker connected through the
    proxy whose reconnects go to 127.0.0.1 at whatever port C{target["port"]}
    says then; closed at teardown."""
    from ion.core.messaging.amqp import AmqpBroker

    made: list[AmqpBroker] = []

    async def make(**kwargs: Any) -> tuple[AmqpBroker, dict[str, int]]:
        kwargs.setdefault("max_retry_delay", 0.5)
        target = {"port": proxy.port}
        broker = AmqpBroker(
            _reactor(), URL, endpoint_factory=lambda r, _p: SwitchEndpoint(r, target), **kwargs
        )
        return await _connected(broker, made), target

    yield make
    await _close_all(made)


async def _listen(factory: Any) -> Any:
    return await TCP4ServerEndpoint(_reactor(), 0, interface="127.0.0.1").listen(factory)


@pytest_twisted.async_yield_fixture
async def mute_server() -> AsyncIterator[tuple[int, Collector]]:
    """(port, a Collector of the connections whose client began the handshake)."""
    connected = Collector()
    factory = Factory.forProtocol(Mute)
    factory.connected = connected
    port = await _listen(factory)
    yield port.getHost().port, connected
    for conn in connected.items:
        conn.transport.abortConnection()
    await port.stopListening()


@pytest_twisted.async_yield_fixture
async def slammer_port() -> AsyncIterator[int]:
    """The port of a server that closes every connection at once."""
    port = await _listen(Factory.forProtocol(Slammer))
    yield port.getHost().port
    await port.stopListening()
