"""Events: publishers, subscribers, filters, shared queues, standard events."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from ion.core import events
from ion.core.cc.container import Container
from ion.core.exception import FieldError, MessageFormatError
from ion.core.object.event_ids import EventId
from ion.core.process.process import Process
from tests.helpers import Collector, wait_for


@pytest.fixture(params=["embedded", pytest.param("rabbitmq", marks=pytest.mark.rabbitmq)])
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Every event test runs on the embedded broker and on RabbitMQ."""
    return request.param


@pytest_twisted.async_yield_fixture
async def make_container(broker_kind: str) -> Any:
    """Containers on the broker of this run; on RabbitMQ each test's sysnames are
    made unique, and what they declared is deleted afterwards."""
    import uuid

    from twisted.internet import reactor

    from ion.core.messaging.embedded import EmbeddedBroker

    made: list[Container] = []
    tag = uuid.uuid4().hex[:8]
    embedded = EmbeddedBroker(reactor)
    if broker_kind == "rabbitmq":
        from tests.rabbit import URL, require_rabbitmq

        require_rabbitmq()

    def broker(n: int) -> Any:
        if broker_kind == "embedded":
            return embedded.connection()
        from ion.core.messaging.amqp import AmqpBroker

        return AmqpBroker(reactor, URL, name=f"ev{tag}-{n}")

    async def make(sysname: str = "testsys", **kwargs: Any) -> Container:
        n = len(made) + 1
        container = Container(
            reactor=reactor,
            container_id=f"ev{tag}-{n}",
            sysname=f"{sysname}-{tag}",
            broker=broker(n),
            **kwargs,
        )
        await container.start()
        made.append(container)
        return container

    yield make
    shared = set().union(*(c.exchange.shared_queues for c in made))
    sysnames = {c.sysname for c in made}
    for container in reversed(made):
        await container.stop()
    if broker_kind == "rabbitmq":
        from tests.rabbit import delete_systems

        await delete_systems(sysnames, shared)


@pytest_twisted.async_yield_fixture
async def container(make_container: Any) -> Any:
    """One container on the broker of this run."""
    yield await make_container()


async def subscribe(proc: Process, **kwargs: Any) -> Collector:
    got: Collector = Collector()
    await events.EventSubscriber(proc, handler=lambda e, msg: got(e), **kwargs).start()
    return got


async def publisher_and_listener(container: Container) -> tuple[Process, Process]:
    return (
        await container.spawn(Process, name="publisher"),
        await container.spawn(Process, name="listener"),
    )


def emit(proc: Process, event_id: int, origin: str, **fields: Any):
    return events.publish(
        proc.container.exchange,
        str(proc.id),
        events.create_event(event_id, origin=origin, **fields),
    )


MARK = int(EventId.LOGGING_INFO)


@pytest.mark.parametrize(
    "filters,sent,expected",
    [
        # by event id
        ({"event_id": 1001}, [(2001, "x"), (1001, "x")], [(1001, "x")]),
        # by origin, any event id
        ({"origin": "a"}, [(1001, "b"), (2001, "a"), (1001, "a")], [(2001, "a"), (1001, "a")]),
        # by both
        ({"event_id": 1001, "origin": "a"}, [(1001, "b"), (2001, "a"), (1001, "a")], [(1001, "a")]),
        # dotted origins: * is one word, # is any number
        ({"origin": "ion.*"}, [(1001, "ion.svc.hello"), (1001, "ion.svc")], [(1001, "ion.svc")]),
        (
            {"origin": "ion.#"},
            [(1001, "ion.svc.hello"), (1001, "other.ion"), (1001, "ion")],
            [(1001, "ion.svc.hello"), (1001, "ion")],
        ),
        ({"origin": "*.hello"}, [(1001, "a.b.hello"), (1001, "a.hello")], [(1001, "a.hello")]),
    ],
)
@pytest_twisted.ensureDeferred
async def test_filters(container: Container, filters: dict, sent: list, expected: list) -> None:
    """A subscriber gets exactly the events its event id and origin pattern match."""
    pub, listener = await publisher_and_listener(container)
    got = await subscribe(listener, **filters)
    marker = await subscribe(listener, event_id=MARK, origin="marker")
    for event_id, origin in sent:
        await emit(pub, event_id, origin)
    await emit(pub, MARK, "marker")  # published last: once it is in, the rest are too
    await marker.wait(1)
    await got.wait(len(expected))
    assert [(e.event_id, e.origin) for e in got.items] == expected


@pytest_twisted.ensureDeferred
async def test_named_queue_shares_events(make_container: Any) -> None:
    """Two subscribers on one named queue (in two containers) get each event once."""
    a = await make_container()
    b = await make_container()
    got: Collector = Collector()
    for container, side in ((a, "a"), (b, "b")):
        proc = await container.spawn(Process, name="sub")
        sub = events.EventSubscriber(
            proc, event_id=2001, queue_name="jobs", handler=lambda e, msg, s=side: got((s, e))
        )
        await sub.start()
    pub = await a.spawn(Process, name="publisher")
    for n in range(10):
        await emit(pub, 2001, "scheduler", task_id=f"t{n}")
    await got.wait(10)
    # One more after all ten arrived: a duplicate of any would show up before it.
    await emit(pub, 2001, "scheduler", task_id="last")
    await got.wait(11)
    ids = sorted(e.schedule.task_id for _, e in got.items)
    assert ids == sorted([f"t{n}" for n in range(10)] + ["last"])  # each once
    assert {side for side, _ in got.items} == {"a", "b"}  # shared between them


@pytest_twisted.ensureDeferred
async def test_a_requeued_event_goes_back_to_its_queue(container: Container) -> None:
    """A handler raising Requeue (at once, or as its Deferred fails) gives its event back:
    the queue hands it out again, and it is acked when a handler takes it."""
    from twisted.internet.defer import fail

    proc = await container.spawn(Process, name="sub")
    got: Collector = Collector()

    def handler(event: Any, msg: Any) -> Any:
        got((event.schedule.task_id, msg.delivery.redelivered))
        if len(got.items) == 1:
            raise events.Requeue("not now")
        if len(got.items) == 2:
            return fail(events.Requeue("not yet"))
        return None

    await events.EventSubscriber(proc, event_id=2001, queue_name="again", handler=handler).start()
    await emit(proc, 2001, "scheduler", task_id="t")
    await got.wait(3)
    await emit(proc, 2001, "scheduler", task_id="u")
    await got.wait(4)  # (a fourth copy of t would come before u)
    assert got.items == [("t", False), ("t", True), ("t", True), ("u", False)]


@pytest_twisted.ensureDeferred
async def test_process_lifecycle_events(container: Container) -> None:
    """Spawning and terminating a process publishes 1052 READY, ACTIVE, TERMINATED."""
    listener = await container.spawn(Process, name="listener")
    got = await subscribe(listener, event_id=1052, origin="#")
    proc = await container.spawn(Process, name="watched")
    await container.terminate(proc)
    seen = await got.wait_until(
        lambda e: e.origin == str(proc.id) and e.process_lifecycle.state == 3
    )
    states = [
        e.process_lifecycle.State.Name(e.process_lifecycle.state)
        for e in seen
        if e.origin == str(proc.id)
    ]
    assert states == ["READY", "ACTIVE", "TERMINATED"]
    assert seen[-1].process_lifecycle.container_id == container.id


@pytest_twisted.ensureDeferred
async def test_events_do_not_cross_sysnames(make_container: Any) -> None:
    """An event published in one system never reaches a subscriber in another."""
    mine = await make_container(sysname="sys-a")
    other = await make_container(sysname="sys-b")
    listener = await mine.spawn(Process, name="listener")
    got = await subscribe(listener, origin="#")
    stranger = await other.spawn(Process, name="stranger")
    await emit(stranger, 1001, "shared-origin")
    local = await mine.spawn(Process, name="local")
    await emit(local, MARK, "marker")
    seen = await got.wait_until(lambda e: e.origin == "marker")
    assert [e.origin for e in seen if e.origin == "shared-origin"] == []


@pytest_twisted.ensureDeferred
async def test_publisher_classes(container: Container) -> None:
    """An EventPublisher subclass builds its payload from keywords and publishes it."""
    pub, listener = await publisher_and_listener(container)
    got = await subscribe(listener, event_id=1001)
    publisher = events.ResourceLifecycleEventPublisher(pub, origin="resource.42")
    await publisher.create_and_publish_event(resource_id="42", state="ACTIVE", description="up")
    (event,) = await got.wait(1)
    assert event.origin == "resource.42" and event.description == "up"
    assert event.WhichOneof("payload") == "resource_lifecycle"
    assert event.resource_lifecycle.resource_id == "42"


def test_unknown_and_wrong_fields_rejected() -> None:
    """Unknown keywords and wrongly typed fields are refused with a clear FieldError."""
    with pytest.raises(FieldError, match="colour"):
        events.create_event(1001, origin="x", colour="red")
    with pytest.raises(FieldError, match="resource_id"):
        events.create_event(1001, origin="x", resource_id=["not", "a", "string"])
    with pytest.raises(FieldError, match="state"):
        events.create_event(1052, origin="x", state="SLEEPING")


@pytest_twisted.ensureDeferred
async def test_subscriber_stops_with_its_process(container: Container) -> None:
    """Terminating a process stops its subscriptions; its private queue goes away."""
    listener = await container.spawn(Process, name="listener")
    sub = await events.EventSubscriber(listener, event_id=1001).start()
    queue = sub.queue
    assert await container.exchange.broker.queue_exists(queue)
    await container.terminate(listener)
    assert not await wait_for(container.exchange.broker.queue_exists(queue))


@pytest_twisted.ensureDeferred
async def test_a_subscriber_is_started_once(container: Container) -> None:
    """Starting a started subscriber again is refused: its first consumer would
    be left behind, still calling the handler after the process ends."""
    from ion.core.exception import IllegalStateError

    listener = await container.spawn(Process, name="listener")
    sub = events.EventSubscriber(listener, event_id=1001)
    await sub.start()
    with pytest.raises(IllegalStateError, match="already started"):
        await sub.start()


@pytest_twisted.ensureDeferred
async def test_async_handlers_in_flight_are_bounded_by_prefetch(make_container: Any) -> None:
    """An async handler holds its event until it ends: at most broker.prefetch
    of them run at once, the rest wait on the broker, none is lost."""
    from twisted.internet import defer

    from ion.core.config import DEFAULTS, Config

    container = await make_container(config=Config(DEFAULTS).merged({"broker": {"prefetch": 4}}))
    publisher, listener = await publisher_and_listener(container)
    gate: defer.Deferred[None] = defer.Deferred()
    running, done = Collector(), Collector()

    async def handle(event: Any, msg: Any) -> None:
        running(event.origin)
        await gate
        done(event.origin)

    await events.EventSubscriber(listener, event_id=MARK, handler=handle).start()
    for i in range(20):
        await emit(publisher, MARK, f"o{i}")
    await running.wait(4)
    await emit(publisher, MARK, "probe")  # behind the 16 waiting: not handed over yet
    assert len(running.items) == 4
    gate.callback(None)
    assert len(await done.wait(21, timeout=10)) == 21


@pytest_twisted.ensureDeferred
async def test_app_and_container_events(tmp_path: Any) -> None:
    """A booting container announces 1075 per app started, 1051 READY, and 1076 once
    with the files it started; stopping it announces the apps stopped, then 1051
    TERMINATED."""
    from twisted.internet import reactor

    from ion.core.cc.runner import ContainerRunner
    from ion.core.config import DEFAULTS, Config
    from ion.core.messaging.embedded import EmbeddedBroker

    broker = EmbeddedBroker(reactor)
    watcher = Container(
        reactor=reactor, container_id="watcher", sysname="evsys", broker=broker.connection()
    )
    await watcher.start()
    try:
        listener = await watcher.spawn(Process, name="listener")
        got = await subscribe(listener, origin="#")
        booted = Container(
            reactor=reactor, container_id="booted", sysname="evsys", broker=broker.connection()
        )
        runner = ContainerRunner(booted, Config(DEFAULTS), ["res/deploy/hello.rel"])
        runner.startService()
        await got.wait_until(lambda e: e.event_id == 1076)
        await runner.stopService()
        seen = await got.wait_until(
            lambda e: e.event_id == 1051 and e.container_lifecycle.state == 3  # TERMINATED
        )
    finally:
        await watcher.stop()
    mine = [e for e in seen if e.event_id in (1051, 1075, 1076)]
    summary = [
        (e.event_id, e.origin, e.container_lifecycle.state or e.app_lifecycle.state or 0)
        for e in mine
    ]
    STARTED, STOPPED, READY, TERMINATED = 1, 2, 1, 3
    assert summary == [
        (1075, "ioncore", STARTED),  # the base app starts as part of booting
        (1051, "booted", READY),
        (1075, "hello", STARTED),
        (1076, "booted", 0),
        (1075, "hello", STOPPED),
        (1075, "ioncore", STOPPED),
        (1051, "booted", TERMINATED),
    ]
    (startup,) = [e for e in mine if e.event_id == 1076]
    assert list(startup.container_startup.startup_names) == ["res/deploy/hello.rel"]
    assert {e.container_id for e in mine} == {"booted"}  # each names its container


@pytest_twisted.ensureDeferred
async def test_events_name_the_container_they_come_from(make_container: Any) -> None:
    """Two containers of one system start the same app: its two 1075 events (same
    origin) name their containers; so do the process and publisher events."""
    first = await make_container()
    second = await make_container()
    listener = await first.spawn(Process, name="listener")
    got = await subscribe(listener, origin="#")
    for container in (first, second):
        await container.start_app("res/apps/hello.app")
    pub = await second.spawn(Process, name="publisher")
    await events.ResourceLifecycleEventPublisher(pub, origin="r1").create_and_publish_event(
        resource_id="r1", state="ACTIVE"
    )
    seen = await got.wait_until(lambda e: e.origin == "r1")
    hello = [e.container_id for e in seen if e.event_id == 1075 and e.origin == "hello"]
    assert hello == [first.id, second.id]
    assert seen[-1].container_id == second.id
    spawned = [e for e in seen if e.event_id == 1052 and e.origin == str(pub.id)]
    assert spawned and {e.container_id for e in spawned} == {second.id}


def test_a_process_event_is_the_one_create_event_makes() -> None:
    """The process life cycle event built directly equals the checked general one."""
    made = events.create_event(
        1052, origin="p.1@c", process_id="p.1@c", name="p", container_id="c", state="ACTIVE"
    )
    direct = events.process_lifecycle_event("p.1@c", "p", "c", "ACTIVE")
    made.datetime = direct.datetime
    made.container_id = "c"
    assert direct == made


PEER_STATE = {
    "observer_id": "c1",
    "peer_id": "c2",
    "epoch": 3,
    "state": "DEAD",
    "reason": "no heartbeat for 0.61s",
    "silent_for": 0.6,
    "links_ended": 2,
}


def peer_state(event: Any) -> tuple:
    p = event.peer_state
    return (p.observer_id, p.peer_id, p.epoch, p.state, p.reason, p.silent_for, p.links_ended)


def test_a_peer_state_event_encodes_and_decodes() -> None:
    """1055 carries a PeerStateEvent (type 2337): observer, peer, epoch, state,
    reason, seconds silent and links ended survive encoding and decoding."""
    from ion.core.object.codec import decode_object, encode_object

    event = events.create_event(1055, origin="c2", **PEER_STATE)
    assert event.WhichOneof("payload") == "peer_state"
    type_id, data = encode_object(event)
    back = decode_object(type_id, data)
    assert back == event and back.event_id == EventId.CONTAINER_PEER_STATE
    assert back.origin == "c2" and type_id == 2322
    assert peer_state(back) == tuple(PEER_STATE.values())
    assert encode_object(event.peer_state)[0] == 2337


@pytest_twisted.ensureDeferred
async def test_a_subscriber_hears_a_peer_state_event(container: Container) -> None:
    """The container announces a peer judged DEAD: a ContainerPeerState subscriber
    for origin c2 hears it on routing key 1055.c2 (one about c3 passes it by),
    with its fields and the announcing container's id."""
    listener = await container.spawn(Process, name="listener")
    heard: Collector = Collector()
    await events.ContainerPeerStateEventSubscriber(  # type: ignore[attr-defined]
        listener, origin="c2", handler=lambda e, msg: heard((e, msg))
    ).start()
    container.announce(1055, "c3", **{**PEER_STATE, "peer_id": "c3", "state": "SUSPECT"})
    container.announce(1055, "c2", **PEER_STATE)
    ((event, msg),) = await heard.wait(1)
    assert msg.delivery.routing_key == "1055.c2"
    assert event.event_id == EventId.CONTAINER_PEER_STATE and event.origin == "c2"
    assert peer_state(event) == tuple(PEER_STATE.values())
    assert event.container_id == container.id


@pytest_twisted.ensureDeferred
async def test_an_event_nobody_hears_is_not_made_on_the_embedded_broker(
    container: Container, broker_kind: str
) -> None:
    """On the embedded broker, an event no binding matches is not even encoded
    (an event that cannot be encoded shows it); one a subscriber hears is."""

    class Unencodable:
        event_id, origin, container_id = 1001, "nobody-listens", ""

    if broker_kind == "embedded":
        sent = events.publish(container.exchange, "test", Unencodable())
        assert sent.called and sent.result is None
    else:  # RabbitMQ is not asked who listens: the event is made, and cannot be
        with pytest.raises(MessageFormatError):
            events.publish(container.exchange, "test", Unencodable())
    listener = await container.spawn(Process, name="listener")
    got = await subscribe(listener, origin="nobody-listens")
    with pytest.raises(MessageFormatError):
        events.publish(container.exchange, "test", Unencodable())
    await emit(listener, 1001, "nobody-listens")
    assert len(await got.wait(1)) == 1
