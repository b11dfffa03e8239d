"""Handler deadlines: a stuck handler is cut off and answered with a timeout error,
so handlers that never finish no longer wedge a process."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import Clock

from ion.core import exception as exc
from ion.core.config import DEFAULTS, Config
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.core.process.watchdog import EXPIRY_GRACE, configured_limit, handler_timeout
from ion.test.fakes import OfflineContainer
from ion.test.waiting import wait_for
from tests.core.process.test_expiry import _wire
from tests.helpers import Collector

BROKERS = ["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)]


class Stuck(ServiceProcess):
    """op_hang never finishes unless cut off; op_quick answers at once."""

    service_name = "stuck"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.cancelled: list[Any] = []

    async def op_hang(self, content: Any, headers: dict, msg: m.Message) -> Any:
        try:
            await defer.Deferred()
        except defer.CancelledError:
            self.cancelled.append(content)
            raise

    @handler_timeout(2)
    async def op_short(self, content: Any, headers: dict, msg: m.Message) -> Any:
        await defer.Deferred()

    def op_quick(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return content


class Limited(Stuck):
    handler_timeout = 5


async def _offline(cls: type[Process], clock: Clock) -> tuple[OfflineContainer, Any, Process]:
    container = OfflineContainer(reactor=clock)
    service = await container.spawn(cls)
    caller = await container.spawn(Process, name="caller")
    _wire(container, service, caller)
    return container, service, caller


def _outcome(d: defer.Deferred[Any]) -> list[Any]:
    seen: list[Any] = []
    d.addBoth(seen.append)
    return seen


@pytest_twisted.ensureDeferred
async def test_a_stuck_handler_is_cut_off_at_its_requests_expiry() -> None:
    """No limit configured: the request's expiry is the handler's deadline; there the
    handler is cancelled and its slot given back, and the request answered."""
    clock = Clock()
    container, service, caller = await _offline(Stuck, clock)
    call = _outcome(caller.rpc_send(service.id, "hang", "h", timeout=3))
    clock.advance(2.9)
    assert call == [] and service.runtime.inflight == 1
    clock.advance(0.1)
    assert call[0].check(exc.TimeoutError)  # the caller's own deadline
    assert service.cancelled == [] and service.runtime.inflight == 1
    clock.advance(EXPIRY_GRACE)  # a moment later the handler is cut off
    assert service.cancelled == ["h"] and service.runtime.inflight == 0
    [answer] = [msg for _key, msg in container.exchange.published if msg.performative == "failure"]
    assert answer.content["type"] == "HandlerTimeoutError"
    await container.stop()


@pytest_twisted.ensureDeferred
async def test_per_op_and_per_class_limits_come_before_the_expiry() -> None:
    """An op's handler_timeout, else the class's, cut a handler off before its
    caller's deadline, and the caller gets the timeout error as an answer."""
    clock = Clock()
    container, service, caller = await _offline(Limited, clock)
    short = _outcome(caller.rpc_send(service.id, "short", timeout=60))
    hang = _outcome(caller.rpc_send(service.id, "hang", "h", timeout=60))
    clock.advance(2)
    assert short[0].check(exc.ReceivedError) and hang == []
    assert short[0].value.content["type"] == "HandlerTimeoutError"
    assert "cut off after 2s" in short[0].value.content["message"]
    clock.advance(3)
    assert hang[0].check(exc.ReceivedError) and "after 5s" in hang[0].value.content["message"]
    assert service.cancelled == ["h"] and service.runtime.inflight == 0
    await container.stop()


def test_handler_timeout_settings_are_checked() -> None:
    """The class attribute comes first, then process.handler_timeout; 0 is no limit;
    anything but seconds >= 0 is a configuration error naming where it came from."""
    config = Config(DEFAULTS)
    assert configured_limit(Stuck, config) is None
    assert configured_limit(Limited, config) == 5
    assert configured_limit(Stuck, config.merged({"process": {"handler_timeout": "1.5"}})) == 1.5
    with pytest.raises(exc.ConfigurationError, match="process.handler_timeout.*'soon'"):
        configured_limit(Stuck, config.merged({"process": {"handler_timeout": "soon"}}))
    with pytest.raises(ValueError):
        handler_timeout(0)


@pytest.mark.parametrize("ion_broker", BROKERS, indirect=True)
@pytest_twisted.ensureDeferred
async def test_handlers_that_never_finish_do_not_wedge_a_service(ion_container_factory) -> None:
    """As many stuck handlers as the prefetch allows held the service's whole intake
    (unacked) for ever; cut off at their requests' expiry, they give it back and
    the next call is served."""
    config = {"broker": {"prefetch": 4}}
    service = await (await ion_container_factory(config=config)).spawn(CutOff)
    client = await (await ion_container_factory()).spawn(Process, name="client")
    stuck = [client.rpc_send("stuck", "hang", i, timeout=0.5) for i in range(4)]
    for call in stuck:
        with pytest.raises(exc.TimeoutError):
            await wait_for(call, 5)
    assert await wait_for(client.rpc_send("stuck", "quick", "served", timeout=5), 5) == "served"
    await service.cut.wait_until(lambda _: len(service.cut.items) == 4)  # each in its turn
    assert sorted(service.cut.items) == [0, 1, 2, 3]


@pytest.mark.parametrize("ion_broker", BROKERS, indirect=True)
@pytest_twisted.ensureDeferred
async def test_stuck_handlers_of_one_off_messages_are_cut_off_by_their_limit(
    ion_container_factory,
) -> None:
    """A one-off message has no caller and so no expiry: its handler's deadline
    is its limit alone. With process.handler_timeout set, handlers of sends that
    never finish are cut off there and the service's intake comes back."""
    config = {"broker": {"prefetch": 4}, "process": {"handler_timeout": 0.3}}
    service = await (await ion_container_factory(config=config)).spawn(CutOff)
    client = await (await ion_container_factory()).spawn(Process, name="client")
    for i in range(4):
        await wait_for(client.send("stuck", "hang", i), 5)
    assert await wait_for(client.rpc_send("stuck", "quick", "served", timeout=5), 5) == "served"
    # The first cut off made room for the call; each of the others is cut off in its turn.
    await service.cut.wait_until(lambda _: len(service.cut.items) == 4)
    assert sorted(service.cut.items) == [0, 1, 2, 3]


class CutOff(Stuck):
    """Stuck, telling each handler cut off as it happens."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.cut: Collector[Any] = Collector()

    async def op_hang(self, content: Any, headers: dict, msg: m.Message) -> Any:
        try:
            return await super().op_hang(content, headers, msg)
        except defer.CancelledError:
            self.cut(content)
            raise
