"""Terminating a process: asked twice, or by a stopping container, it is done
once and waited for; it deletes its own queues and nothing else; a client's
implicit process goes with it; nothing a process sent can break it."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core import exception as exc
from ion.core.process.process import REPLY_KEY_SUFFIX, Process
from ion.core.process.service import ServiceClient, ServiceProcess
from tests.core.process.test_concurrency import Gated
from tests.helpers import wait_for


@pytest_twisted.ensureDeferred
async def test_stopping_while_a_process_terminates_waits_for_its_drain(
    make_container: Any,
) -> None:
    """A container stopped while one of its processes drains waits for that
    drain: the handler under way finishes and its caller gets the answer."""
    container = await make_container()
    service = await container.spawn(Gated)
    client = await (await make_container()).spawn(Process, name="client")
    call = client.rpc_send("gated", "work", 1)
    await service.entered.wait(1)
    terminating = defer.ensureDeferred(container.terminate(service))
    second = defer.ensureDeferred(service.terminate())
    stopping = defer.ensureDeferred(container.stop())
    assert not (stopping.called or second.called or terminating.called)
    service.gates[1].callback(None)
    await wait_for(defer.gatherResults([stopping, second, terminating]))
    assert service.terminated
    assert (await wait_for(call))["work"] == 1


class Audit(ServiceProcess):
    service_name = "audit" + REPLY_KEY_SUFFIX  # a valid name that ends like a reply queue

    def op_who(self, content: Any, headers: dict, msg: Any) -> str:
        return str(self.id)


@pytest_twisted.ensureDeferred
async def test_terminate_deletes_only_the_process_own_queues(container: Any) -> None:
    """A service queue stays for the other instances, whatever its name ends with."""
    a = await container.spawn(Audit, name="a")
    b = await container.spawn(Audit, name="b")
    client = await container.spawn(Process, name="client")
    await container.terminate(a)
    broker = container.exchange.broker
    assert not any(str(a.id) in q for q in broker._broker.queue_names())
    assert await wait_for(client.rpc_send("audit.reply", "who")) == str(b.id)


@pytest_twisted.ensureDeferred
async def test_a_process_in_error_answers_requests_with_an_error(container: Any) -> None:
    """A process moved to ERROR (here by activating it twice) answers at once
    that it is in ERROR, instead of putting requests back for itself again."""
    broken = await container.spawn(Audit)
    with pytest.raises(exc.IllegalStateError):
        await broken.activate()
    assert broken.state == "ERROR"
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedError, match="in state ERROR") as raised:
        await wait_for(client.rpc_send("audit.reply", "who"))
    assert raised.value.code == exc.SERVICE_UNAVAILABLE


@pytest_twisted.ensureDeferred
async def test_closing_a_client_while_it_spawns_terminates_its_process(container: Any) -> None:
    """close() during the implicit process's spawn waits for it, then terminates it."""
    spawned: defer.Deferred[None] = defer.Deferred()
    spawn = container.proc_manager.spawn

    async def slow_spawn(*args: Any, **kwargs: Any) -> Process:
        await spawned  # as over RabbitMQ, where declaring queues takes round trips
        return await spawn(*args, **kwargs)

    container.proc_manager.spawn = slow_spawn
    client = ServiceClient(targetname="whatever", container=container)
    attaching = defer.ensureDeferred(client.attach())
    closing = defer.ensureDeferred(client.close())
    spawned.callback(None)
    proc = await wait_for(attaching)
    await wait_for(closing)
    assert proc.terminated
    assert str(proc.id) not in container.proc_manager.processes


@pytest_twisted.ensureDeferred
async def test_a_generic_message_cannot_claim_to_be_a_timeout(container: Any) -> None:
    """'timeout' is the deadline's, never a message's: sending it is refused
    and the conversation, and the process's terminate, go on unharmed."""
    a = await container.spawn(Process, name="a")
    b = await container.spawn(Process, name="b")
    conv = a.start_generic()
    with pytest.raises(exc.ConversationError, match="times out by its deadline"):
        a.send(b.id, "chat", "x", conv=conv, performative="timeout")
    assert conv.state == "INIT"
    await wait_for(a.send(b.id, "chat", "x", conv=conv, performative="inform"))
    await container.terminate(a)
    assert not any(str(a.id) in q for q in container.exchange.broker._broker.queue_names())


def _gate_queue_deletion(container: Any) -> defer.Deferred[None]:
    """Hold the container's queue deletions (round trips on RabbitMQ) until the gate opens."""
    gate: defer.Deferred[None] = defer.Deferred()
    delete_queue = container.exchange.delete_queue

    async def held(queue: str) -> Any:
        await gate
        return await delete_queue(queue)

    container.exchange.delete_queue = held
    return gate


@pytest_twisted.ensureDeferred
async def test_terminate_asked_again_while_queues_are_deleted_waits(
    make_container: Any,
) -> None:
    """The end of terminate (replies stopped, queues deleted, TERMINATED announced)
    is part of it: a second terminate, or a stop, waits for it too."""
    container = await make_container()
    proc = await container.spawn(Process, name="p")
    gate = _gate_queue_deletion(container)
    first = defer.ensureDeferred(container.terminate(proc))
    second = defer.ensureDeferred(proc.terminate())
    stopping = defer.ensureDeferred(container.stop())
    assert proc.state == "TERMINATING" and not proc.terminated
    assert not (first.called or second.called or stopping.called)
    gate.callback(None)
    await wait_for(defer.gatherResults([first, second, stopping]))
    assert proc.terminated


@pytest_twisted.ensureDeferred
async def test_a_waiting_request_that_cannot_be_answered_does_not_wedge_terminate(
    container: Any, logs: Any
) -> None:
    """A request without a reply-to, still waiting when terminate ends, is logged
    and dropped; terminate finishes and releases everything."""
    from ion.core.config import DEFAULTS, Config
    from ion.core.messaging import message as m

    config = Config(DEFAULTS).merged({"container": {"terminate_timeout": 0.2}})
    service = await container.spawn(Gated, config=config)
    client = await container.spawn(Process, name="client")
    held = client.rpc_send(service.id, "work", "held")
    await service.entered.wait(1)
    headers = {
        m.SENDER: "someone",
        m.RECEIVER: str(service.id),
        m.CONV_ID: "someone#1",
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "request",
        m.OP: "work",
    }
    await container.exchange.publish(str(service.id), m.encode(headers, "no reply-to"))
    await service.delivered.wait(2)
    await wait_for(container.terminate(service))  # the held handler outlives the 0.2 s drain
    assert (
        service.terminated and not service.runtime.queues and service.runtime.reply_consumer is None
    )
    assert logs.texts_with("cannot answer")
    held.addErrback(lambda f: f.trap(defer.CancelledError))
    held.cancel()  # its handler outlived the drain: no answer will come
    service.gates["held"].callback(None)
