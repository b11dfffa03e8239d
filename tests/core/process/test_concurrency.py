"""A process's handler concurrency, apart from the broker's prefetch: at most N
handlers run at once, the other deliveries wait unacked, replies are never held
back, and at terminate the waiting ones go back to the queue for another instance."""

from __future__ import annotations

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

    def _on_delivery(self, delivery: Any) -> None:
        super()._on_delivery(delivery)
        self.delivered(delivery)

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
    assert [msg.content for msg in service._waiting] == [1, 2]  # unacked, in order
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


def test_bad_concurrency_is_a_clear_error() -> None:
    class Bad(Process):
        concurrency = -1

    with pytest.raises(exc.ConfigurationError, match=r"Bad.concurrency: expected a whole number"):
        Bad()._concurrency_setting()
    proc = Process(config=Config(DEFAULTS).merged({"process": {"concurrency": "many"}}))
    with pytest.raises(exc.ConfigurationError, match="process.concurrency: .* not 'many'"):
        proc._concurrency_setting()
