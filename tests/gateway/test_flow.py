"""The CloudEvent flow end to end: /receive -> broker -> matcher -> outbox -> webhooks.

A real HTTP receiver (twisted.web on a free port) and the gateway process in a
container, on the embedded broker and on RabbitMQ. Each test runs on each store
kind (L{tests.gateway.flow_stores}).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from ion.gateway.process import Gateway
from tests.gateway import flow_stores
from tests.gateway.client import fetch
from tests.gateway.conftest import TOKEN
from tests.gateway.receiver import Receiver

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# Short retries, so that a target back up is found again within half a second.
FAST = {
    "allow_targets": ["127.0.0.0/8"],
    "delivery": {"backoff": 0.05, "backoff_max": 0.5, "max_attempts": 1000, "timeout": 5},
}
# How long the target is down in the outage test: the scenario, 20 s,
# on RabbitMQ with the real stores; 2 s on the embedded broker or the in-memory
# store (the same code paths, sooner: the suite's time is kept for the real one).
DOWN_FOR = 20.0
DOWN_FOR_SOONER = 2.0

gateway_store = flow_stores.gateway_store  # the fixture, for this module


def cloudevent(n: int, **data: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": f"ev-{n}", "source": "/tests/flow", "type": "t.flow",
            "data": {"n": n, **data}}  # fmt: skip


async def receive(gateway: Gateway, event: dict[str, Any]) -> Any:
    return await fetch("POST", f"{gateway.url}receive", event,
                       {**AUTH, "Content-Type": "application/cloudevents+json"})  # fmt: skip


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_kind(request: pytest.FixtureRequest) -> str:
    """The flow runs on the embedded broker and on RabbitMQ."""
    return request.param


@pytest_twisted.async_yield_fixture
async def make_container(broker_kind: str, gateway_store: Any) -> Any:
    """Containers of one system on the broker of this run (this module's own: the
    suite's runs on the embedded broker only); on RabbitMQ the sysname is the
    test's own, and what its containers declared is deleted afterwards."""
    from ion.core.cc.container import Container
    from ion.core.messaging.embedded import EmbeddedBroker

    tag = uuid.uuid4().hex[:8]
    embedded = EmbeddedBroker(reactor)
    made: list[Container] = []
    if broker_kind == "rabbitmq":
        from tests.rabbit import require_rabbitmq

        require_rabbitmq()

    def broker(n: int) -> Any:
        if broker_kind == "embedded":
            return embedded.connection()
        from ion.core.messaging.amqp import AmqpBroker
        from tests.rabbit import URL

        return AmqpBroker(reactor, URL, name=f"gw{tag}-{n}")

    async def make(**kwargs: Any) -> Container:
        n = len(made) + 1
        kwargs.setdefault("container_id", f"gw{tag}-{n}")
        kwargs.setdefault("sysname", f"gwflow-{tag}")
        kwargs.setdefault("broker", broker(n))
        container = Container(reactor=reactor, **kwargs)
        await container.start()
        made.append(container)
        return container

    yield make
    shared = set().union(*(c.exchange.shared_queues for c in made))
    for container in reversed(made):
        await container.stop()
    if broker_kind == "rabbitmq":
        from tests.rabbit import delete_systems

        await delete_systems({c.sysname for c in made}, shared)


@pytest_twisted.async_yield_fixture
async def receiver() -> Any:
    """A webhook receiver on a free loopback port."""
    r = await Receiver(reactor).up()
    yield r
    await r.down()


@pytest_twisted.ensureDeferred
async def test_events_arrive_once_in_order(
    start_gateway: Any, gateway_store: Any, receiver: Receiver
) -> None:
    """Every matching event reaches each subscription's target once, in order; a
    duplicate post is accepted once; an event matching nothing goes nowhere."""
    gateway = await start_gateway(**FAST)
    await gateway_store.subscribe(gateway, "$.data.n", receiver.url("all"))
    await gateway_store.subscribe(gateway, "$.data.even", receiver.url("even"))
    for n in range(20):
        answer = await receive(gateway, cloudevent(n, **({"even": True} if n % 2 == 0 else {})))
        assert answer.status == 202, answer.body
    again = await receive(gateway, cloudevent(3))
    assert (again.status, again.json["duplicate"]) == (200, True)
    none = await receive(gateway, {**cloudevent(99), "data": "no n here"})
    assert none.status == 202
    await receiver.got.wait(30, timeout=20)
    assert receiver.events("/all") == [f"ev-{n}" for n in range(20)]
    assert receiver.events("/even") == [f"ev-{n}" for n in range(0, 20, 2)]
    first = receiver.got.items[0]
    assert first["content_type"] == "application/cloudevents+json" and first["delivery"]
    assert len({g["delivery"] for g in receiver.got.items}) == 30  # one id per delivery
    # Nothing more comes: one more event after all, and only it arrives.
    await receive(gateway, cloudevent(100))
    await receiver.got.wait(31, timeout=20)
    assert len(receiver.got.items) == 31


@pytest_twisted.ensureDeferred
async def test_target_down_then_back_loses_nothing(
    start_gateway: Any, gateway_store: Any, receiver: Receiver, broker_kind: str
) -> None:
    """With the target down for 20 s (DOWN_FOR), the events accepted meanwhile
    arrive once each and in order after it is back."""
    gateway = await start_gateway(**FAST)
    await gateway_store.subscribe(gateway, "$.data", receiver.url())
    await receive(gateway, cloudevent(0))
    await receiver.got.wait(1, timeout=20)
    await receiver.down()
    for n in range(1, 11):
        assert (await receive(gateway, cloudevent(n))).status == 202
    real = broker_kind == "rabbitmq" and gateway_store.kind != "fake"
    outage = DOWN_FOR if real else DOWN_FOR_SOONER
    await deferLater(reactor, outage, lambda: None)  # the outage
    assert len(receiver.got.items) == 1
    await receiver.up()
    await receiver.got.wait(11, timeout=20)
    assert receiver.events() == [f"ev-{n}" for n in range(11)]
    ids = [g["delivery"] for g in receiver.got.items]
    assert len(set(ids)) == 11


@pytest_twisted.ensureDeferred
async def test_failing_target_parks_and_retry_resumes(
    start_gateway: Any, gateway_store: Any, receiver: Receiver
) -> None:
    """A target answering 500 max_attempts times parks the subscription's deliveries
    and sets its error; retried, they arrive in order."""
    settings = {**FAST, "delivery": {**FAST["delivery"], "max_attempts": 3}}
    gateway = await start_gateway(**settings)
    sub = await gateway_store.subscribe(gateway, "$.data", receiver.url())
    receiver.status = 500
    for n in range(3):
        await receive(gateway, cloudevent(n))
    error = await gateway_store.wait_for_error(gateway, sub)
    assert "500" in error and len(receiver.refused) == 3
    receiver.status = 200
    await gateway_store.retry(gateway, sub)
    await receiver.got.wait(3, timeout=20)
    assert receiver.events() == ["ev-0", "ev-1", "ev-2"]


@pytest_twisted.ensureDeferred
async def test_two_gateways_deliver_nothing_twice(
    start_gateway: Any, make_container: Any, gateway_store: Any, receiver: Receiver,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Two gateway instances on one store and one system share the deliveries: each
    arrives once at each subscription's target, in the order the events were accepted
    (whichever instance accepted them: one matcher, the lease's holder, matches)."""
    one = await start_gateway(**FAST)
    two = await start_gateway(**FAST)
    assert [one.flow.matcher.holding, two.flow.matcher.holding] == [True, False]  # type: ignore[union-attr]
    subs = [await gateway_store.subscribe(one, "$.data", receiver.url(f"s{i}")) for i in range(4)]
    for n in range(40):
        await receive(one if n % 2 else two, cloudevent(n))
    await receiver.got.wait(160, timeout=30)
    for i in range(len(subs)):
        assert receiver.events(f"/s{i}") == [f"ev-{n}" for n in range(40)]
    assert len({g["delivery"] for g in receiver.got.items}) == 160
    workers = {one.flow.worker.worker_id, two.flow.worker.worker_id}  # type: ignore[union-attr]
    assert len(workers) == 2


@pytest_twisted.ensureDeferred
async def test_a_standby_gateway_takes_over_matching_in_order(
    start_gateway: Any, gateway_store: Any, receiver: Receiver
) -> None:
    """The matching gateway stopped (events still in the queue and the outbox), the
    other takes its lease over and delivers the rest: all once, in acceptance order."""
    settings = {**FAST, "match_lease": 1.5}
    one = await start_gateway(**settings)
    two = await start_gateway(**settings)
    subs = [await gateway_store.subscribe(two, "$.data", receiver.url(f"s{i}")) for i in range(3)]
    for n in range(20):
        assert (await receive(two, cloudevent(n))).status == 202
    assert one.container is not None
    await one.container.terminate(one)  # (it gives back what it held, then its lease)
    for n in range(20, 40):
        assert (await receive(two, cloudevent(n))).status == 202
    await receiver.got.wait(120, timeout=30)
    assert two.flow.matcher.holding  # type: ignore[union-attr]
    for i in range(len(subs)):
        assert receiver.events(f"/s{i}") == [f"ev-{n}" for n in range(40)]
    assert len({g["delivery"] for g in receiver.got.items}) == 120


@pytest_twisted.ensureDeferred
async def test_receive_over_http(
    start_gateway: Any, gateway_store: Any, receiver: Receiver
) -> None:
    """Over HTTP: binary mode is accepted and delivered as structured JSON; no user
    is a 401, a bad event a 400 naming the attribute, as JSON."""
    gateway = await start_gateway(**FAST)
    await gateway_store.subscribe(gateway, "$.data.x", receiver.url())
    binary = await fetch("POST", f"{gateway.url}receive", raw=b'{"x": 1}', headers={
        **AUTH, "Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "b1",
        "ce-source": "/bin", "ce-type": "t"})  # fmt: skip
    assert binary.status == 202, binary.body
    await receiver.got.wait(1, timeout=20)
    assert receiver.got.items[0]["event"] == {
        "specversion": "1.0", "id": "b1", "source": "/bin", "type": "t",
        "datacontenttype": "application/json", "data": {"x": 1},
    }  # fmt: skip
    anonymous = await fetch("POST", f"{gateway.url}receive", cloudevent(1))
    assert anonymous.status == 401
    bad = await receive(gateway, {**cloudevent(2), "specversion": "0.3"})
    assert (bad.status, bad.json["error"]["field"]) == (400, "specversion")
