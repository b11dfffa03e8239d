"""Expired requests do not run: a request carries its caller's deadline, and a
server drops one whose deadline passed before its handler started."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.runtime import REPLY_KEY_SUFFIX
from ion.core.process.service import ServiceProcess
from ion.test.fakes import FakeDelivery, OfflineContainer
from ion.test.waiting import wait_for

BROKERS = ["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)]


class OneAtATime(ServiceProcess):
    """One handler at a time, each held until released."""

    service_name = "one_at_a_time"
    concurrency = 1

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered: list[Any] = []
        self.gate: defer.Deferred[None] = defer.Deferred()

    async def op_work(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.entered.append(content)
        await self.gate
        return content


def _wire(container: OfflineContainer, *procs: Process) -> None:
    """Deliver what is published to each process's id and reply key to it."""
    for proc in procs:
        for key in (str(proc.id), str(proc.id) + REPLY_KEY_SUFFIX):
            container.exchange.route(
                key,
                lambda msg, p=proc, k=key: p.runtime.deliver(
                    FakeDelivery(m.encode(msg.headers, msg.content), k)
                ),
            )


@pytest_twisted.ensureDeferred
async def test_requests_whose_deadline_passed_while_waiting_are_not_run() -> None:
    """On the injected clock: a request carries its caller's absolute deadline
    (ms); those still waiting for a turn when it passes are dropped unrun and
    counted, the one running is answered."""
    clock = Clock()
    clock.advance(1_000)
    container = OfflineContainer(reactor=clock)
    service = await container.spawn(OneAtATime)
    caller = await container.spawn(Process, name="caller")
    _wire(container, service, caller)
    ttls: list[Any] = []
    publish = container.exchange.publish

    def recording(key: str, body: bytes, *a: Any, expiration: Any = None, **kw: Any) -> Any:
        ttls.append(expiration)
        return publish(key, body, *a, expiration=expiration, **kw)

    container.exchange.publish = recording  # type: ignore[method-assign]
    first = caller.rpc_send(service.id, "work", 0, timeout=10)
    late = [caller.rpc_send(service.id, "work", i, timeout=0.3) for i in range(1, 6)]
    errors: list[Any] = []
    for call in late:
        call.addErrback(errors.append)
    [request] = container.exchange.sent("work")[:1]
    assert request.headers[m.EXPIRY] == 1_010_000
    assert ttls == [10_000, 300, 300, 300, 300, 300]  # AMQP expiration, ms, relative
    assert service.entered == [0]
    clock.advance(0.3)
    assert [e.type for e in errors] == [exc.TimeoutError] * 5
    service.gate.callback(None)
    assert first.result == 0
    assert service.entered == [0] and service.expired_dropped == 5
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_a_request_arriving_after_its_deadline_is_not_run(logs) -> None:
    """A request delivered after its expiry is dropped at once, logged at debug;
    one within it runs."""
    clock = Clock()
    container = OfflineContainer(reactor=clock)
    service = await container.spawn(OneAtATime)
    service.gate.callback(None)
    headers = {
        m.SENDER: "someone",
        m.RECEIVER: str(service.id),
        m.REPLY_TO: "someone.reply",
        m.CONV_ID: "someone#x.1",
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "request",
        m.OP: "work",
    }
    clock.advance(5)
    for expiry, content in ((5_000, "expired"), (5_001, "in time")):
        delivery = FakeDelivery(m.encode({**headers, m.EXPIRY: expiry}, content), str(service.id))
        service.runtime.deliver(delivery)
        assert delivery.acked
    assert service.entered == ["in time"] and service.expired_dropped == 1
    [said] = [e for e in logs.events.items if "dropped unrun" in logs.text(e)]
    assert said["log_level"] == LogLevel.debug
    assert "its caller's deadline passed" in logs.text(said)
    await container.stop()


@pytest.mark.parametrize("ion_broker", BROKERS, indirect=True)
@pytest_twisted.ensureDeferred
async def test_callers_that_gave_up_leave_no_work_behind(ion_container_factory) -> None:
    """Six calls to a concurrency=1 service, five of them with a short timeout that
    passes while the first runs: the first is answered, the other five time out at
    their callers and their handlers never run."""
    service = await (await ion_container_factory()).spawn(OneAtATime)
    client = await (await ion_container_factory()).spawn(Process, name="client")
    first = client.rpc_send("one_at_a_time", "work", 0, timeout=30)
    late = [client.rpc_send("one_at_a_time", "work", i, timeout=0.3) for i in range(1, 6)]
    for call in late:
        with pytest.raises(exc.TimeoutError):
            await wait_for(call, 5)
    service.gate.callback(None)
    assert await wait_for(first, 5) == 0
    assert await wait_for(client.rpc_send("one_at_a_time", "work", "next"), 5) == "next"
    assert service.entered == [0, "next"] and service.expired_dropped == 5
