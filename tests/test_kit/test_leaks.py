"""Teardown leaves nothing behind: reactor leftovers are found, and a stopped system
has no delayed calls, sockets or broker queues left, on either broker."""

from __future__ import annotations

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.protocol import Factory

from ion.core import exception as exc
from ion.services.hello.service import HelloServiceClient
from ion.test import IonKit, LeftoversError, RecordingProcess, reactor_state, wait_until_clean
from ion.test.brokers import parse_broker
from ion.test.leaks import assert_clean, leftovers
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
    if spec.is_amqp:
        await conn.close()  # an auto-delete queue nobody consumed outlives its connection

    with pytest.raises(LeftoversError, match="stray"):
        await kit.stop()

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
