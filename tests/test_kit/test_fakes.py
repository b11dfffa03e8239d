"""The broker-free helpers: process_factory, replace_clients, call_op, next_op, recorders."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core import exception as exc
from ion.core.object.proto.events_pb2 import ProcessLifecycleEvent as Lifecycle
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.services.hello.service import HelloService, HelloServiceClient
from ion.test import (
    OfflineContainer,
    RecordingProcess,
    RecordingService,
    call_op,
    next_op,
    process_factory,
    replace_clients,
)


class Greeter(ServiceProcess):
    """Greets through the hello service; a service with a client, made in on_init."""

    service_name = "greeter"

    def on_init(self) -> None:
        self.hello = HelloServiceClient(proc=self)
        self.greetings = 0

    async def op_greet(self, content: Any, headers: dict, msg: Any) -> str:
        self.greetings += 1
        return (await self.hello.hello(content)).upper()

    async def op_slow(self, content: Any, headers: dict, msg: Any) -> Any:
        self.pending: defer.Deferred[None] = defer.Deferred()
        return await self.pending

    def op_fail(self, content: Any, headers: dict, msg: Any) -> None:
        raise exc.BadRequest("no")

    async def op_reserve(self, content: Any, headers: dict, msg: Any) -> str:
        if content > 10:
            raise exc.Refuse("too many")
        await self.reply_agree(msg)
        return f"reserved {content}"


@pytest_twisted.ensureDeferred
async def test_process_factory_builds_an_active_process_with_faked_clients(ion_process_factory):
    """The process is ACTIVE, its on_init ran, and its client is an autospec fake."""
    greeter = await ion_process_factory(Greeter)

    assert greeter.state == "ACTIVE"
    assert greeter.greetings == 0
    assert isinstance(greeter.hello, HelloServiceClient)  # autospec passes isinstance
    assert greeter.hello.target == "hello"
    greeter.hello.hello.return_value = "hi you"
    assert (await call_op(greeter, "greet", "you")).content == "HI YOU"
    greeter.hello.hello.assert_awaited_once_with("you")


@pytest_twisted.ensureDeferred
async def test_process_factory_takes_explicit_replacements(ion_process_factory):
    """A keyword replaces that attribute with the object given."""

    class Hello:
        async def hello(self, text: str) -> str:
            return "hey " + text

    greeter = await ion_process_factory(Greeter, hello=Hello())

    assert (await call_op(greeter, "greet", "there")).content == "HEY THERE"


@pytest_twisted.ensureDeferred
async def test_process_factory_without_fakes_calls_out_and_finds_nobody():
    """With real clients, an offline call to a service fails with NoSuchServiceError."""
    greeter = await process_factory(Greeter, fake_clients=False)
    try:
        reply = await call_op(greeter, "greet", "you")
    finally:
        await greeter.container.stop()

    assert not reply.ok
    assert "NoSuchServiceError" in reply.content["type"]
    [sent] = greeter.container.exchange.sent("hello")
    assert sent.content == "you"


@pytest_twisted.ensureDeferred
async def test_replace_clients_by_name_and_unknown_name(ion_process_factory):
    """replace_clients fakes a named attribute and refuses one the process lacks."""
    greeter = await ion_process_factory(Greeter, fake_clients=False)

    fakes = replace_clients(greeter, "hello")

    assert greeter.hello is fakes["hello"]
    with pytest.raises(AttributeError, match="nothing"):
        replace_clients(greeter, "nothing")


@pytest_twisted.ensureDeferred
async def test_call_op_returns_error_replies(ion_process_factory):
    """An op that raises answers an error reply with its code; an unknown op answers 400."""
    greeter = await ion_process_factory(Greeter)

    failed = await call_op(greeter, "fail")
    unknown = await call_op(greeter, "nosuchop")

    assert not failed.ok and failed.error_code == 400
    assert not unknown.ok and "no operation" in unknown.content["message"]


@pytest_twisted.ensureDeferred
async def test_call_op_request_agree_and_refuse(ion_process_factory):
    """A request conversation reports the agree before the result, and a refusal."""
    greeter = await ion_process_factory(Greeter)

    agreed = await call_op(greeter, "reserve", 3, protocol="request")
    refused = await call_op(greeter, "reserve", 30, protocol="request")

    assert agreed.agreed and agreed.ok and agreed.content == "reserved 3"
    assert refused.refused and refused.error_code == 403 and not refused.agreed


@pytest_twisted.ensureDeferred
async def test_call_op_times_out(ion_process_factory):
    """An op that does not answer within the timeout raises ion's TimeoutError."""
    greeter = await ion_process_factory(Greeter)

    with pytest.raises(exc.TimeoutError):
        await call_op(greeter, "slow", timeout=0.05)
    greeter.pending.callback(None)  # let the handler finish before teardown


@pytest_twisted.ensureDeferred
async def test_call_op_refuses_an_unspawned_process():
    """call_op needs a spawned process."""
    with pytest.raises(exc.IllegalStateError):
        await call_op(Greeter(), "greet", "x")


@pytest.mark.ion_container(apps=["hello"])
@pytest_twisted.ensureDeferred
async def test_call_op_on_a_live_process(ion_container):
    """In a container, call_op goes through the broker and returns the reply."""
    hello = ion_container.proc_manager.find("hello")

    reply = await call_op(hello, "hello", "there")
    bad = await call_op(hello, "hello", 42)

    assert reply.ok and reply.content == {"value": "Hello there, there"}
    assert bad.error_code == 400
    assert ion_container.proc_manager.find("call_op") is None  # its caller is gone


@pytest_twisted.ensureDeferred
async def test_next_op_fires_after_the_next_handling(ion_process_factory):
    """next_op fires once with content, headers and the handler's result, then lets go."""
    greeter = await ion_process_factory(Greeter)
    greeter.hello.hello.return_value = "hi"
    waiting = next_op(greeter, "greet")

    await call_op(greeter, "greet", "a")
    call = await waiting

    assert (call.content, call.result, call.headers["op"]) == ("a", "HI", "greet")
    assert "op_greet" not in vars(greeter)  # the handler is the class's again
    assert greeter.greetings == 1


@pytest_twisted.ensureDeferred
async def test_next_op_reports_a_failing_handler(ion_process_factory):
    """A handler that raises is reported as a Failure result."""
    greeter = await ion_process_factory(Greeter)
    waiting = next_op(greeter, "fail")

    await call_op(greeter, "fail")
    call = await waiting

    assert call.result.check(exc.BadRequest)


@pytest_twisted.ensureDeferred
async def test_next_op_times_out_and_restores(ion_process_factory):
    """next_op fails with a timeout if the op is not handled in time, and unhooks itself."""
    greeter = await ion_process_factory(Greeter)

    with pytest.raises(defer.TimeoutError):
        await next_op(greeter, "greet", timeout=0.05)
    assert "op_greet" not in vars(greeter)
    with pytest.raises(AttributeError):
        next_op(greeter, "nosuchop")


@pytest.mark.ion_container(apps=["hello"])
@pytest_twisted.ensureDeferred
async def test_next_op_on_a_live_service(ion_container):
    """next_op sees a message that came over the broker."""
    hello = ion_container.proc_manager.find("hello")
    waiting = next_op(hello, "hello")

    await HelloServiceClient(container=ion_container).hello("bus")

    assert (await waiting).content == "bus"


@pytest_twisted.ensureDeferred
async def test_recording_process_collects_any_op(ion_process_factory):
    """A recording process records every message and answers as configured."""
    replies = {"add": lambda content, headers, msg: sum(content), "bad": exc.NotFound("gone")}
    recorder = await ion_process_factory(RecordingProcess, args={"replies": replies})

    added = await call_op(recorder, "add", [1, 2])
    missing = await call_op(recorder, "bad")
    other = await call_op(recorder, "anything", "x")

    assert added.content == 3 and missing.error_code == 404 and other.content is None
    assert [m.op for m in recorder.received()] == ["add", "bad", "anything"]
    assert (await recorder.wait_for_op("anything")).content == "x"


@pytest.mark.ion_container(
    processes=[{"name": "fakehello", "target": RecordingService, "args": {"servicename": "hello"}}]
)
@pytest_twisted.ensureDeferred
async def test_recording_service_stands_in_for_a_service(ion_container):
    """A RecordingService takes the calls meant for the service it names."""
    stand_in = ion_container.proc_manager.find("fakehello")
    stand_in.replies["hello"] = {"value": "fake"}
    client = HelloServiceClient(container=ion_container)

    assert await client.hello("x") == "fake"
    assert (await stand_in.wait_for_op("hello")).content == "x"


@pytest.mark.ion_container(apps=["hello"])
@pytest_twisted.ensureDeferred
async def test_recording_process_records_events(ion_container):
    """A subscribed recorder collects events, here the life cycle of a new process."""
    recorder = await ion_container.spawn(RecordingProcess)
    await recorder.subscribe(1052)

    other = await ion_container.spawn(Process, name="watched")

    event = await recorder.events.wait_until(
        lambda e: e.origin == str(other.id) and e.process_lifecycle.state == Lifecycle.ACTIVE
    )
    assert event.name == "watched"


@pytest_twisted.ensureDeferred
async def test_offline_container_records_events_and_stops_processes():
    """The offline exchange keeps published events; stop terminates every process."""
    offline = OfflineContainer()
    hello = await process_factory(HelloService, container=offline)

    await offline.stop()

    assert hello.state == "TERMINATED"
    states = [e.process_lifecycle.state for e in offline.exchange.events]
    assert states == [Lifecycle.READY, Lifecycle.ACTIVE, Lifecycle.TERMINATED]
