"""Broker-proven containers: a system ion-admin set up on the suite's own RabbitMQ node
(C{tls_node}), each container with a broker user of its own and C{broker.secure} on.
The broker proves who sent a message (user_id), and refuses a container another's
mailboxes, C{#}, another's queues, and another system's vhost; the observer binds C{#}."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.exception import (
    AccessRefusedError,
    PreconditionFailedError,
    ResourceLockedError,
    StartupError,
)
from ion.core.messaging.amqp import AmqpBroker
from ion.core.process.process import Process
from ion.services.hello import HelloService
from tests.broker_users import AdminSystem, setup_system
from tests.helpers import Collector, wait_for
from tests.rabbit_node import RabbitNode

pytestmark = pytest.mark.rabbitmq


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@pytest.fixture(scope="module")
def system(tls_node: RabbitNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminSystem]:
    """Containers a and b and an observer, set up by ion-admin; torn down after the module."""
    made = setup_system(tls_node, tmp_path_factory.mktemp("sec-a"))
    try:
        yield made
    finally:
        assert made.admin("teardown", made.sysname) == 0


class WhoAmI(Process):
    """Answers with the broker user that sent the request, as the broker proved it."""

    def op_whoami(self, content: Any, headers: dict[str, Any], msg: Any) -> dict[str, Any]:
        return {"broker_user": msg.broker_user}


async def _container(system: AdminSystem, role: str, **more: Any) -> Container:
    container = Container(reactor=_reactor(), config=system.config(role, **more))
    await wait_for(container.start(), timeout=30)
    return container


async def _broker(system: AdminSystem, role: str) -> AmqpBroker:
    broker = AmqpBroker(_reactor(), system.url(role), reconnect=False)
    await wait_for(broker.connect(), timeout=15)
    return broker


@pytest_twisted.ensureDeferred
async def test_two_containers_call_each_other(system: AdminSystem) -> None:
    """The happy path: containers a and b, each over its own broker user, call a
    service and each other's processes (their mailboxes on the topic exchange),
    and each request carries the sender's broker user, proven by the broker."""
    a = await _container(system, "a")
    b = await _container(system, "b")
    try:
        assert a.id.startswith(system.users["a"] + ".")  # the user prefixes the id
        assert a.exchange.exchange_type == "topic"
        await a.spawn(HelloService)
        who_a = await a.spawn(WhoAmI, name="whoami")
        who_b = await b.spawn(WhoAmI, name="whoami")
        client_b = await b.spawn(Process, name="client")
        client_a = await a.spawn(Process, name="client")
        assert await wait_for(client_b.rpc_send("hello", "hello", "b")) == {
            "value": "Hello there, b"
        }
        assert await wait_for(client_b.rpc_send(who_a.id, "whoami")) == {
            "broker_user": system.users["b"]
        }
        assert await wait_for(client_a.rpc_send(who_b.id, "whoami")) == {
            "broker_user": system.users["a"]
        }
    finally:
        await b.stop()
        await a.stop()


@pytest_twisted.ensureDeferred
async def test_forged_user_id_refused(system: AdminSystem) -> None:
    """A publish whose user_id names another broker user is refused by the broker
    (406) as a PreconditionFailedError; the container goes on working."""
    a = await _container(system, "a")
    try:
        await a.spawn(HelloService)
        client = await a.spawn(Process, name="client")
        broker: Any = a.exchange.broker
        broker.user_id = system.users["b"]  # forged
        with pytest.raises(PreconditionFailedError, match="user_id property set to"):
            await wait_for(
                broker.publish(a.exchange.exchange_name, "hello", b"x", None, True, True),
                timeout=10,
            )
        broker.user_id = system.users["a"]
        assert await wait_for(client.rpc_send("hello", "hello", "still")) == {
            "value": "Hello there, still"
        }
    finally:
        await a.stop()


@pytest_twisted.ensureDeferred
async def test_container_cannot_bind_anothers_keys_nor_everything(system: AdminSystem) -> None:
    """On the system exchange user a binds its own mailbox keys, its agent's and
    service names; another container's mailbox or agent key, C{#} and C{*} are
    refused (403, AccessRefusedError)."""
    a, b = system.users["a"], system.users["b"]
    broker = await _broker(system, "a")
    exchange, queue = f"ion.{system.sysname}", f"{system.sysname}.p.1@{a}"
    try:
        await broker.declare_exchange(exchange, "topic")
        await broker.declare_queue(queue, exclusive=True, auto_delete=True)
        for key in (f"p.1@{a}", f"p.1@{a}.reply", f"cc.{a}", "hello", "some.service"):
            await wait_for(broker.bind_queue(queue, exchange, key))
        for key in (f"p.1@{b}", f"p.1@{b}.reply", f"cc.{b}", f"p.1@{a}x", "#", "*", "p.*"):
            with pytest.raises(AccessRefusedError, match="ACCESS_REFUSED"):
                await wait_for(broker.bind_queue(queue, exchange, key))
    finally:
        await broker.close()


@pytest_twisted.ensureDeferred
async def test_container_cannot_consume_or_delete_anothers_queues(system: AdminSystem) -> None:
    """Container b's queues are not user a's: its process's mailbox (exclusive to b's
    connection: 405 to a consume, 403 to a delete), and a queue of b's that is not
    exclusive, where the permissions alone refuse a's consume and delete (403)."""
    b = await _container(system, "b")
    broker = await _broker(system, "a")
    b_raw = await _broker(system, "b")
    try:
        proc = await b.spawn(Process, name="victim")
        mailbox = b.exchange.queue_name(str(proc.id))
        with pytest.raises(ResourceLockedError):
            await wait_for(broker.consume(mailbox, lambda d: None))
        with pytest.raises(AccessRefusedError, match="ACCESS_REFUSED"):
            await wait_for(broker.delete_queue(mailbox))
        assert await wait_for(b.exchange.broker.queue_exists(mailbox))
        shared = f"{system.sysname}.p.1@{system.users['b']}"  # b's, not exclusive
        await b_raw.declare_queue(shared)
        with pytest.raises(AccessRefusedError, match="ACCESS_REFUSED"):
            await wait_for(broker.consume(shared, lambda d: None))
        with pytest.raises(AccessRefusedError, match="ACCESS_REFUSED"):
            await wait_for(broker.delete_queue(shared))
        await b_raw.delete_queue(shared)
    finally:
        await b_raw.close()
        await broker.close()
        await b.stop()


@pytest_twisted.ensureDeferred
async def test_container_cannot_reach_another_systems_vhost(
    system: AdminSystem, tls_node: RabbitNode, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """User a of one system, pointed at another system's vhost: the broker refuses
    the connection (530) and the container stops at boot with a clear StartupError."""
    other = setup_system(tls_node, tmp_path_factory.mktemp("sec-b"), ("c",), observer=False)
    try:
        settings = system.settings("a")["broker"]
        url = settings["url"].rsplit("/", 1)[0] + "/" + other.sysname
        container = Container(
            reactor=_reactor(),
            config=system.config("a", broker={"url": url, "connect_attempts": 5}),
            sysname=other.sysname,
        )
        try:
            with pytest.raises(StartupError, match="refused the connection.*530 NOT_ALLOWED"):
                await wait_for(container.start(), timeout=15)
        finally:
            await container.stop()
    finally:
        assert other.admin("teardown", other.sysname) == 0


@pytest_twisted.ensureDeferred
async def test_observer_binds_everything(system: AdminSystem) -> None:
    """The observer's user binds C{#} on the system exchange and sees a message
    between containers, with the sender's broker user."""
    a = await _container(system, "a")
    observer = await _broker(system, "obs")
    seen: Collector[Any] = Collector()
    try:
        queue = f"{system.sysname}.observer.tap"
        await observer.declare_queue(queue, exclusive=True, auto_delete=True)
        await wait_for(observer.bind_queue(queue, a.exchange.exchange_name, "#"))
        await observer.consume(queue, seen, auto_ack=True)
        await a.spawn(HelloService)
        client = await a.spawn(Process, name="client")
        await wait_for(client.rpc_send("hello", "hello", "observed"))
        await seen.wait_until(lambda d: d.routing_key == "hello")
        assert {d.user_id for d in seen.items} == {system.users["a"]}
    finally:
        await observer.close()
        await a.stop()


@pytest_twisted.ensureDeferred
async def test_policy_takes_an_unsigned_user_id_only_from_its_broker_user_or_a_relay(
    system: AdminSystem, tmp_path: Any
) -> None:
    """Signing off, broker.secure on: b's client claims user-id alice, whom the
    policy lets call hello; the broker proves b's user sent it, so a's policy
    refuses it (401) unless b's user is one of the policy's relays."""
    from ion.core import exception as exc

    b_user = system.users["b"]
    text = "default: deny\nusers: {alice: [operator]}\nservices: {hello: {hello: [operator]}}\n"
    strict, relayed = tmp_path / "strict.yml", tmp_path / "relayed.yml"
    strict.write_text(text)
    relayed.write_text(text + f"relays: [{b_user}]\n")
    for path, allowed in ((strict, False), (relayed, True)):
        a = await _container(system, "a", security={"policy": str(path)})
        b = await _container(system, "b")
        try:
            service = await a.spawn(HelloService)
            client = await b.spawn(Process, name="client")
            client.user_id = "alice"
            call = client.rpc_send("hello", "hello", "x")
            if allowed:
                assert await wait_for(call) == {"value": "Hello there, x"}
            else:
                with pytest.raises(exc.ReceivedApplicationError) as info:
                    await wait_for(call)
                error = exc.rebuilt(info.value)
                assert isinstance(error, exc.Unauthorized), error
                assert f"broker user '{b_user}' sent it" in str(error)
            assert service.state == "ACTIVE"
        finally:
            await b.stop()
            await a.stop()
