"""The exchange manager declares a system's shared queues (services', named
subscriptions', the dead letters') of the type broker.queue_type makes, and
sends what they keep persistent and confirmed when that is quorum."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core.config import DEFAULTS, Config
from ion.core.exception import QueueTypeError
from ion.core.messaging.embedded import EmbeddedBroker
from ion.core.messaging.exchange import ExchangeManager


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _manager(broker: EmbeddedBroker, kind: str) -> ExchangeManager:
    config = Config(DEFAULTS).merged({"broker": {"queue_type": kind}})
    return ExchangeManager(broker.connection(), "qt", config, _reactor())


async def _booted(manager: ExchangeManager) -> ExchangeManager:
    await manager.boot()
    return manager


@pytest_twisted.ensureDeferred
async def test_quorum_shared_queues_are_quorum_and_private_ones_stay_exclusive() -> None:
    broker = EmbeddedBroker(_reactor())
    manager = await _booted(_manager(broker, "quorum"))
    service = await manager.declare_queue("hello")
    named = await manager.declare_subscription("1001.#", name="audit")
    private = await manager.declare_subscription("1001.#")
    mailbox = await manager.declare_queue("p.1@c", exclusive=True)
    kinds = {q: broker._queues[q].queue_type for q in (service, named, private, mailbox)}
    assert kinds == {service: "quorum", named: "quorum", private: "classic", mailbox: "classic"}
    assert broker._queues[service].durable
    assert manager.shared_queues == {service, named}
    assert manager.confirm_mandatory and manager.durable


@pytest.mark.parametrize(("first", "then"), [("quorum", "classic"), ("classic", "quorum")])
@pytest_twisted.ensureDeferred
async def test_a_queue_of_the_other_type_is_a_clear_error(first: str, then: str) -> None:
    """A container whose broker.queue_type differs from the system's is told which
    queue, which type it declared and which the queue has."""
    broker = EmbeddedBroker(_reactor())
    await (await _booted(_manager(broker, first))).declare_queue("hello")
    late = await _booted(_manager(broker, then))
    with pytest.raises(QueueTypeError) as caught:
        await late.declare_queue("hello")
    text = str(caught.value)
    assert "queue qt.hello exists, but not as the " + then in text
    assert f"it is a {first} queue" in text and "broker.queue_type" in text
    assert "qt.hello" not in late.shared_queues


@pytest.mark.parametrize(("kind", "confirmed"), [("quorum", True), ("classic", False)])
@pytest_twisted.ensureDeferred
async def test_requests_and_events_confirmed_on_quorum_queues(kind: str, confirmed: bool) -> None:
    broker = EmbeddedBroker(_reactor())
    manager = await _booted(_manager(broker, kind))
    sent: list[tuple[str, bool]] = []
    publish = manager.broker.publish

    def spy(exchange: str, key: str, body: bytes, *args: Any) -> defer.Deferred[None]:
        sent.append((key, bool(args[2])))  # (headers, mandatory, confirm, ...)
        return publish(exchange, key, body, *args)

    manager.broker.publish = spy  # type: ignore[method-assign]
    await manager.declare_queue("hello")
    await manager.publish("hello", b"request", mandatory=True, report_returns=True)
    await manager.publish_event("1001.x", b"event")
    await manager.publish("p.1@c", b"reply")  # replies go to exclusive queues: never
    await manager.publish_event("5001.y", b"event", confirm=True)  # asked for: always
    assert sent == [
        ("hello", confirmed), ("1001.x", confirmed), ("p.1@c", False), ("5001.y", True),
    ]  # fmt: skip
