"""What a process takes on while it terminates, and what a container does while it stops:
no orphans, no subscriber nobody stops, no message of its own conversation lost."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task

from ion.core import exception as exc
from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.events import EventSubscriber
from ion.core.messaging import message as m
from ion.core.process.process import REPLY_KEY_SUFFIX, Process
from tests.helpers import Collector, closed_port, user_procs, wait_for


class GatedInit(Process):
    """A process whose on_init waits for the test to open its gate."""

    made: Collector[GatedInit] = Collector()

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.gate: defer.Deferred[None] = defer.Deferred()
        GatedInit.made(self)

    async def on_init(self) -> None:
        await self.gate


@pytest.fixture(autouse=True)
def fresh_gated() -> None:
    GatedInit.made = Collector()


@pytest_twisted.ensureDeferred
async def test_child_whose_spawn_ends_after_its_parent_terminated_is_not_left(
    container: Any,
) -> None:
    """A child still spawning when its parent terminates is terminated when its
    spawn ends, and the spawn fails: nothing would ever terminate it otherwise."""
    parent = await container.spawn(Process, name="parent")
    spawning = defer.ensureDeferred(parent.spawn_child(GatedInit, name="child"))
    (child,) = await GatedInit.made.wait(1)
    await wait_for(container.terminate(parent))
    child.gate.callback(None)
    with pytest.raises(exc.ProcessError, match="parent .* terminated meanwhile"):
        await wait_for(spawning)
    assert child.state == "TERMINATED"
    assert str(child.id) not in container.proc_manager.processes


@pytest_twisted.ensureDeferred
async def test_terminated_process_spawns_no_child(container: Any) -> None:
    parent = await container.spawn(Process, name="parent")
    await container.terminate(parent)
    with pytest.raises(exc.IllegalStateError, match="cannot spawn"):
        await parent.spawn_child(Process, name="child")
    assert [p.proc_name for p in user_procs(container).values()] == []


@pytest_twisted.ensureDeferred
async def test_terminated_process_takes_no_subscriber(container: Any) -> None:
    proc = await container.spawn(Process, name="p")
    await container.terminate(proc)
    with pytest.raises(exc.IllegalStateError):
        await EventSubscriber(proc, event_id=1052, queue_name="audit").start()
    # Refused before declaring: no durable queue is left for a subscriber that never was.
    assert not await container.exchange.broker.queue_exists(container.exchange.queue_name("audit"))
    with pytest.raises(exc.IllegalStateError, match="cannot own"):
        proc.own(object())


@pytest_twisted.ensureDeferred
async def test_subscriber_whose_process_terminates_meanwhile_is_stopped(container: Any) -> None:
    """A subscription still being made when its process terminates is stopped
    again, and start() says why."""
    proc = await container.spawn(Process, name="p")
    exchange = container.exchange
    gate: defer.Deferred[None] = defer.Deferred()
    declare = exchange.declare_subscription
    queues = Collector()

    async def slow_declare(*args: Any, **kwargs: Any) -> str:
        await gate
        queue = await declare(*args, **kwargs)
        queues(queue)
        return queue

    exchange.declare_subscription = slow_declare
    try:
        starting = defer.ensureDeferred(EventSubscriber(proc, event_id=1052).start())
        await wait_for(container.terminate(proc))
        gate.callback(None)
        with pytest.raises(exc.IllegalStateError, match="cannot own"):
            await wait_for(starting)
    finally:
        del exchange.declare_subscription
    (queue,) = queues.items
    # Its private queue went with its only consumer.
    assert not await exchange.broker.queue_exists(queue)


class Chatter(Process):
    """Answers a chat with content + 1 until it reaches 3."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.got: Collector[Any] = Collector()

    def op_chat(self, content: Any, headers: dict, msg: m.Message) -> None:
        self.got(content)
        if content < 3:
            self.reply(msg, content + 1, performative="inform")


class Opener(Chatter):
    """Holds a generic conversation with its peer in on_init (READY) and in
    on_terminate (terminating): the answers come to its reply queue."""

    async def _chat(self) -> None:
        seen = len(self.got)
        conv = self.start_generic()
        await self.send(self.args["peer"], "chat", 2, conv=conv, performative="inform")
        await self.got.wait(seen + 1)

    async def on_init(self) -> None:
        await self._chat()

    async def on_terminate(self) -> None:
        await self._chat()


@pytest_twisted.ensureDeferred
async def test_generic_answers_while_initializing_and_terminating_are_taken(
    container: Any,
) -> None:
    peer = await container.spawn(Chatter, name="peer")
    opener = await wait_for(container.spawn(Opener, args={"peer": str(peer.id)}))
    assert opener.state == "ACTIVE" and opener.got.items == [3]
    await wait_for(container.terminate(opener))
    assert opener.got.items == [3, 3]


class Stranger(Process):
    """Sends one generic message to another process's reply queue while it activates."""

    async def on_activate(self) -> None:
        target = self.args["target"] + REPLY_KEY_SUFFIX
        await self.send(target, "chat", 0, conv=self.start_generic(), performative="inform")


class Waiting(Chatter):
    async def on_init(self) -> None:
        await self.args["gate"]


@pytest_twisted.ensureDeferred
async def test_message_lost_on_the_reply_queue_is_logged(container: Any, logs: Any) -> None:
    """A message that reaches a process's reply queue before it is ACTIVE, of no
    conversation it holds, cannot go back to a queue: it is dropped, and logged."""
    gate: defer.Deferred[None] = defer.Deferred()
    activating = defer.ensureDeferred(container.spawn(Waiting, name="w", args={"gate": gate}))
    [waiting] = [p for p in container.proc_manager.processes.values() if p.proc_name == "w"]
    await container.spawn(Stranger, args={"target": str(waiting.id)})
    await logs.wait_for_text("arrived while READY")
    gate.callback(None)
    await wait_for(activating)
    assert waiting.got.items == []


@pytest_twisted.ensureDeferred
async def test_stop_while_retrying_the_broker_ends_the_boot_at_once(logs: Any) -> None:
    """A container stopped while it waits to retry an unreachable broker stops
    retrying, fails its boot with a clear error, and stops."""
    from twisted.internet import reactor

    config = Config(DEFAULTS).merged(
        {
            "broker": {
                "url": f"amqp://127.0.0.1:{closed_port()}/",
                "connect_attempts": 5,
                "retry_delay": 30,
            }
        }
    )
    cc = Container(reactor=reactor, config=config, container_id="stopping", sysname="stopping")
    cc.startService()
    ready = cc.when_ready()
    await logs.wait_for_text("broker unreachable (attempt 1 of 5)")
    # We resume inside the boot's log call: one turn, and its retry timer is armed.
    await task.deferLater(reactor, 0, lambda: None)
    await wait_for(cc.stop(), timeout=5)  # well before the 30 s retry
    with pytest.raises(exc.StartupError, match="stopped while waiting to retry"):
        await ready
    assert cc.proc_manager.processes == {}


@pytest_twisted.ensureDeferred
async def test_stop_from_the_retry_log_ends_the_boot_too(logs: Any) -> None:
    """Stopped from inside the boot's own log call (a log observer), the container
    does not arm another retry."""
    from twisted.internet import reactor

    config = Config(DEFAULTS).merged(
        {"broker": {"url": f"amqp://127.0.0.1:{closed_port()}/", "retry_delay": 30}}
    )
    cc = Container(reactor=reactor, config=config, container_id="stopping", sysname="stopping")
    cc.startService()
    ready = cc.when_ready()
    await logs.wait_for_text("broker unreachable (attempt 1 of")
    await wait_for(cc.stop(), timeout=5)
    with pytest.raises(exc.StartupError, match="stopped while connecting to the broker"):
        await ready
    armed = [c for c in reactor.getDelayedCalls() if c.getTime() - reactor.seconds() > 20]
    assert armed == []  # no 30 s retry timer left waiting


def _embedded_container(**config: Any) -> Container:
    from twisted.internet import reactor

    from ion.core.messaging.embedded import EmbeddedBroker

    return Container(
        reactor=reactor,
        config=Config(DEFAULTS).merged(config),
        container_id="booting",
        sysname="booting",
        broker=EmbeddedBroker(reactor).connection(),
    )


@pytest_twisted.ensureDeferred
async def test_stop_waits_for_the_boot_step_under_way_and_boot_goes_no_further() -> None:
    cc = _embedded_container()
    gate: defer.Deferred[None] = defer.Deferred()
    entered = Collector()

    async def gated_boot() -> None:
        entered(True)
        await gate

    cc.app_manager.boot = gated_boot
    cc.startService()
    ready = cc.when_ready()
    await entered.wait(1)
    stopping = defer.ensureDeferred(cc.stop())
    assert not stopping.called  # the app manager's boot step is still under way
    gate.callback(None)
    await wait_for(stopping)
    with pytest.raises(exc.StartupError, match="stopped while booting"):
        await ready
    assert cc.proc_manager.processes == {}


@pytest_twisted.ensureDeferred
async def test_a_boot_step_that_hangs_does_not_hold_the_stop(logs: Any) -> None:
    cc = _embedded_container(container={"terminate_timeout": 0.1})
    cc.app_manager.boot = lambda: defer.Deferred()  # never ends
    cc.startService()
    await wait_for(cc.stop())
    await logs.wait_for_text("boot still busy after 0.1s; stopping anyway")


@pytest_twisted.ensureDeferred
async def test_stop_while_the_broker_never_answers_ends_the_connect() -> None:
    """A connect under way (the peer accepts TCP and says nothing) is ended by the stop."""
    from twisted.internet import endpoints, protocol, reactor

    silent = await endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
        protocol.Factory.forProtocol(protocol.Protocol)
    )
    try:
        port = silent.getHost().port
        config = Config(DEFAULTS).merged({"broker": {"url": f"amqp://127.0.0.1:{port}/"}})
        cc = Container(reactor=reactor, config=config, container_id="silent", sysname="silent")
        cc.startService()
        ready = cc.when_ready()  # the boot now waits on the connect, which never ends
        await wait_for(cc.stop(), timeout=2)  # (pika itself gives up after about 5 s)
        with pytest.raises(exc.StartupError, match="stopped while connecting"):
            await ready
    finally:
        await silent.stopListening()


@pytest_twisted.ensureDeferred
async def test_stopping_container_spawns_nothing(make_container: Any) -> None:
    cc = await make_container()
    stopping = defer.ensureDeferred(cc.stop())
    with pytest.raises(exc.ProcessError, match="is stopping"):
        await cc.spawn(Process, name="late")
    await wait_for(stopping)
    assert cc.proc_manager.processes == {}


@pytest_twisted.ensureDeferred
async def test_stopping_a_container_that_never_started_is_prompt() -> None:
    """A service parent stops every child, started or not: nothing to wait for then."""
    from twisted.application.service import MultiService

    cc = _embedded_container(container={"terminate_timeout": 30})
    parent = MultiService()
    cc.setServiceParent(parent)
    await wait_for(parent.stopService(), timeout=2)


class GatedLife(GatedInit):
    """Records when its on_init ended and when on_terminate ran."""

    order: list[str] = []

    async def on_init(self) -> None:
        await super().on_init()
        GatedLife.order.append("init ended")

    def on_terminate(self) -> None:
        GatedLife.order.append("terminated")


@pytest_twisted.ensureDeferred
async def test_stop_lets_a_spawn_under_way_end_before_terminating_it(make_container: Any) -> None:
    GatedLife.order = []
    cc = await make_container()
    spawning = defer.ensureDeferred(cc.spawn(GatedLife, name="g"))
    (proc,) = await GatedInit.made.wait(1)
    stopping = defer.ensureDeferred(cc.stop())
    assert not stopping.called  # waiting for the spawn under way
    proc.gate.callback(None)
    await wait_for(stopping)
    assert (await wait_for(spawning)) is proc
    assert GatedLife.order == ["init ended", "terminated"] and proc.state == "TERMINATED"


@pytest_twisted.ensureDeferred
async def test_a_spawn_that_hangs_does_not_hold_the_stop(make_container: Any, logs: Any) -> None:
    cc = await make_container(
        config=Config(DEFAULTS).merged({"container": {"terminate_timeout": 0.1}})
    )
    spawning = defer.ensureDeferred(cc.spawn(GatedInit, name="hung"))
    (proc,) = await GatedInit.made.wait(1)
    await wait_for(cc.stop())
    await logs.wait_for_text("1 spawns still under way after 0.1s; terminating anyway")
    assert proc.state == "TERMINATED"
    proc.gate.callback(None)  # its on_init ends at last: too late to go on
    with pytest.raises(exc.ProcessError):
        await wait_for(spawning)


@pytest_twisted.ensureDeferred
async def test_an_exchange_of_another_kind_fails_the_boot_saying_what_to_do() -> None:
    from twisted.internet import reactor

    from ion.core.messaging.embedded import EmbeddedBroker

    broker = EmbeddedBroker(reactor)
    other = broker.connection()
    await other.connect()
    await other.declare_exchange("ion.clash", "topic")  # as an older ion declared it
    cc = Container(reactor=reactor, container_id="clash", sysname="clash",
                   broker=broker.connection())  # fmt: skip
    with pytest.raises(exc.StartupError, match="ion.clash exists .* not as the direct exchange"):
        await wait_for(cc.start())
    await cc.stop()


@pytest_twisted.ensureDeferred
async def test_a_stop_awaited_from_the_boot_itself_does_not_wait_for_the_boot(logs: Any) -> None:
    """A boot step that stops its own container (an app's on_init giving up, say)
    is not waited for: that wait could only end at the timeout."""
    cc = _embedded_container(container={"terminate_timeout": 30})

    async def giving_up() -> None:
        await wait_for(cc.stop(), timeout=2)

    cc.app_manager.boot = giving_up
    cc.startService()
    with pytest.raises(exc.StartupError, match="stopped while booting"):
        await wait_for(cc.when_ready())
    await logs.wait_for_text("container booting stopped from its own boot")


@pytest_twisted.ensureDeferred
async def test_a_thing_owned_again_is_stopped_once(container: Any) -> None:
    """A subscriber stopped and started again is owned again: terminate stops it once."""
    proc = await container.spawn(Process, name="p")
    stops: list[str] = []

    class Owned:
        async def stop(self) -> None:
            stops.append("stopped")

    thing = Owned()
    proc.own(thing)
    proc.own(thing)
    proc.own(Owned())
    await container.terminate(proc)
    assert stops == ["stopped", "stopped"]
