"""A process's handler concurrency, apart from the broker's prefetch: at most N
handlers run at once, the other deliveries wait unacked, replies are never held
back, and at terminate the waiting ones go back to the queue for another instance."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core import exception as exc
from ion.core.config import DEFAULTS, Config
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from tests.helpers import Collector, wait_for


class Gated(ServiceProcess):
    """Holds each call until the test opens its gate; one at a time."""

    service_name = "gated"
    concurrency = 1

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered: Collector[Any] = Collector()
        self.delivered: Collector[Any] = Collector()  # taken: running or waiting
        self.gates: dict[Any, defer.Deferred[None]] = {}
        take = self.runtime.deliver

        def taken(delivery: Any) -> None:
            take(delivery)
            self.delivered(delivery)

        self.runtime.deliver = taken  # type: ignore[method-assign]

    async def op_work(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.gates[content] = defer.Deferred()
        self.entered(content)
        await self.gates[content]
        return {"by": self.proc_name, "work": content}

    async def op_ask(self, content: Any, headers: dict, msg: m.Message) -> Any:
        """Calls another process and awaits its reply while holding the only slot."""
        self.entered(content)
        return await self.rpc_send(content, "echo", "hi")


class Echo(ServiceProcess):
    service_name = "echo_svc"

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return content


@pytest_twisted.ensureDeferred
async def test_one_handler_at_a_time_in_order(container: Any) -> None:
    service = await container.spawn(Gated)
    client = await container.spawn(Process, name="client")
    calls = [client.rpc_send("gated", "work", i) for i in range(3)]
    await service.delivered.wait(3)
    assert service.entered.items == [0]
    assert [msg.content for msg in service.runtime.waiting] == [1, 2]  # unacked, in order
    for i in range(3):
        service.gates[i].callback(None)
        assert (await wait_for(calls[i]))["work"] == i
        if i < 2:
            assert await service.entered.wait(i + 2) == list(range(i + 2))


@pytest_twisted.ensureDeferred
async def test_replies_are_not_held_back_by_the_limit(container: Any) -> None:
    """A handler holding the only slot still gets the reply it awaits: no deadlock."""
    await container.spawn(Gated)
    await container.spawn(Echo)
    client = await container.spawn(Process, name="client")
    assert await wait_for(client.rpc_send("gated", "ask", "echo_svc")) == "hi"


@pytest_twisted.ensureDeferred
async def test_waiting_requests_go_to_another_instance_at_terminate(container: Any) -> None:
    first = await container.spawn(Gated, name="first")
    client = await container.spawn(Process, name="client")
    held = client.rpc_send("gated", "work", "held")
    waiting = client.rpc_send("gated", "work", "waiting")
    await first.delivered.wait(2)
    assert first.entered.items == ["held"]
    second = await container.spawn(Gated, name="second")
    terminating = defer.ensureDeferred(container.terminate(first))
    assert await second.entered.wait(1) == ["waiting"]
    second.gates["waiting"].callback(None)
    assert (await wait_for(waiting))["by"] == "second"
    first.gates["held"].callback(None)
    assert (await wait_for(held))["by"] == "first"  # in-flight work finishes before the end
    await wait_for(terminating)


@pytest_twisted.ensureDeferred
async def test_waiting_requests_go_back_in_their_order(container: Any) -> None:
    """Requests given back at terminate reach the next instance in the order they came."""
    first = await container.spawn(Gated, name="first")
    client = await container.spawn(Process, name="client")
    calls = [client.rpc_send("gated", "work", i) for i in range(4)]
    await first.delivered.wait(4)
    second = await container.spawn(Gated, name="second")
    terminating = defer.ensureDeferred(container.terminate(first))
    for i in (1, 2, 3):
        await second.entered.wait(i)
        second.gates[i].callback(None)
    first.gates[0].callback(None)
    await wait_for(defer.gatherResults(calls))
    await wait_for(terminating)
    assert second.entered.items == [1, 2, 3]


@pytest_twisted.ensureDeferred
async def test_requests_waiting_on_the_own_queue_run_before_terminate_ends(
    container: Any,
) -> None:
    """Requests addressed to the process itself have no other instance to go to:
    they run while terminate drains, and are answered."""
    service = await container.spawn(Gated)
    client = await container.spawn(Process, name="client")
    held = client.rpc_send(service.id, "work", "held")
    waiting = client.rpc_send(service.id, "work", "waiting")
    await service.delivered.wait(2)
    terminating = defer.ensureDeferred(container.terminate(service))
    service.gates["held"].callback(None)
    assert await service.entered.wait(2) == ["held", "waiting"]
    service.gates["waiting"].callback(None)
    assert (await wait_for(waiting))["work"] == "waiting"
    assert (await wait_for(held))["work"] == "held"
    await wait_for(terminating)


class Odd(ServiceProcess):
    """Handlers that return what is awaitable but no coroutine, or raise a BaseException."""

    service_name = "odd"
    concurrency = 1

    def op_future(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return _Ready(content)

    def op_cancelled(self, content: Any, headers: dict, msg: m.Message) -> Any:
        raise asyncio.CancelledError()

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return content


class _Ready:
    """Awaitable, not a coroutine nor a Deferred (as an asyncio.Future is)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return self.value
        yield  # a generator: awaiting it returns at once


@pytest_twisted.ensureDeferred
async def test_any_awaitable_or_base_exception_from_a_handler_is_answered(
    container: Any,
) -> None:
    """A handler returning another kind of awaitable is awaited; one raising
    asyncio.CancelledError is answered with an error; either way its slot is
    freed for the next request."""
    service = await container.spawn(Odd)
    client = await container.spawn(Process, name="client")
    future = client.rpc_send("odd", "future", "awaited")
    cancelled = client.rpc_send("odd", "cancelled")
    after = client.rpc_send("odd", "echo", "next")
    assert await wait_for(future) == "awaited"
    with pytest.raises(exc.ReceivedError, match="CancelledError"):
        await wait_for(cancelled)
    assert await wait_for(after) == "next"
    assert service.runtime.inflight == 0 and not service.runtime.waiting


def test_bad_concurrency_is_a_clear_error() -> None:
    class Bad(Process):
        concurrency = -1

    with pytest.raises(exc.ConfigurationError, match=r"Bad.concurrency: expected a whole number"):
        Bad()._concurrency_setting()
    proc = Process(config=Config(DEFAULTS).merged({"process": {"concurrency": "many"}}))
    with pytest.raises(exc.ConfigurationError, match="process.concurrency: .* not 'many'"):
        proc._concurrency_setting()
