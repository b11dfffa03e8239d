"""Containers of one system on the tests' own 3-node RabbitMQ cluster, with a node
lost under rpc load: killed, stopped, paused; and the whole cluster restarted.

The service's queue is a quorum queue (broker.queue_type: quorum). Its leader's
node is the one that goes; the client is on another node; one container of the
service (B) is on a node that stays. What must hold: no call hangs (each
succeeds or fails fast with a typed error), the service answers again within
5 s, every call answered once, and B serves throughout.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.python.failure import Failure

from ion.core import exception as exc
from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.events import EventSubscriber, create_event, publish
from ion.core.messaging import message as m
from ion.core.messaging.amqp import AmqpBroker
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from tests.helpers import Collector, wait_for
from tests.rabbit_cluster import RabbitCluster

pytestmark = pytest.mark.rabbitmq

RPC_TIMEOUT = 15.0  # a call still open this long has hung
FAST = 6.0  # a failure later than this is not "fast"
OUTAGE_BOUND = 5.0

# Calls handled, by sysname: [(n, container id)] (the instances run in this process).
HANDLED: dict[str, list[tuple[int, str]]] = {}


class Counted(ServiceProcess):
    """Answers C{work(n)} with C{n} and where it ran; notes each handling."""

    service_name = "counted"

    def op_work(self, content: Any, headers: dict, msg: m.Message) -> Any:
        assert self.container is not None
        HANDLED.setdefault(self.sysname, []).append((content, self.container.id))
        return {"n": content, "by": self.container.id}


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class ClusterSystem:
    """Containers of one unique sysname, each connected first to a node of the cluster."""

    def __init__(self, cluster: RabbitCluster, queue_type: str = "quorum") -> None:
        self.cluster = cluster
        self.sysname = f"cl-{uuid.uuid4().hex[:8]}"
        self.containers: list[Container] = []
        self.queue_type = queue_type

    async def container(self, node: int, name: str) -> Container:
        """A container connected to node C{node}, then to the others in turn."""
        urls = self.cluster.urls
        order = urls[node:] + urls[:node]
        reactor = _reactor()
        broker = AmqpBroker(
            reactor, order, heartbeat=2, shuffle=False, max_retry_delay=2.0, name=name
        )
        config = Config(DEFAULTS).merged(
            {
                "container": {"rpc_timeout": RPC_TIMEOUT},
                "broker": {"queue_type": self.queue_type, "restore_timeout": 120.0},
                "agent": {"enabled": False},
            }
        )
        container = Container(
            reactor=reactor,
            config=config,
            container_id=f"{self.sysname}-{name}",
            sysname=self.sysname,
            broker=broker,
        )
        await container.start()
        self.containers.append(container)
        return container

    async def cleanup(self) -> None:
        shared = set().union(*(c.exchange.shared_queues for c in self.containers))
        for container in reversed(self.containers):
            try:
                await wait_for(container.stop(), timeout=30)
            except Exception:
                pass
        cleaner = AmqpBroker(_reactor(), self.cluster.urls, reconnect=False)
        await cleaner.connect()
        for queue in shared:
            await cleaner.delete_queue(queue)
        for exchange in (f"ion.{self.sysname}", f"ion.{self.sysname}.events"):
            await cleaner.delete_exchange(exchange)
        await cleaner.close()
        HANDLED.pop(self.sysname, None)


@pytest_twisted.async_yield_fixture
async def system(rabbit_cluster: RabbitCluster) -> AsyncIterator[ClusterSystem]:
    s = ClusterSystem(rabbit_cluster)
    yield s
    await s.cleanup()


@dataclass
class Load:
    """Calls to C{counted} every C{period} seconds, each one's outcome recorded."""

    client: Process
    period: float = 0.02
    calls: list[dict[str, Any]] = field(default_factory=list)
    _running: bool = True

    async def run(self) -> None:
        reactor = _reactor()
        for n in itertools.count():
            if not self._running:
                return
            call: dict[str, Any] = {"n": n, "start": reactor.seconds()}
            self.calls.append(call)
            d = self.client.rpc_send("counted", "work", n, timeout=RPC_TIMEOUT)
            d.addBoth(self._ended, call)
            await task.deferLater(reactor, self.period, lambda: None)  # pacing, not a wait

    @staticmethod
    def _ended(result: Any, call: dict[str, Any]) -> None:
        call["end"] = _reactor().seconds()
        call["result"] = result.value if isinstance(result, Failure) else result

    def stop(self) -> None:
        self._running = False

    async def settled(self) -> None:
        """Wait (bounded) until every call has ended."""
        deadline = _reactor().seconds() + RPC_TIMEOUT + 10
        while any("end" not in c for c in self.calls):
            assert _reactor().seconds() < deadline, "calls still open past their deadline"
            await task.deferLater(_reactor(), 0.1, lambda: None)


def _verdict(load: Load, fault_at: float) -> dict[str, Any]:
    """Calls ok / failed fast / hung, the longest gap in answers after the fault."""
    ok = [c for c in load.calls if isinstance(c["result"], dict)]
    failed = [c for c in load.calls if not isinstance(c["result"], dict)]
    hung = [c for c in failed if isinstance(c["result"], exc.TimeoutError)]
    slow = [c for c in failed if c["end"] - c["start"] > FAST]
    answers = sorted(c["end"] for c in ok)
    after = [t for t in answers if t >= fault_at]
    gaps = [b - a for a, b in itertools.pairwise([fault_at, *after])]
    return {
        "ok": ok,
        "failed": failed,
        "hung": hung,
        "slow": slow,
        "outage": max(gaps, default=float("inf")),
        "wrong": [c for c in ok if c["result"]["n"] != c["n"]],
        "errors": sorted({type(c["result"]).__name__ for c in failed}),
    }


@dataclass
class Scene:
    """One system under load: service in A (on the queue's home node) and B, client
    C, and a client in A too."""

    system: ClusterSystem
    home: int
    a: Container
    b: Container
    b_service: Any
    loads: list[Load]


async def _scene(system: ClusterSystem, home: int | None = None) -> Scene:
    """A and its service on node C{home} (default node 1); the queue's home is its
    leader's node (a quorum queue) or where A declared it (a classic one). B and
    C go on the two other nodes."""
    cluster = system.cluster
    a = await system.container(home or 0, "a")
    await a.spawn(Counted)
    if a.exchange.queue_type == "quorum":
        home = cluster.wait_leader(f"{system.sysname}.counted")
    others = [i for i in range(3) if i != (home or 0)]
    b = await system.container(others[0], "b")
    b_service = await b.spawn(Counted)
    c = await system.container(others[1], "c")
    loads = [Load(await c.spawn(Process, name="client")), Load(await a.spawn(Process), 0.05)]
    for load in loads:
        assert (await wait_for(load.client.rpc_send("counted", "work", -1)))["n"] == -1
    return Scene(system, home or 0, a, b, b_service, loads)


async def _under_load(
    scenes: list[Scene],
    fault: Callable[[int], None],
    heal: Callable[[int], None],
    hold: float,
    pause: bool = False,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The scenes' calls flow; their (one) home node gets C{fault}, C{hold} seconds
    later the load stops, and the node gets C{heal}.

    With C{pause} the heal comes under load, and the outage is counted from it.
    Returns, for each scene, the verdicts of C's calls and of A's."""
    [home] = {scene.home for scene in scenes}
    loads = [load for scene in scenes for load in scene.loads]
    running = [defer.ensureDeferred(load.run()) for load in loads]
    reactor = _reactor()
    await task.deferLater(reactor, 1.0, lambda: None)  # calls flowing before the fault
    nodes_before = [scene.a.broker_node for scene in scenes]
    fault_at = reactor.seconds()
    await _in_thread(fault, home)
    await task.deferLater(reactor, hold, lambda: None)
    healed_at = reactor.seconds()
    if pause:
        await _in_thread(heal, home)
        await task.deferLater(reactor, 2.0, lambda: None)  # calls after the node is back too
    for load in loads:
        load.stop()
    for r in running:
        await r
    for load in loads:
        await load.settled()
    if not pause:  # booting the node again takes seconds: not under load
        await _in_thread(heal, home)
    return [
        _scene_verdict(scene, fault, fault_at, healed_at if pause else fault_at, before)
        for scene, before in zip(scenes, nodes_before, strict=True)
    ]


def _scene_verdict(
    scene: Scene, fault: Callable[[int], None], fault_at: float, since: float, node_before: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    client, local_load = scene.loads
    verdict, local = _verdict(client, since), _verdict(local_load, fault_at)
    verdict["stalled"] = _verdict(client, fault_at)["outage"]
    verdict["fault_at"] = fault_at
    local["node"] = scene.system.cluster.urls[scene.home].rpartition("@")[2]
    # A's connection was on the node that went (as a rule: where A declared the queue).
    local["on_home"] = node_before.endswith(local["node"])
    local["moved"] = scene.a.broker_node != node_before
    verdict["sysname"] = scene.system.sysname
    verdict["replies_dropped"] = _replies_dropped(scene.system)
    verdict["b_state"] = scene.b_service.state
    first = _first_after(client, fault_at)
    handled = HANDLED[scene.system.sysname]
    verdict["b_after"] = [n for n, at in handled if at == scene.b.id and n > first]
    resumed = f", {verdict['outage']:.2f}s after the resume" if since != fault_at else ""
    print(f"\n{fault.__name__} of node {scene.home + 1}, home of a {scene.system.queue_type} "
          f"queue: client C {len(verdict['ok'])} ok, {len(verdict['failed'])} failed fast "
          f"{verdict['errors']}, {len(verdict['hung'])} hung, longest outage "
          f"{verdict['stalled']:.2f}s after the fault{resumed}; client A {len(local['ok'])} ok, "
          f"{len(local['failed'])} failed {local['errors']}, {len(local['hung'])} hung")  # fmt: skip
    return verdict, local


# The causes under which a conversation's manager drops an answer (ion.core.drops).
_REPLY_DROPS = ("late reply", "reply for unknown conversation",
                "unexpected message in a conversation",
                "ConversationError: late message of a closed generic conversation")  # fmt: skip


def _replies_dropped(system: ClusterSystem) -> dict[str, int]:
    """Answers the system's containers dropped, by cause (late, unknown, unexpected)."""
    counts: dict[str, int] = {}
    for container in system.containers:
        for cause, n in container.drops.as_dict()["causes"].items():
            if cause in _REPLY_DROPS:
                counts[cause] = counts.get(cause, 0) + n
    return counts


def _first_after(load: Load, at: float) -> int:
    return next((c["n"] for c in load.calls if c["start"] >= at), 10**9)


def _in_thread(f: Callable[[int], None], i: int) -> defer.Deferred[None]:
    """Run a blocking cluster operation off the reactor (the containers keep running)."""
    from twisted.internet import threads

    return threads.deferToThread(f, i)


def _assert_survived(verdict: dict[str, Any], late: int = 0) -> None:
    """No call hung, failed slowly or wrongly; answers resumed within the bound
    and B among those answering. Every call answered once: a second reply to
    a call is dropped and counted (the containers' C{drops}); so is a late one,
    allowed (C{late}) only for calls that ended at their deadline."""
    assert not verdict["hung"], f"{len(verdict['hung'])} calls hung"
    dropped = verdict["replies_dropped"]
    assert set(dropped) <= {"late reply"} and dropped.get("late reply", 0) <= late, dropped
    assert not verdict["slow"], [(c["n"], c["result"]) for c in verdict["slow"]][:5]
    assert not verdict["wrong"]
    assert verdict["outage"] <= OUTAGE_BOUND, verdict["outage"]
    for c in verdict["failed"]:
        assert isinstance(c["result"], exc.IonError), c["result"]
    assert verdict["b_state"] == "ACTIVE"
    assert verdict["b_after"], "B served nothing after the fault"


def _assert_moved_on(local: dict[str, Any]) -> None:
    """A's own calls, through the node that went: those in flight failed fast,
    saying the broker node was lost (or, sent during the election, that the
    broker queued nothing); A called again through another node."""
    assert not local["hung"] and not local["slow"]
    if not local["on_home"]:  # the quorum queue's leader was elsewhere: A lost nothing
        return
    for c in local["failed"]:
        assert isinstance(c["result"], exc.ConnectionLostError | exc.BrokerNackError), c["result"]
    assert any(f"broker node {local['node'].rstrip('/')} lost" in str(c["result"])
               for c in local["failed"])  # fmt: skip
    assert local["moved"]
    assert local["ok"][-1]["n"] > _first_after_failure(local)


def _first_after_failure(local: dict[str, Any]) -> int:
    return min((c["n"] for c in local["failed"]), default=10**9)


@pytest_twisted.ensureDeferred
async def test_leader_node_killed_under_load(system: ClusterSystem, logs: Any) -> None:
    """kill -9 of the node leading the service's quorum queue. The same kill takes
    a classic queue (of another system, declared on that node) with it: see
    L{_assert_classic_came_back}."""
    cluster = system.cluster
    scene = await _scene(system)
    classic = ClusterSystem(cluster, queue_type="classic")
    try:
        other = await _scene(classic, home=scene.home)
        [(verdict, local), (c_verdict, c_local)] = await _under_load(
            [scene, other], cluster.kill, cluster.start, hold=4.0
        )
        _assert_survived(verdict)
        _assert_moved_on(local)
        _assert_classic_came_back(c_verdict, c_local, logs, f"{classic.sysname}.counted")
    finally:
        await classic.cleanup()


@pytest_twisted.ensureDeferred
async def test_leader_node_stopped_under_load(system: ClusterSystem) -> None:
    cluster = system.cluster
    scene = await _scene(system)
    [(verdict, local)] = await _under_load([scene], cluster.stop, cluster.start, hold=3.0)
    _assert_survived(verdict)
    _assert_moved_on(local)


@pytest_twisted.ensureDeferred
async def test_leader_node_paused_under_load(system: ClusterSystem) -> None:
    """SIGSTOP of the leader's beam for 8 s, longer than the heartbeat (2 s), then
    SIGCONT. The queue has no leader while its node is paused: RabbitMQ elects
    another only once it holds the node down (net_ticktime, 60 s here), so
    calls wait (none past its deadline), and the service answers within 5 s of
    the node's return."""
    cluster = system.cluster
    scene = await _scene(system)
    [(verdict, local)] = await _under_load([scene], cluster.pause, cluster.resume, 8.0, pause=True)
    _assert_survived(verdict)
    assert verdict["stalled"] < RPC_TIMEOUT
    assert not local["hung"]


def _assert_classic_came_back(
    verdict: dict[str, Any], local: dict[str, Any], logs: Any, queue: str
) -> None:
    """broker.queue_type classic on a cluster: the service queue lives on one node
    and goes with it, and so do the (transient, unconfirmed) requests in it:
    their calls end at their deadline (the broker may yet hand such a request to
    A or B a moment later: its reply, come after the deadline, is dropped
    as late, and logged so). B's consumer is cancelled by the broker;
    B declares the queue again on its own node and serves on (the log says so);
    meanwhile callers are told at once that nobody takes the call."""
    lost = verdict["hung"]
    assert all(abs(c["start"] - verdict["fault_at"]) < 1.0 for c in lost), "hung after the kill"
    print(f"{len(lost)} calls lost with the node's classic queue (ended at their deadline)")
    survived = {**verdict, "hung": [], "slow": [c for c in verdict["slow"] if c not in lost]}
    _assert_survived(survived, late=len(lost))
    assert not local["hung"]
    sysname = verdict["sysname"]
    assert any(f"queue {queue} declared and consumed again" in t for t in logs.texts()), [
        t for t in logs.texts() if sysname in t or "consumer" in t
    ]


class _Audit(Process):
    """Keeps the events of the named subscription C{audit}."""

    async def on_activate(self) -> None:
        self.got = Collector()
        await EventSubscriber(self, event_id=1001, queue_name="audit", handler=self._got).start()

    def _got(self, event: Any, msg: m.Message) -> None:
        self.got(event.description)


@pytest_twisted.ensureDeferred
async def test_full_cluster_restart_keeps_requests_and_subscriptions(
    system: ClusterSystem,
) -> None:
    """Requests queued for a service with no instance, and events kept by a named
    subscription with no subscriber, are still there after every node of the
    cluster has stopped and started again: served and delivered then."""
    cluster = system.cluster
    a = await system.container(0, "a")
    service = await a.spawn(Counted)
    audit = await a.spawn(_Audit, name="audit")
    await a.terminate(service.id)
    await a.terminate(audit.id)
    c = await system.container(1, "c")
    client = await c.spawn(Process, name="client")
    # Long deadlines: the requests must not expire while the cluster restarts.
    calls = [client.rpc_send("counted", "work", n, timeout=300) for n in range(20)]
    for call in calls:
        call.addErrback(lambda f: f.value)  # they fail when the connection goes
    for n in range(10):
        event = create_event(1001, origin="cluster-test", description=f"kept {n}")
        await publish(c.exchange, str(client.id), event)  # confirmed: persistent
    back: defer.Deferred[None] = defer.Deferred()
    a.exchange.broker.on_reconnected(lambda: back.called or back.callback(None))
    await _in_thread(lambda _i: cluster.restart_all(), 0)
    await back.addTimeout(60, _reactor())  # a's connection is made again, then spawn
    await a.spawn(Counted)
    audit = await a.spawn(_Audit, name="audit")
    deadline = _reactor().seconds() + 60
    while len({n for n, _ in HANDLED.get(system.sysname, [])}) < 20:
        assert _reactor().seconds() < deadline, HANDLED.get(system.sysname)
        await task.deferLater(_reactor(), 0.2, lambda: None)
    assert sorted(await audit.got.wait(10, timeout=30)) == sorted(f"kept {n}" for n in range(10))
