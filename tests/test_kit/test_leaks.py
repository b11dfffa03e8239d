"""Teardown leaves nothing behind: reactor leftovers are found (timers that fire during
teardown too), connections a test left open are reported and closed, and a stopped
system has no delayed calls, sockets or broker queues left, on either broker."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import Factory

from ion.core import exception as exc
from ion.services.hello.service import HelloServiceClient
from ion.test import IonKit, LeftoversError, RecordingProcess, reactor_state, wait_until_clean
from ion.test.brokers import TrackedConnection, parse_broker
from ion.test.leaks import assert_clean, leftovers, pending_calls
from ion.test.plugin import require_broker

BROKERS = ["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)]


def _noop() -> None:
    pass


def test_leftovers_names_new_delayed_calls_only():
    """A delayed call made after the snapshot is a leftover; one made before is not."""
    old = reactor.callLater(60, _noop)
    before = reactor_state(reactor)
    new = reactor.callLater(60, _noop)
    try:
        found = leftovers(reactor, before)
    finally:
        old.cancel()
        new.cancel()
    assert len(found) == 1 and "_noop" in found[0]
    assert leftovers(reactor, before) == []


@pytest_twisted.ensureDeferred
async def test_wait_until_clean_waits_for_a_closing_socket():
    """A listening socket is a leftover until it has closed."""
    before = reactor_state(reactor)
    port = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
    assert any("reader" in f for f in leftovers(reactor, before))

    port.stopListening()

    assert await wait_until_clean(reactor, before) == []


@pytest_twisted.ensureDeferred
async def test_assert_clean_raises_with_what_stayed():
    """assert_clean gives up after its timeout and names the leftover."""
    before = reactor_state(reactor)
    call = reactor.callLater(60, _noop)
    try:
        with pytest.raises(LeftoversError, match="_noop"):
            await assert_clean(reactor, before, timeout=0.05)
    finally:
        call.cancel()


@pytest.mark.parametrize("broker", BROKERS)
@pytest_twisted.ensureDeferred
async def test_stopped_system_leaves_nothing_behind(broker):
    """After stop: no delayed calls, readers or writers, and no queue or exchange of the sysname."""
    spec = require_broker(parse_broker(broker))
    kit = IonKit(broker=spec, root=".")
    before = reactor_state(reactor)
    first = await kit.start_container(rel="res/deploy/hello.rel")
    second = await kit.start_container()
    recorder = await second.spawn(RecordingProcess)
    await recorder.subscribe()
    await HelloServiceClient(container=second).hello("x")
    declared = dict(kit.brokers.declarations.queues)
    exchanges = list(kit.brokers.declarations.exchanges)

    await kit.stop()  # raises LeftoversError if anything stayed

    assert not first.running and not second.running
    assert f"{kit.sysname}.hello" in declared and exchanges == [
        f"ion.{kit.sysname}",
        f"ion.{kit.sysname}.events",
        f"ion.{kit.sysname}.containers",
    ]
    assert await wait_until_clean(reactor, before, timeout=0) == []
    probe = kit.brokers.raw_connection()
    await probe.connect()
    try:
        for queue in declared:
            assert not await probe.queue_exists(queue), queue
        for exchange in exchanges:
            with pytest.raises(exc.BrokerError):
                await probe.publish(exchange, "x", b"x", mandatory=True, confirm=True)
    finally:
        await probe.close()
    if kit.brokers.embedded is not None:
        assert kit.brokers.embedded.queue_names() == []
        assert kit.brokers.embedded.exchange_names() == []


@pytest.mark.parametrize("broker", BROKERS)
@pytest_twisted.ensureDeferred
async def test_kit_reports_and_removes_a_stray_queue(broker):
    """A transient queue still there at teardown is reported, and deleted all the same."""
    spec = require_broker(parse_broker(broker))
    kit = IonKit(broker=spec, root=".")
    await kit.start_container()
    conn = kit.brokers.connection()
    await conn.connect()
    stray = await conn.declare_queue(f"{kit.sysname}.stray", auto_delete=True)
    await conn.close()  # an auto-delete queue nobody consumed outlives its connection

    with pytest.raises(LeftoversError, match="stray") as caught:
        await kit.stop()

    assert "left open" not in str(caught.value)

    probe = kit.brokers.raw_connection()
    await probe.connect()
    try:
        assert not await probe.queue_exists(stray)
    finally:
        await probe.close()


@pytest_twisted.ensureDeferred
async def test_kit_reports_a_leftover_delayed_call():
    """A timer a test started and did not stop makes kit.stop fail, naming it."""
    kit = IonKit(root=".", leftover_timeout=0.05)
    await kit.start_container()
    call = reactor.callLater(60, _noop)
    try:
        with pytest.raises(LeftoversError, match="_noop"):
            await kit.stop()
    finally:
        call.cancel()


@pytest_twisted.ensureDeferred
async def test_wait_until_clean_reports_a_timer_that_fires():
    """A timer pending at the start of the wait that fires (not cancelled) is reported."""
    before = reactor_state(reactor)
    reactor.callLater(0.01, _noop)

    found = await wait_until_clean(reactor, before)

    assert found == ["delayed call _noop fired after the test ended"]


@pytest_twisted.ensureDeferred
async def test_wait_until_clean_lets_cancelled_and_zero_delay_calls_be():
    """Cancelled watched calls and calls already due (zero-delay, as closing sockets
    make) are no leftovers."""
    before = reactor_state(reactor)
    cancelled = reactor.callLater(60, _noop)
    watched = pending_calls(reactor, before)
    due = reactor.callLater(0, _noop)
    cancelled.cancel()

    assert watched == {cancelled}
    assert due not in pending_calls(reactor, before)
    assert await wait_until_clean(reactor, before, watched=watched) == []
    assert due.called


@pytest.mark.parametrize("broker", BROKERS)
@pytest_twisted.ensureDeferred
async def test_kit_reports_a_timer_that_fires_during_teardown(broker):
    """A timer still pending when the containers have stopped is a leftover even if it
    fires before the leftover check ends (here: as the broker is being cleaned up)."""
    spec = require_broker(parse_broker(broker))
    kit = IonKit(broker=spec, root=".")
    await kit.start_container()
    call = reactor.callLater(60, _noop)
    cleanup = kit.brokers.cleanup

    async def cleanup_as_the_timer_comes_due(sysname):
        call.reset(0)  # due now: it fires on the next reactor turn, after the containers stopped
        return await cleanup(sysname)

    kit.brokers.cleanup = cleanup_as_the_timer_comes_due
    try:
        with pytest.raises(LeftoversError, match="delayed call _noop fired after the test ended"):
            await kit.stop()
    finally:
        if call.active():
            call.cancel()
    assert call.called


@pytest_twisted.ensureDeferred
async def test_kit_lets_a_timer_of_the_shutdown_fire():
    """A timer made while the containers stop (as closing a connection may make) is the
    shutdown's own: it may fire during the leftover check without failing the test."""
    kit = IonKit(root=".")
    container = await kit.start_container()
    stop = container.stop
    made: list = []

    async def stop_making_a_timer():
        await stop()
        made.append(reactor.callLater(0.05, _noop))

    container.stop = stop_making_a_timer

    await kit.stop()

    assert made and made[0].called


async def _gone_from_broker(kit, queues):
    """Assert that none of C{queues} nor the system's exchanges are left on the broker."""
    probe = kit.brokers.raw_connection()
    await probe.connect()
    try:
        for queue in queues:
            assert not await probe.queue_exists(queue), queue
        for exchange in (f"ion.{kit.sysname}", f"ion.{kit.sysname}.events"):
            assert not await probe.exchange_exists(exchange), exchange
    finally:
        await probe.close()


@pytest.mark.parametrize("broker", BROKERS)
@pytest_twisted.ensureDeferred
async def test_kit_reports_and_closes_a_connection_left_open(broker):
    """A kit connection left open with an exclusive queue is named, closed, and the
    system's exchanges and queues are deleted all the same."""
    spec = require_broker(parse_broker(broker))
    kit = IonKit(broker=spec, root=".")
    await kit.start_container()
    conn = kit.brokers.connection()
    await conn.connect()
    mine = await conn.declare_queue(f"{kit.sysname}.mine", exclusive=True)

    try:
        with pytest.raises(LeftoversError) as caught:
            await kit.stop()
    finally:
        await conn.close()

    assert caught.value.leftovers == [
        f"broker connection {conn.name} left open (connected, never closed)"
    ]
    assert not conn.left_open
    await _gone_from_broker(kit, [mine])


@pytest.mark.parametrize("broker", BROKERS)
@pytest_twisted.ensureDeferred
async def test_kit_reports_a_consumer_left_open_on_a_service_queue(broker):
    """A connection left consuming a service's requests is reported on both brokers."""
    spec = require_broker(parse_broker(broker))
    kit = IonKit(broker=spec, root=".")
    await kit.start_container(rel="res/deploy/hello.rel")
    conn = kit.brokers.connection()
    await conn.connect()
    await conn.consume(f"{kit.sysname}.hello", lambda delivery: None)

    try:
        with pytest.raises(LeftoversError, match="left open"):
            await kit.stop()
    finally:
        await conn.close()

    await _gone_from_broker(kit, [f"{kit.sysname}.hello"])


@pytest.mark.parametrize("broker", BROKERS)
@pytest_twisted.ensureDeferred
async def test_cleanup_carries_on_past_a_queue_it_cannot_delete(broker):
    """A queue exclusive to a connection the kit does not own cannot be deleted: that is
    reported (with the leak check off too, as it stays on the broker), and the
    exchanges are deleted all the same."""
    spec = require_broker(parse_broker(broker))
    kit = IonKit(broker=spec, root=".", check_leftovers=False)
    await kit.start_container()
    # Records its declarations like the kit's own, but the kit neither owns nor closes it.
    foreign = TrackedConnection(kit.brokers.raw_connection(), kit.brokers.declarations)
    await foreign.connect()
    locked = await foreign.declare_queue(f"{kit.sysname}.locked", exclusive=True)

    try:
        with pytest.raises(LeftoversError) as caught:
            await kit.stop()
        [failure] = caught.value.leftovers
        assert failure.startswith(f"deleting broker queue {locked} (sysname {kit.sysname}): ")
        assert "ResourceLockedError" in failure
    finally:
        await foreign.close()

    await _gone_from_broker(kit, [locked])
