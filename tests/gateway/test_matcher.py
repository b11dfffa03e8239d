"""The matcher: subscriptions cached, filters matched, deliveries enqueued before the ack."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from ion.core.cc.container import Container
from ion.core.events import Requeue
from ion.core.process.process import Process
from ion.gateway.cloudevent import event_key
from ion.gateway.matcher import LEASE, Matcher
from ion.gateway.publish import CloudEventPublisher, origin_of
from tests.gateway.fakes import FakeStore
from tests.helpers import Collector


class HasKey:
    """A stand-in filter: matches when the event has the top-level key it names."""

    compiled: list[str] = []

    def __init__(self, text: str) -> None:
        if text == "!":
            raise ValueError("does not compile")
        HasKey.compiled.append(text)
        self.key = text

    def matches(self, event: dict[str, Any]) -> bool:
        return self.key in event


def event(i: str = "e1", **extra: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": i, "source": "/s", "type": "t", **extra}


class Consumer:
    """A stand-in for the queue's consumer: whether it consumes, and the handler."""

    def __init__(self) -> None:
        self.consuming = False
        self.handler: Any = None

    def __call__(self, handler: Any) -> Consumer:
        self.handler = handler
        return self

    async def declare(self) -> str:
        return "q"

    async def start(self) -> None:
        assert not self.consuming
        self.consuming = True

    async def stop(self) -> None:
        self.consuming = False


def make(store: FakeStore, clock: Clock | None = None, owner: str = "one",
         lease: float = 9.0) -> tuple[Matcher, list[int], Consumer]:  # fmt: skip
    """A matcher started (on the fake consumer): it holds the lease if it is free."""
    pokes: list[int] = []
    consumer = Consumer()
    matcher = Matcher(None, store, lambda: pokes.append(1), clock or Clock(),  # type: ignore[arg-type]
                      compile_filter=HasKey, owner=owner, lease=lease,
                      subscribe=consumer)  # fmt: skip
    run(matcher.start())
    return matcher, pokes, consumer


def gate_enqueue(store: FakeStore, held: Callable[[dict[str, Any], Any], bool]) -> Deferred[None]:
    """Make C{store}'s enqueue wait, for the events and holders C{held(event, holder)}
    names, until the returned Deferred fires."""
    gate: Deferred[None] = Deferred()
    enqueue = store.enqueue

    async def gated(key: str, ev: dict, subs: list[str], holder: Any = None) -> int:
        if held(ev, holder):
            await gate
        return await enqueue(key, ev, subs, holder)

    store.enqueue = gated  # type: ignore[method-assign]
    return gate


def run(coro: Any) -> Any:
    out: list[Any] = []
    Deferred.fromCoroutine(coro).addBoth(out.append)
    assert out, "did not finish"
    if isinstance(out[0], Failure):
        out[0].raiseException()
    return out[0]


def test_enqueues_the_matching_subscriptions_and_pokes() -> None:
    """Each matching subscription gets a delivery; the worker is poked once."""
    store = FakeStore()
    a, b, _ = store.add_subscription("data"), store.add_subscription("subject"), None
    matcher, pokes, _ = make(store)
    assert run(matcher.handle(event(data={"x": 1}))) == 1
    assert [(r.subscription, r.event_key) for r in store.rows] == [(a.uuid, event_key("/s", "e1"))]
    assert pokes == [1]
    assert run(matcher.handle(event("e2", data=1, subject="s"))) == 2
    assert {r.subscription for r in store.rows[1:]} == {a.uuid, b.uuid}


def test_no_match_no_enqueue_no_poke() -> None:
    """An event no filter matches enqueues nothing."""
    store = FakeStore()
    store.add_subscription("data")
    matcher, pokes, _ = make(store)
    assert run(matcher.handle(event())) == 0 and store.rows == [] and pokes == []


def test_redelivered_event_is_enqueued_once() -> None:
    """The same event twice (a redelivery) adds no second delivery and no poke."""
    store = FakeStore()
    store.add_subscription("data")
    matcher, pokes, _ = make(store)
    run(matcher.handle(event(data=1)))
    assert run(matcher.handle(event(data=1))) == 0
    assert len(store.rows) == 1 and pokes == [1]


def test_subscriptions_are_read_again_only_after_a_change() -> None:
    """The cache holds until changed() moves; then new and disabled subscriptions count."""
    store = FakeStore()
    first = store.add_subscription("data")
    matcher, _, _ = make(store)
    run(matcher.handle(event("1", data=1)))
    run(matcher.handle(event("2", data=1)))
    assert store.calls.count("active_subscriptions") == 1
    second = store.add_subscription("data")
    store.set_subscription(first.uuid, disabled=True)
    run(matcher.handle(event("3", data=1)))
    assert store.calls.count("active_subscriptions") == 2
    assert [r.subscription for r in store.rows] == [first.uuid, first.uuid, second.uuid]


def test_a_filter_that_does_not_compile_is_skipped() -> None:
    """A stored filter that no longer compiles does not stop the others."""
    store = FakeStore()
    store.add_subscription("!")
    good = store.add_subscription("data")
    matcher, _, _ = make(store)
    run(matcher.handle(event(data=1)))
    assert [r.subscription for r in store.rows] == [good.uuid]


def test_enqueue_failure_is_retried_before_the_ack() -> None:
    """While the database fails, the handler keeps the event (no ack) and tries again."""
    store, clock = FakeStore(), Clock()
    store.add_subscription("data")
    store.fail_enqueue = 2
    matcher, pokes, _ = make(store, clock)
    d = Deferred.fromCoroutine(matcher.handle(event(data=1)))
    assert not d.called
    clock.advance(1.0)
    assert not d.called
    clock.advance(1.0)
    assert d.called and len(store.rows) == 1 and pokes == [1]


def test_stopped_matcher_gives_a_failing_event_back() -> None:
    """Stopped while the enqueue fails, the handler gives its event back (Requeue, so not
    acked) and the matcher releases the lease only after that."""
    store, clock = FakeStore(), Clock()
    store.add_subscription("data")
    store.fail_enqueue = 100
    matcher, _, consumer = make(store, clock)
    d = matcher._on_event(_ion_event(event(data=1)), None)
    stopped = Deferred.fromCoroutine(matcher.stop())
    assert not consumer.consuming and not stopped.called and LEASE in store.leases
    clock.advance(1.0)
    assert d.called and stopped.called and store.rows == [] and store.leases == {}
    d.addErrback(lambda f: f.trap(Requeue))


def test_standby_does_not_consume_and_takes_over_once_the_lease_expires() -> None:
    """A second matcher finds the lease held: it does not consume, and an event it still
    gets is given back; once the holder stops renewing, it takes over within 4/3 lease."""
    store, clock = FakeStore(), Clock()
    store.add_subscription("data")
    one, _, first = make(store, clock, "one", lease=9.0)
    two, _, second = make(store, clock, "two", lease=9.0)
    assert (one.holding, first.consuming) == (True, True)
    assert (two.holding, second.consuming) == (False, False)
    with pytest.raises(Requeue):
        run(two.handle(event(data=1)))
    for _ in range(6):  # renewed every 3 s: the holder keeps it
        clock.advance(3.0)
    assert one.holding and not two.holding and store.leases[LEASE][0] == "one"
    one._loop.stop()  # type: ignore[union-attr]  # (paused: renews no more; held till 27)
    clock.advance(6.0)  # 24: not yet
    assert not two.holding and not second.consuming
    clock.advance(3.0)  # 27: expired, taken at the standby's next try
    assert two.holding and second.consuming and store.leases[LEASE][0] == "two"
    assert run(two.handle(event("e2", data=1))) == 1
    # The paused one, back, finds the lease gone: it stops consuming at once.
    run(one._tend())
    assert not one.holding and not first.consuming


def test_lease_lost_at_enqueue_stops_consuming_and_gives_the_event_back() -> None:
    """An enqueue refused for the lease (another took it) writes nothing; the matcher
    stops consuming, the event and those behind it go back to the queue."""
    store, clock = FakeStore(), Clock()
    store.add_subscription("data")
    matcher, pokes, consumer = make(store, clock)
    store.leases[LEASE] = ("other", clock.seconds() + 100)
    first = matcher._on_event(_ion_event(event("1", data=1)), None)
    second = matcher._on_event(_ion_event(event("2", data=1)), None)
    for d in (first, second):
        assert d.called
        d.addErrback(lambda f: f.trap(Requeue))
    assert not matcher.holding and not consumer.consuming
    assert store.rows == [] and pokes == []
    clock.advance(3.0)  # it keeps trying, as a standby
    assert not matcher.holding
    store.leases.clear()
    clock.advance(3.0)
    assert matcher.holding and consumer.consuming


def test_a_lease_that_cannot_be_renewed_is_kept_only_till_its_end() -> None:
    """While the database does not answer, the holder goes on consuming until the lease
    it last took ends (a standby may take it then), and then stops."""
    store, clock = FakeStore(), Clock()
    matcher, _, consumer = make(store, clock, lease=9.0)  # held till 9

    async def down(*args: Any) -> bool:
        raise RuntimeError("database is down")

    store.hold = down  # type: ignore[method-assign]
    clock.advance(3.0)
    clock.advance(3.0)
    assert matcher.holding and consumer.consuming
    clock.advance(3.0)  # 9: its end
    assert not matcher.holding and not consumer.consuming


def test_stop_releases_the_lease_for_a_standby() -> None:
    """A stopped holder releases the lease: a standby takes it at its next try."""
    store, clock = FakeStore(), Clock()
    one, _, first = make(store, clock, "one")
    two, _, second = make(store, clock, "two")
    run(one.stop())
    assert not first.consuming and LEASE not in store.leases
    clock.advance(3.0)
    assert two.holding and second.consuming


def test_origin_is_one_safe_word() -> None:
    """The origin made from a source has no dots or spaces and tells sources apart."""
    word = origin_of("https://example.com/a b.c")
    assert "." not in word and " " not in word and word.startswith("https_example")
    assert origin_of("/a.b") != origin_of("/a_b")


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_kind(request: pytest.FixtureRequest) -> str:
    """The end-to-end matcher test runs on the embedded broker and on RabbitMQ."""
    return request.param


@pytest_twisted.async_yield_fixture
async def container(broker_kind: str) -> Any:
    """A container on the broker of this run; on RabbitMQ what it declared goes after."""
    from twisted.internet import reactor

    from ion.core.messaging.embedded import EmbeddedBroker

    tag = uuid.uuid4().hex[:8]
    if broker_kind == "embedded":
        broker: Any = EmbeddedBroker(reactor).connection()
    else:
        from ion.core.messaging.amqp import AmqpBroker
        from tests.rabbit import URL, require_rabbitmq

        require_rabbitmq()
        broker = AmqpBroker(reactor, URL, name=f"gw{tag}")
    made = Container(reactor=reactor, container_id=f"gw{tag}", sysname=f"gwtest-{tag}",
                     broker=broker)  # fmt: skip
    await made.start()
    yield made
    shared = set(made.exchange.shared_queues)
    await made.stop()
    if broker_kind == "rabbitmq":
        from tests.rabbit import delete_systems

        await delete_systems({made.sysname}, shared)


@pytest_twisted.ensureDeferred
async def test_published_cloudevent_reaches_the_outbox(container: Container) -> None:
    """A CloudEvent published (confirmed) is consumed from the shared queue, kept whole,
    and its matches enqueued."""
    from twisted.internet import reactor

    store = FakeStore()
    sub = store.add_subscription("data")
    proc = await container.spawn(Process, name="gateway")
    pokes: Collector[int] = Collector()
    matcher = Matcher(proc, store, lambda: pokes(1), reactor, compile_filter=HasKey)
    await matcher.start()
    publish = CloudEventPublisher(proc)
    sent = event("x1", data={"deep": [1, "two"]}, traceparent="00-ab")
    await publish(sent)
    await publish(event("x2"))  # no data: no match
    await publish(event("x3", data=3))
    await pokes.wait(2, timeout=10)  # a poke follows each enqueue
    assert [r.event for r in store.rows] == [sent, event("x3", data=3)]
    assert {r.subscription for r in store.rows} == {sub.uuid}
    await matcher.stop()


@pytest_twisted.ensureDeferred
async def test_events_wait_in_the_queue_for_a_holder(container: Container) -> None:
    """A standby binds the queue without consuming: the events accepted meanwhile wait,
    and reach the outbox in order once it holds the lease."""
    from twisted.internet import reactor

    store = FakeStore()
    store.add_subscription("data")
    store.leases[LEASE] = ("elsewhere", reactor.seconds() + 3600)
    proc = await container.spawn(Process, name="gateway")
    pokes: Collector[int] = Collector()
    matcher = Matcher(proc, store, lambda: pokes(1), reactor, compile_filter=HasKey,
                      owner="standby", lease=0.6)  # fmt: skip
    await matcher.start()
    publish = CloudEventPublisher(proc)
    for n in range(10):
        await publish(event(f"x{n}", data=n))
    assert not matcher.holding and store.rows == []
    store.leases.clear()  # (the holder released it)
    await pokes.wait(10, timeout=10)
    assert matcher.holding
    assert [r.event["id"] for r in store.rows] == [f"x{n}" for n in range(10)]
    await matcher.stop()


async def held_by_one(container: Container) -> tuple[Any, Deferred[None], Any, Any, Any]:
    """A store with one subscription whose enqueues by matcher "one" wait for the
    returned gate, a gateway process, the pokes of each matcher (by number), and
    matcher "one" on that store (not started)."""
    from twisted.internet import reactor

    store = FakeStore()
    store.add_subscription("data")
    gate = gate_enqueue(store, lambda _ev, holder: holder is not None and holder[1] == "one")
    proc = await container.spawn(Process, name="gateway")
    pokes: Collector[int] = Collector()
    one = Matcher(proc, store, lambda: pokes(1), reactor, compile_filter=HasKey, owner="one",
                  lease=600)  # fmt: skip
    return store, gate, proc, pokes, one


@pytest_twisted.ensureDeferred
async def test_events_held_by_a_matcher_that_lost_the_lease_go_to_the_new_holder(
    container: Container,
) -> None:
    """A holder whose lease was taken while it held events (paused) writes none of them:
    the broker hands them to the new holder, which enqueues them all."""
    from twisted.internet import reactor

    store, gate, proc, pokes, one = await held_by_one(container)
    await one.start()
    publish = CloudEventPublisher(proc)
    for n in range(10):
        await publish(event(f"x{n}", data=n))
    store.leases[LEASE] = ("two", reactor.seconds() + 600)  # one's lease ran out; two took it
    two = Matcher(proc, store, lambda: pokes(2), reactor, compile_filter=HasKey, owner="two",
                  lease=600)  # fmt: skip
    await two.start()
    assert two.holding and one.holding  # (one does not know yet)
    gate.callback(None)
    await pokes.wait(10, timeout=10)
    assert not one.holding and set(pokes.items) == {2}
    # (in order too on the embedded broker; on RabbitMQ two may take some of them
    # before one has given back the older ones: see ion.gateway.matcher)
    assert sorted(r.event["id"] for r in store.rows) == [f"x{n}" for n in range(10)]
    await one.stop()
    await two.stop()


@pytest_twisted.ensureDeferred
async def test_a_stopped_holder_gives_its_events_back_in_order_to_the_standby(
    container: Container,
) -> None:
    """The holder stopped with events in hand (one enqueue under way, more waiting):
    it finishes the one, gives the rest back, then releases; the standby takes them
    over, and the outbox holds them all once, in order."""
    from twisted.internet import reactor

    store, gate, proc, pokes, one = await held_by_one(container)
    arrived: Collector[int] = Collector()
    on_event = one._on_event

    def counted(ev: Any, msg: Any) -> Any:
        acked = on_event(ev, msg)
        arrived(1)
        return acked

    one._on_event = counted  # type: ignore[method-assign]
    await one.start()
    two = Matcher(proc, store, lambda: pokes(2), reactor, compile_filter=HasKey, owner="two",
                  lease=0.3)  # fmt: skip
    await two.start()
    assert one.holding and not two.holding
    publish = CloudEventPublisher(proc)
    for n in range(10):
        await publish(event(f"x{n}", data=n))
    await arrived.wait(10, timeout=10)
    assert one._busy is not None and len(one._waiting) == 9
    stopped = Deferred.fromCoroutine(one.stop())
    gate.callback(None)
    await stopped
    await pokes.wait(10, timeout=10)
    assert pokes.items == [1] + [2] * 9 and two.holding
    assert [r.event["id"] for r in store.rows] == [f"x{n}" for n in range(10)]
    await two.stop()


def test_events_are_enqueued_one_at_a_time_in_order() -> None:
    """A second event waits for the first one's enqueue: the outbox keeps their order."""
    store = FakeStore()
    store.add_subscription("data")
    matcher, _, _ = make(store)
    gate = gate_enqueue(store, lambda ev, _holder: ev["id"] == "1")
    done: list[str] = []
    matcher._on_event(_ion_event(event("1", data=1)), None).addCallback(lambda _: done.append("1"))
    matcher._on_event(_ion_event(event("2", data=1)), None).addCallback(lambda _: done.append("2"))
    assert done == [] and store.rows == []
    gate.callback(None)
    assert sorted(done) == ["1", "2"]  # (the lock starts 2 before 1's callbacks end)
    assert [r.event["id"] for r in store.rows] == ["1", "2"]


def _ion_event(cloudevent: dict[str, Any]) -> Any:
    import json

    from ion.core.events import create_event
    from ion.core.object.event_ids import EventId

    return create_event(EventId.CLOUDEVENT, origin="o", json=json.dumps(cloudevent))
