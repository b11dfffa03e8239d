"""RabbitMQ for tests: is the broker at 127.0.0.1:5672 there, and if not, skip (or fail on CI)."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

HOST, PORT = "127.0.0.1", 5672
URL = f"amqp://guest:guest@{HOST}:{PORT}/"

_reachable: str | None = None  # "" once reachable, else why not


def _probe() -> str:
    try:
        with socket.create_connection((HOST, PORT), timeout=1.0):
            return ""
    except OSError as e:
        return f"{type(e).__name__}: {e}"


def require_rabbitmq() -> None:
    """Skip the test if RabbitMQ is not reachable at 127.0.0.1:5672; fail it instead when C{CI} is set."""
    global _reachable
    if _reachable is None or _reachable:
        _reachable = _probe()
    if not _reachable:
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"RabbitMQ is not reachable at {HOST}:{PORT} and CI is set: {_reachable} "
            "(start it with `rabbitmq-server -detached`)"
        )
    pytest.skip(
        f"RabbitMQ not reachable at {HOST}:{PORT}: {_reachable} "
        "(start it with `rabbitmq-server -detached`; set CI=1 to make this a failure)"
    )


async def delete_systems(
    sysnames: set[str],
    queues: set[str] = frozenset(),  # type: ignore[assignment]
    url: str = URL,
) -> None:
    """Delete from RabbitMQ (at C{url}) what tests' systems left there: their
    exchanges (C{ion.<sysname>}, C{ion.<sysname>.events} and the container
    agents' C{ion.<sysname>.containers}) and the given shared queues."""
    from twisted.internet import reactor

    from ion.core.messaging.amqp import AmqpBroker

    cleaner = AmqpBroker(reactor, url, reconnect=False)
    await cleaner.connect()
    try:
        for queue in queues:
            await cleaner.delete_queue(queue)
        for sysname in sysnames:
            for suffix in ("", ".events", ".containers"):
                await cleaner.delete_exchange(f"ion.{sysname}{suffix}")
    finally:
        await cleaner.close()


def block(broker: Any, reason: str = "low on memory") -> None:
    """Feed C{broker} (an AmqpBroker) a connection.blocked frame, as from the broker
    (whose resource alarms a test must not set off)."""
    import pika.frame
    import pika.spec

    frame = pika.frame.Method(0, pika.spec.Connection.Blocked(reason=reason))
    broker._link.proto.dataReceived(frame.marshal())


def unblock(broker: Any) -> None:
    """Feed C{broker} a connection.unblocked frame."""
    import pika.frame
    import pika.spec

    frame = pika.frame.Method(0, pika.spec.Connection.Unblocked())
    broker._link.proto.dataReceived(frame.marshal())
