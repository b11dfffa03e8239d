"""Containers of one system on RabbitMQ, in one reactor: calls, round robin,
isolation, redelivery, and a broker link cut under them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint

from ion.core import exception as exc
from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.messaging import message as m
from ion.core.messaging.amqp import AmqpBroker
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.services.hello import HelloService
from ion.test.proxy import Proxy
from tests.helpers import Collector, wait_for
from tests.rabbit import HOST, PORT, URL, delete_systems, require_rabbitmq

pytestmark = pytest.mark.rabbitmq


class Gated(ServiceProcess):
    """Holds every call until released; records what it saw."""

    service_name = "gated"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered = Collector()
        self.gate: defer.Deferred[None] = defer.Deferred()

    async def op_work(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.entered((content, msg.delivery.redelivered))
        await self.gate
        return {"by": str(self.id), "work": content}

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.entered((content, False))
        return content


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class System:
    """Makes containers of one (or another) unique sysname on RabbitMQ; cleans up after."""

    def __init__(self) -> None:
        self.sysname = f"t-{uuid.uuid4().hex[:8]}"
        self.containers: list[Container] = []
        self.proxies: list[Proxy] = []

    async def container(self, sysname: str | None = None, proxy: Proxy | None = None) -> Container:
        reactor = _reactor()
        n = len(self.containers) + 1
        endpoint = None
        if proxy is not None:
            endpoint = lambda r, _p: TCP4ClientEndpoint(r, "127.0.0.1", proxy.port)  # noqa: E731
        broker = AmqpBroker(reactor, URL, heartbeat=10, endpoint_factory=endpoint, name=f"c{n}")
        config = Config(DEFAULTS).merged({"container": {"rpc_timeout": 10}})
        container = Container(
            reactor=reactor,
            config=config,
            container_id=f"{self.sysname}-c{n}",
            sysname=sysname or self.sysname,
            broker=broker,
        )
        await container.start()
        self.containers.append(container)
        return container

    async def proxy(self) -> Proxy:
        proxy = Proxy(_reactor(), (HOST, PORT))
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    async def cleanup(self) -> None:
        sysnames = {c.sysname for c in self.containers}
        shared = set().union(*(c.exchange.shared_queues for c in self.containers))
        for container in reversed(self.containers):
            await container.stop()
        for proxy in self.proxies:
            await proxy.stop()
        await delete_systems(sysnames, shared)


@pytest_twisted.async_yield_fixture
async def system() -> AsyncIterator[System]:
    """A fresh system (unique sysname) on the shared RabbitMQ, removed afterwards."""
    require_rabbitmq()
    s = System()
    yield s
    await s.cleanup()


@pytest_twisted.ensureDeferred
async def test_call_across_containers(system: System) -> None:
    """A client in one container calls a service in another exactly as a local one."""
    a, b = await system.container(), await system.container()
    await a.spawn(HelloService)
    client = await b.spawn(Process, name="client")
    assert await wait_for(client.rpc_send("hello", "hello", "you")) == {"value": "Hello there, you"}


@pytest_twisted.ensureDeferred
async def test_round_robin_across_containers(system: System) -> None:
    """Instances of one service in two containers share its calls."""
    a, b = await system.container(), await system.container()
    sa, sb = await a.spawn(Gated), await b.spawn(Gated)
    client = await a.spawn(Process, name="client")
    for i in range(10):
        await wait_for(client.rpc_send("gated", "echo", i))
    assert len(sa.entered) + len(sb.entered) == 10
    assert len(sa.entered) >= 3 and len(sb.entered) >= 3


@pytest_twisted.ensureDeferred
async def test_other_sysname_cannot_reach(system: System) -> None:
    """A container of another sysname on the same broker gets 'no such service' at once."""
    a = await system.container()
    await a.spawn(HelloService)
    stranger = await system.container(sysname=system.sysname + "-other")
    client = await stranger.spawn(Process, name="client")
    with pytest.raises(exc.NoSuchServiceError):
        await wait_for(client.rpc_send("hello", "hello", "x", timeout=30), timeout=5)


@pytest_twisted.ensureDeferred
async def test_unacked_request_redelivered_when_instance_dies(system: System) -> None:
    """A request taken by an instance whose connection dies goes to the surviving one."""
    proxy = await system.proxy()
    doomed = await system.container(proxy=proxy)
    survivor_c = await system.container()
    first = await doomed.spawn(Gated)
    client = await survivor_c.spawn(Process, name="client")
    call = client.rpc_send("gated", "work", "job")
    await first.entered.wait(1)  # the doomed instance holds it, unacked
    survivor = await survivor_c.spawn(Gated)
    survivor.gate.callback(None)
    proxy.cut()  # the doomed container's link dies with the request unacked
    result = await wait_for(call, timeout=10)
    assert result == {"by": str(survivor.id), "work": "job"}
    assert survivor.entered.items == [("job", True)]


class OneAtATime(Gated):
    concurrency = 1

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.delivered = Collector()  # taken: running or waiting for the one slot
        take = self.runtime.deliver

        def taken(delivery: Any) -> None:
            take(delivery)
            self.delivered(delivery)

        self.runtime.deliver = taken  # type: ignore[method-assign]


@pytest_twisted.ensureDeferred
async def test_waiting_requests_go_to_another_container_at_terminate(system: System) -> None:
    """With concurrency 1 and prefetch 32, a second request waits, unacked, in the
    busy instance; when that instance terminates it goes back to the queue and the
    instance in the other container answers it."""
    busy_c, other_c = await system.container(), await system.container()
    busy = await busy_c.spawn(OneAtATime)
    client = await other_c.spawn(Process, name="client")
    held = client.rpc_send("gated", "work", "held")
    waiting = client.rpc_send("gated", "work", "waiting")
    await busy.delivered.wait(2)
    assert busy.entered.items == [("held", False)]
    other = await other_c.spawn(OneAtATime)
    other.gate.callback(None)
    terminating = defer.ensureDeferred(busy_c.terminate(busy))
    assert await wait_for(waiting, timeout=10) == {"by": str(other.id), "work": "waiting"}
    busy.gate.callback(None)
    assert (await wait_for(held, timeout=10))["by"] == str(busy.id)
    await wait_for(terminating, timeout=10)


async def _served_through_a_proxy(
    system: System, service: type[Gated]
) -> tuple[Proxy, Collector, Any, Process]:
    """A service in a container whose broker link runs through a proxy the test
    can cut, a collector of that container's reconnects, and a client elsewhere."""
    proxy = await system.proxy()
    served = await system.container(proxy=proxy)
    reconnected = Collector()
    served.exchange.broker.on_reconnected(lambda: reconnected(True))
    server = await served.spawn(service)
    client = await (await system.container()).spawn(Process, name="client")
    return proxy, reconnected, server, client


@pytest_twisted.ensureDeferred
async def test_a_request_waiting_when_the_link_is_cut_runs_once(system: System) -> None:
    """A request waiting for the busy slot when the link is cut is given back by
    the broker and delivered again: that delivery runs, the stale copy does not."""
    proxy, reconnected, busy, client = await _served_through_a_proxy(system, OneAtATime)
    held = client.rpc_send("gated", "work", "held", timeout=20)
    waiting = client.rpc_send("gated", "work", "waiting", timeout=20)
    await busy.delivered.wait(2)
    proxy.cut()
    await reconnected.wait(1, timeout=20)
    await busy.delivered.wait(4, timeout=10)  # both again, marked redelivered
    busy.gate.callback(None)
    results = await wait_for(defer.gatherResults([held, waiting]), timeout=20)
    assert [r["work"] for r in results] == ["held", "waiting"]
    await busy.entered.wait(3, timeout=10)
    assert busy.runtime.inflight == 0 and not busy.runtime.waiting  # nothing more will run
    assert busy.entered.items == [("held", False), ("held", True), ("waiting", True)]


@pytest_twisted.ensureDeferred
async def test_a_request_to_the_process_waiting_when_the_link_is_cut_is_answered(
    system: System,
) -> None:
    """A request to the process's own (exclusive) queue waiting for the slot when
    the link is cut has no copy left on the broker: it stays, and is answered."""
    proxy, reconnected, busy, client = await _served_through_a_proxy(system, OneAtATime)
    held = client.rpc_send(busy.id, "work", "held", timeout=20)
    waiting = client.rpc_send(busy.id, "work", "waiting", timeout=20)
    await busy.delivered.wait(2)
    proxy.cut()
    await reconnected.wait(1, timeout=20)
    busy.gate.callback(None)
    results = await wait_for(defer.gatherResults([held, waiting]), timeout=20)
    assert [r["work"] for r in results] == ["held", "waiting"]


@pytest_twisted.ensureDeferred
async def test_link_cut_fails_calls_then_recovers(system: System, logs: Any) -> None:
    """A cut link fails in-flight calls promptly with a clear error; the container
    reconnects and serves again, and keeps running throughout."""
    proxy = await system.proxy()
    server_c = await system.container()
    server = await server_c.spawn(Gated)
    client_c = await system.container(proxy=proxy)
    reconnected = Collector()
    client_c.exchange.broker.on_reconnected(lambda: reconnected(True))
    client = await client_c.spawn(Process, name="client")
    assert await wait_for(client.rpc_send("gated", "echo", "before")) == "before"
    call = client.rpc_send("gated", "work", "during", timeout=30)
    await server.entered.wait(2)
    proxy.cut()
    with pytest.raises(exc.ConnectionLostError):
        await wait_for(call, timeout=5)
    server.gate.callback(None)
    await reconnected.wait(1, timeout=20)
    await logs.wait_for_text("broker connection restored")
    assert client_c.running and client.state == "ACTIVE"
    assert await wait_for(client.rpc_send("gated", "echo", "after"), timeout=10) == "after"


@pytest_twisted.ensureDeferred
async def test_messages_accepted_during_outage_are_not_lost(system: System) -> None:
    """Messages the broker accepted for a service while its only instance was cut
    off reach it once it has reconnected: nothing acknowledged is lost."""
    proxy, reconnected, server, client = await _served_through_a_proxy(system, Gated)
    proxy.hold()  # reconnects stall until restore(), so the outage lasts
    proxy.cut()
    for i in range(20):
        await wait_for(client.send("gated", "echo", i))  # confirmed by the broker
    proxy.restore()
    await reconnected.wait(1, timeout=20)
    got = await server.entered.wait(20, timeout=10)
    assert sorted(content for content, _ in got) == list(range(20))


@pytest_twisted.ensureDeferred
async def test_bad_input_from_the_wire(system: System, logs: Any) -> None:
    """A body that is not msgpack, one with missing headers, one with RabbitMQ
    x-death style header tables, and a 1 MiB body reach a service on RabbitMQ:
    each is answered or dropped cleanly, and the service keeps serving."""
    import datetime
    from decimal import Decimal

    import pika

    a = await system.container()
    service = await a.spawn(Gated)
    client = await a.spawn(Process, name="client")
    queue = a.exchange.queue_name("gated")
    conn = pika.BlockingConnection(pika.URLParameters(URL))  # a foreign publisher
    try:
        ch = conn.channel()
        ch.basic_publish("", queue, b"\xc1 not msgpack")
        ch.basic_publish("", queue, m.encode({m.OP: "echo"}, "no headers"))
        x_death = [
            {
                "count": 1,
                "reason": "rejected",
                "queue": "q",
                "time": datetime.datetime(2026, 1, 1),
                "exchange": "",
                "routing-keys": ["q"],
                "ratio": Decimal("1.5"),
            }
        ]
        props = pika.BasicProperties(headers={"x-death": x_death, "big": 2**40, "none": None})
        body = m.encode(
            {
                m.SENDER: "foreign",
                m.RECEIVER: "gated",
                m.CONV_ID: "foreign#1",
                m.PROTOCOL: "none",
                m.PERFORMATIVE: "request",
                m.OP: "echo",
            },
            "with x-death",
        )
        ch.basic_publish("", queue, body, props)
    finally:
        conn.close()
    await logs.wait_for_text("body is not msgpack")
    await logs.wait_for_text("missing or non-string headers")
    await service.entered.wait_until(lambda item: item[0] == "with x-death")
    big = b"\x00\xff" * (512 * 1024)
    assert await wait_for(client.rpc_send("gated", "echo", big), timeout=10) == big
    assert service.state == "ACTIVE" and a.exchange.broker.is_open


def test_unreachable_broker_at_boot_exits_1(tmp_path: Any) -> None:
    """A container whose broker cannot be reached retries, says so, and then exits 1
    with a clear message."""
    from tests.launch import TIMEOUT, launch

    proc = launch(
        "nobroker",
        "-n",
        "--broker",
        "amqp://127.0.0.1:1/",
        "-a",
        "broker.connect_attempts=2,broker.retry_delay=0.1",
    )
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 1, output
    assert "broker unreachable (attempt 1 of 2)" in output
    assert "broker unreachable after 2 attempts" in output


def test_refused_login_at_boot_exits_1_at_once(tmp_path: Any) -> None:
    """A container whose login the broker refuses (password from the environment) does not
    retry: it exits 1 with the broker's reason, and the password appears nowhere."""
    require_rabbitmq()
    from tests.launch import TIMEOUT, launch

    proc = launch(
        "refused",
        "-n",
        "--broker",
        f"amqp://{HOST}:{PORT}/",
        ION_BROKER__USERNAME="guest",
        ION_BROKER__PASSWORD="not-the-password",
    )
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 1, output
    assert "the broker refused the connection" in output and "403 ACCESS_REFUSED" in output
    assert "attempt 1 of" not in output
    assert "not-the-password" not in output


@pytest_twisted.ensureDeferred
async def test_terminate_while_link_down_leaves_no_zombie(system: System) -> None:
    """A process terminated while the broker link is down finishes terminating, and
    after the reconnect none of its consumers come back to bounce messages."""
    proxy = await system.proxy()
    c = await system.container(proxy=proxy)
    reconnected = Collector()
    c.exchange.broker.on_reconnected(lambda: reconnected(True))
    parent = await c.spawn(Gated)
    child = await parent.spawn_child(Process, name="child")
    survivor = await (await system.container()).spawn(Gated)
    survivor.gate.callback(None)
    client = await (await system.container()).spawn(Process, name="client")
    proxy.hold()
    proxy.cut()
    await wait_for(c.terminate(parent))
    assert parent.state == child.state == "TERMINATED"
    proxy.restore()
    await reconnected.wait(1, timeout=20)
    consumers = [cons.queue for cons in c.exchange.broker._consumers.values()]
    assert not any(str(parent.id) in q or str(child.id) in q for q in consumers), consumers
    for i in range(6):  # all go to the survivor: nothing is bounced by a dead consumer
        assert await wait_for(client.rpc_send("gated", "work", i), timeout=10) == {
            "by": str(survivor.id),
            "work": i,
        }
