"""Processes in a running container: conversations, errors, termination."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import LogLevel

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from tests.helpers import Collector, user_procs, wait_for


class Echo(ServiceProcess):
    """Echoes, fails on demand, refuses on demand, and holds calls behind a gate."""

    service_name = "echo"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.gates: list[defer.Deferred[Any]] = []
        self.entered = Collector()
        self.seen = Collector()

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.seen(content)
        return content

    async def op_async_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        await defer.succeed(None)
        return {"async": content}

    def op_boom(self, content: Any, headers: dict, msg: m.Message) -> Any:
        raise RuntimeError("boom: " + str(content))

    def op_bad(self, content: Any, headers: dict, msg: m.Message) -> Any:
        raise exc.NotFound(f"no record {content}")

    async def op_gated(self, content: Any, headers: dict, msg: m.Message) -> Any:
        gate: defer.Deferred[Any] = defer.Deferred()
        self.gates.append(gate)
        self.entered(content)
        await gate
        return {"released": content}

    async def op_work(self, content: Any, headers: dict, msg: m.Message) -> Any:
        """A request handler that agrees, then answers."""
        if content == "refuse":
            raise exc.Refuse("not today")
        if content == "explicit-refuse":
            await self.reply_refuse(msg, "explicitly not")
            return None
        await self.reply_agree(msg)
        return {"done": content}

    def op_note(self, content: Any, headers: dict, msg: m.Message) -> None:
        self.seen((msg.protocol, msg.performative, content))

    def op_chat(self, content: Any, headers: dict, msg: m.Message) -> None:
        """Generic conversation: answer every message with an inform, twice."""
        self.seen(("chat", content))
        if content < 2:
            self.reply(msg, content + 1, performative="inform")


async def spawn_pair(container: Any, cls: type = Echo) -> tuple[Any, Process]:
    service = await container.spawn(cls)
    client = await container.spawn(Process, name="client")
    return service, client


@pytest_twisted.ensureDeferred
async def test_rpc_returns_reply_content(container: Any) -> None:
    """rpc_send to a service name and to a process id both return the handler's value."""
    service, client = await spawn_pair(container)
    assert await wait_for(client.rpc_send("echo", "echo", {"a": [1, 2]})) == {"a": [1, 2]}
    assert await wait_for(client.rpc_send(service.id, "async_echo", b"\x00\xff")) == {
        "async": b"\x00\xff"
    }


@pytest_twisted.ensureDeferred
async def test_bytes_stay_bytes_and_strings_stay_strings(container: Any) -> None:
    """Content types survive the wire exactly."""
    _, client = await spawn_pair(container)
    value = {"b": b"raw", "s": "text", "n": 3, "f": 1.5, "l": [None, True]}
    reply = await wait_for(client.rpc_send("echo", "echo", value))
    assert reply == value and type(reply["b"]) is bytes and type(reply["s"]) is str


@pytest_twisted.ensureDeferred
async def test_request_agree_then_result(container: Any) -> None:
    """A request conversation: the participant agrees, then informs the result."""
    _, client = await spawn_pair(container)
    agreed = Collector()
    result = await wait_for(client.request("echo", "work", "job", on_agree=agreed))
    assert result == {"done": "job"}
    assert [msg.performative for msg in agreed.items] == ["agree"]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("how", ["refuse", "explicit-refuse"])
async def test_request_refused(container: Any, how: str) -> None:
    """A refused request fails the caller with RequestRefused carrying the reason."""
    _, client = await spawn_pair(container)
    with pytest.raises(exc.RequestRefused) as info:
        await wait_for(client.request("echo", "work", how))
    assert "not" in info.value.message
    assert info.value.code == exc.FORBIDDEN


@pytest_twisted.ensureDeferred
async def test_one_off_message(container: Any) -> None:
    """send() delivers a one-off message (protocol none) and expects no reply."""
    service, client = await spawn_pair(container)
    await client.send("echo", "note", "hi")
    (seen,) = await service.seen.wait(1)
    assert seen == ("none", "request", "hi")
    assert client.conversations.open == {}


class Chatter(Process):
    """Answers each chat message with content + 1 until it reaches 3."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.got = Collector()

    def op_chat(self, content: Any, headers: dict, msg: m.Message) -> None:
        self.got((msg.conv_id, msg.protocol, content))
        if content < 3:
            self.reply(msg, content + 1, performative="inform")


@pytest_twisted.ensureDeferred
async def test_generic_conversation(container: Any) -> None:
    """A generic conversation carries messages both ways under one conv-id."""
    a = await container.spawn(Chatter, name="a")
    b = await container.spawn(Chatter, name="b")
    conv = a.start_generic()
    await a.send(b.id, "chat", 0, conv=conv, performative="inform")
    await a.got.wait(2)
    cid = conv.conv_id
    assert b.got.items == [(cid, "generic", 0), (cid, "generic", 2)]
    assert a.got.items == [(cid, "generic", 1), (cid, "generic", 3)]
    for proc in (a, b):  # open on both sides until idle (see test_conversation_manager)
        assert proc.conversations.generic[cid].timer.active()


@pytest_twisted.ensureDeferred
async def test_raised_exception_is_error_reply(container: Any, logs: Any) -> None:
    """A handler that raises answers ERROR with type and message (5xx), and stays ACTIVE."""
    service, client = await spawn_pair(container)
    with pytest.raises(exc.ReceivedContainerError) as info:
        await wait_for(client.rpc_send("echo", "boom", 7))
    err = info.value
    assert err.code == 500 and err.error_type == "RuntimeError" and err.message == "boom: 7"
    assert err.headers[m.STATUS] == m.STATUS_ERROR
    assert service.state == "ACTIVE"
    assert await wait_for(client.rpc_send("echo", "echo", 1)) == 1
    event = await logs.wait_for_text("handler for boom raised")
    # Handled (answered), so logged as an error with the traceback as text, not
    # as a Failure, which trial would count against the test that expects the 500.
    assert event["log_level"] == LogLevel.error and "log_failure" not in event
    assert "Traceback" in logs.text(event) and "RuntimeError: boom: 7" in logs.text(event)


@pytest_twisted.ensureDeferred
async def test_application_error_is_4xx(container: Any) -> None:
    """An ApplicationError travels with its own 4xx code and is rebuilt as such."""
    _, client = await spawn_pair(container)
    with pytest.raises(exc.ReceivedApplicationError) as info:
        await wait_for(client.rpc_send("echo", "bad", 42))
    assert info.value.code == exc.NOT_FOUND and info.value.error_type == "NotFound"


@pytest_twisted.ensureDeferred
async def test_unknown_op_is_answered_at_once(container: Any) -> None:
    """An unknown op fails the caller with an error reply, long before its timeout."""
    _, client = await spawn_pair(container)
    with pytest.raises(exc.ReceivedApplicationError, match="no operation 'nope'"):
        await wait_for(client.rpc_send("echo", "nope", None, timeout=30), timeout=5)


@pytest_twisted.ensureDeferred
async def test_no_such_service_fails_at_once(container: Any) -> None:
    """A call to a name nobody serves fails at once with NoSuchServiceError."""
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.NoSuchServiceError, match="nobody"):
        await wait_for(client.rpc_send("nobody", "op", timeout=30), timeout=5)
    assert client.conversations.open == {}


@pytest_twisted.ensureDeferred
async def test_timeout_then_late_reply_dropped(container: Any, logs: Any) -> None:
    """A call times out with a clear TimeoutError; the late reply is logged and dropped.

    The request says it expires 10 s on, as from a server whose clock runs
    behind the caller's: its handler is not cut off at the caller's deadline
    (which would race the caller's own timeout) and answers late."""
    service, client = await spawn_pair(container)
    later = int((container.reactor.seconds() + 10) * 1000)
    with pytest.raises(exc.TimeoutError, match="no reply within 0.2s"):
        await wait_for(
            client.rpc_send("echo", "gated", "slow", timeout=0.2, headers={m.EXPIRY: later})
        )
    assert client.conversations.open == {}
    service.gates[0].callback(None)
    await logs.wait_for_text("late reply")
    assert await wait_for(client.rpc_send("echo", "echo", "after")) == "after"


@pytest_twisted.ensureDeferred
async def test_round_robin_across_three_instances(container: Any) -> None:
    """Three instances of one service share its queue and take calls in turn."""
    services = [await container.spawn(Echo) for _ in range(3)]
    client = await container.spawn(Process, name="client")
    for i in range(9):
        await wait_for(client.rpc_send("echo", "echo", i))
    assert sorted(len(s.seen) for s in services) == [3, 3, 3]


@pytest_twisted.ensureDeferred
async def test_terminate_waits_for_in_flight(container: Any) -> None:
    """Terminating an ACTIVE process stops intake and waits for running handlers."""
    service, client = await spawn_pair(container)
    call = client.rpc_send(service.id, "gated", "inflight")
    await service.entered.wait(1)
    terminating = defer.Deferred.fromCoroutine(container.terminate(service))
    assert not terminating.called and service.state == "TERMINATING"
    service.gates[0].callback(None)
    await wait_for(terminating)
    assert await wait_for(call) == {"released": "inflight"}
    assert str(service.id) not in container.proc_manager.processes


@pytest_twisted.ensureDeferred
async def test_terminate_is_bounded(make_container: Any, logs: Any) -> None:
    """A handler that never finishes does not hold termination past terminate_timeout."""
    from ion.core.config import DEFAULTS, Config

    config = Config(DEFAULTS).merged({"container": {"terminate_timeout": 0.2}})
    container = await make_container(config=config)
    service, client = await spawn_pair(container)
    client.rpc_send(service.id, "gated", "stuck", timeout=5).addErrback(lambda f: None)
    await service.entered.wait(1)
    await wait_for(container.terminate(service), timeout=5)
    await logs.wait_for_text("handlers still running")


@pytest_twisted.ensureDeferred
async def test_children_terminate_with_parent(container: Any) -> None:
    """spawn_child links a child to its parent; terminating the parent terminates it."""
    parent = await container.spawn(Process, name="parent")
    child = await parent.spawn_child(Echo)
    grandchild = await child.spawn_child(Process, name="grandchild")
    await container.terminate(parent)
    assert [p.state for p in (parent, child, grandchild)] == ["TERMINATED"] * 3
    assert user_procs(container) == {}


@pytest_twisted.ensureDeferred
async def test_messages_wait_until_active(container: Any) -> None:
    """A message sent before a process is ACTIVE waits in its queue and is handled after."""

    class Slow(Echo):
        service_name = "slow"

        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.activating: defer.Deferred[None] = defer.Deferred()
            self.release: defer.Deferred[None] = defer.Deferred()

        async def on_activate(self) -> None:
            self.activating.callback(None)
            await self.release

    client = await container.spawn(Process, name="client")
    spawning = defer.Deferred.fromCoroutine(container.spawn(Slow))
    procs = container.proc_manager.processes.values()
    slow = next(p for p in procs if isinstance(p, Slow))
    await wait_for(slow.activating)
    call = client.rpc_send("slow", "echo", "early")
    await wait_for(client.rpc_send(client.id, "ping"))  # a full round trip later...
    assert not call.called and slow.seen.items == []  # ...the early call still waits
    slow.release.callback(None)
    await wait_for(spawning)
    assert await wait_for(call) == "early"


@pytest_twisted.ensureDeferred
async def test_failing_hook_is_error_and_spawn_fails(container: Any) -> None:
    """A failing on_init moves the process to ERROR and spawn raises a clear ProcessError."""

    class Broken(Process):
        def on_init(self) -> None:
            raise ValueError("no database")

    with pytest.raises(exc.ProcessError, match="no database"):
        await container.spawn(Broken)
    assert user_procs(container) == {}


@pytest_twisted.ensureDeferred
async def test_ping_answers_every_process(container: Any) -> None:
    """Every process answers op_ping on its own id with its id and state."""
    service, client = await spawn_pair(container)
    assert await wait_for(client.rpc_send(service.id, "ping")) == {
        "pong": str(service.id),
        "state": "ACTIVE",
    }


@pytest_twisted.ensureDeferred
async def test_caller_terminated_fails_open_calls(container: Any) -> None:
    """Terminating a caller fails its open calls with a clear error instead of leaving them."""
    service, client = await spawn_pair(container)
    call = client.rpc_send("echo", "gated", "x", timeout=30)
    await service.entered.wait(1)
    await container.terminate(client)
    with pytest.raises(exc.ProcessError, match="terminated"):
        await wait_for(call)
    service.gates[0].callback(None)


class Farewell(ServiceProcess):
    """Calls another service from on_terminate, and from a handler during the drain."""

    service_name = "farewell"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.said: list[Any] = []
        self.entered = Collector()
        self.gate: defer.Deferred[None] = defer.Deferred()

    async def op_two_calls(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.entered(content)
        await self.gate
        return await self.rpc_send("echo", "echo", "second call")

    async def on_terminate(self) -> None:
        self.said.append(await self.rpc_send("echo", "echo", "goodbye"))


@pytest_twisted.ensureDeferred
async def test_terminating_process_can_still_send(container: Any) -> None:
    """While terminating, in-flight handlers and on_terminate can still call others."""
    await container.spawn(Echo)
    farewell = await container.spawn(Farewell)
    client = await container.spawn(Process, name="client")
    call = client.rpc_send(farewell.id, "two_calls", "x")
    await farewell.entered.wait(1)
    terminating = defer.Deferred.fromCoroutine(container.terminate(farewell))
    farewell.gate.callback(None)  # the held handler makes its second call while draining
    await wait_for(terminating)
    assert await wait_for(call) == "second call"
    assert farewell.said == ["goodbye"]


class Unsendable(ServiceProcess):
    service_name = "unsendable"

    def op_set(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return {1, 2}  # msgpack cannot carry a set


@pytest_twisted.ensureDeferred
async def test_unencodable_result_is_answered_at_once(container: Any) -> None:
    """A result the wire cannot carry gets the caller a 500 at once, not a timeout."""
    await container.spawn(Unsendable)
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedContainerError, match="cannot be sent"):
        await wait_for(client.rpc_send("unsendable", "set", timeout=30), timeout=5)


class Unregistered(ServiceProcess):
    service_name = "unregistered"

    def op_ts(self, content: Any, headers: dict, msg: m.Message) -> Any:
        from google.protobuf import timestamp_pb2

        return timestamp_pb2.Timestamp(seconds=1)  # a protobuf object of no ion type id


@pytest_twisted.ensureDeferred
async def test_an_object_of_no_registered_type_is_answered_at_once(container: Any) -> None:
    """A result that is a protobuf object ion has no type id for cannot travel:
    its caller gets a 500 at once, not a timeout."""
    await container.spawn(Unregistered)
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedContainerError, match="cannot be sent: .*not a registered"):
        await wait_for(client.rpc_send("unregistered", "ts", timeout=30), timeout=5)


@pytest_twisted.ensureDeferred
async def test_sending_keeps_a_generic_conversation_open(make_container: Any) -> None:
    """A generic conversation its owner keeps sending on is in use: it does not
    close for want of answers."""
    from twisted.internet import task

    clock = task.Clock()
    container = await make_container()
    a = await container.spawn(Process, name="a")
    b = await container.spawn(Process, name="b")
    a.conversations.clock = clock  # the idle timers on a clock the test drives
    a.runtime.conversation_timeout = 1.0
    conv = a.start_generic()
    for i in range(5):
        clock.advance(0.6)
        await wait_for(a.send(b.id, "chat", i, conv=conv, performative="inform"))
    assert conv.state != "CLOSED"
    clock.advance(1.0)
    assert conv.state == "CLOSED"


class Big(ServiceProcess):
    service_name = "big"

    def op_make(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return b"x" * content


@pytest_twisted.ensureDeferred
async def test_a_message_over_the_size_limit_is_refused_before_it_is_sent(
    make_container: Any,
) -> None:
    """Over broker.max_message_size, a request is refused as it is made and a
    result is answered with a 500 at once: RabbitMQ would close the channel over
    it and leave the caller to its deadline."""
    from ion.core.config import DEFAULTS, Config

    config = Config(DEFAULTS).merged({"broker": {"max_message_size": 2000}})
    container = await make_container(config=config)
    await container.spawn(Big)
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.MessageFormatError, match=r"over broker.max_message_size \(2,000\)"):
        client.rpc_send("big", "make", b"y" * 3000)
    with pytest.raises(exc.MessageFormatError, match="over broker.max_message_size"):
        client.send("big", "make", b"y" * 3000)
    with pytest.raises(exc.ReceivedContainerError, match="cannot be sent: a message of"):
        await wait_for(client.rpc_send("big", "make", 3000, timeout=30), timeout=5)
    assert len(await wait_for(client.rpc_send("big", "make", 1000))) == 1000


@pytest_twisted.ensureDeferred
async def test_undecodable_reply_fails_the_call_at_once(container: Any) -> None:
    """A reply whose content cannot be decoded fails its call at once, not by timeout."""
    from ion.core.process.process import REPLY_KEY_SUFFIX

    client = await container.spawn(Process, name="client")
    conv = client.conversations.start(f"{client.id}#x", "rpc", 30)
    headers = {
        m.SENDER: "someone.1@elsewhere",
        m.RECEIVER: str(client.id),
        m.CONV_ID: conv.conv_id,
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "inform_result",
        m.STATUS: "OK",
        m.ENCODING: "ion-object:999999",
    }
    import msgpack

    body = msgpack.packb([headers, b"\x00"], use_bin_type=True)
    await container.exchange.publish(str(client.id) + REPLY_KEY_SUFFIX, body)
    with pytest.raises(exc.MessageFormatError, match="999999"):
        await wait_for(conv.deferred, timeout=5)


def test_concurrent_first_calls_share_one_implicit_process() -> None:
    """Calls that start together through a new ServiceClient spawn one process, not several."""
    from ion.core.process.service import ServiceClient

    class SlowContainer:
        def __init__(self) -> None:
            self.spawns: list[defer.Deferred[Any]] = []

        async def spawn(self, target: Any, name: str | None = None) -> Any:
            d: defer.Deferred[Any] = defer.Deferred()
            self.spawns.append(d)
            return await d

    slow = SlowContainer()
    client = ServiceClient(targetname="echo", container=slow)
    first = defer.ensureDeferred(client.attach())
    second = defer.ensureDeferred(client.attach())
    assert len(slow.spawns) == 1
    proc = object()
    slow.spawns[0].callback(proc)
    assert first.result is proc and second.result is proc


@pytest_twisted.ensureDeferred
async def test_a_call_while_the_reply_queue_is_restored_fails_at_once(container: Any) -> None:
    """After a reconnect the broker may not take the reply queue back at once
    (RESOURCE_LOCKED): a call made meanwhile would lose its reply, so it fails
    at once, naming the queue; calls work again once it is back."""
    _, client = await spawn_pair(container)
    exchange = container.exchange
    reply_queue = exchange.queue_name(client.runtime._reply_key)
    broken = {reply_queue}
    exchange.restoring = broken.__contains__  # as AmqpBroker.restoring tells
    with pytest.raises(exc.ConnectionLostError, match=f"reply queue {reply_queue} is not"):
        await wait_for(client.rpc_send("echo", "echo", 1), timeout=1)
    broken.clear()
    assert await wait_for(client.rpc_send("echo", "echo", 2)) == 2
