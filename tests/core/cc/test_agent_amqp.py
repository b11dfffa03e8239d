"""The container agent on RabbitMQ: scenarios A1-A7, A10-A13 and A16 of the
agent notes (tests/core/cc/test_agent.py runs them on the embedded broker and
a fake clock).

The observer C1 is a container in this process, on the real reactor: the test
reads C{c1.agent.membership} directly and times each change of its mind
against the fault it caused. C2 is a real C{twistd -n cc} OS process where the
scenario kills it, stops it or SIGSTOPs it. H = 0.2 s and k = 3 in every
container. Detection scenarios run on both brokers where they fit:
C{presence}, the suite's own node with the event exchange plugin
(tests/rabbit_node.py), and C{probe}, the shared broker at 127.0.0.1:5672,
which has no plugin. Measured times are printed beside their bounds
(C{pytest -s}).

Each test has a unique sysname. Whatever happens, its OS containers are
stopped (SIGCONT first: one may be stopped), or killed if they will not stop,
and what its containers declared is deleted; the teardown checks that it is
gone.
"""

from __future__ import annotations

import ctypes
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_twisted
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.task import deferLater

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.cc.container import Container
from ion.core.cc.membership import DEAD, LEFT, SUSPECT, UP
from ion.core.config import DEFAULTS, Config
from ion.core.messaging import message as m
from ion.core.messaging.amqp import AmqpBroker
from ion.core.process.process import Process
from ion.core.process.supervisor import Supervisor
from ion.test.proxy import Proxy
from tests.core.process.linkers import boot_script
from tests.helpers import Collector, wait_for
from tests.launch import POLL, REPO, TIMEOUT, cc_command, clean_env
from tests.rabbit import URL, delete_systems, require_rabbitmq
from tests.xdist_groups import on_rabbit_nodes

pytestmark = pytest.mark.rabbitmq

H, K = 0.2, 3
SLACK = 0.15  # seconds either side of a bound set by the beat timing: the reactors' lateness
PRESENCE, PROBE = "presence", "probe"
ANY = object()
ALLOW = ["tests.core.cc.test_agent:*"]  # Echo, Crashy, BadInit
PR_SET_PDEATHSIG = 1  # Linux prctl(2): the signal a process gets when its parent dies
MANY = 50  # processes in a container whose connection is cut (A7)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


@dataclass(frozen=True)
class Change:
    """One change of an observer's mind about a peer."""

    at: float  # time.monotonic()
    wall: float  # time.time(): comparable with a message's timestamp
    cid: str
    epoch: int
    old: str | None  # None: a new peer
    new: str
    why: str


class Watcher(Process):
    """Traps exits; records its on_exit and on_down calls."""

    trap_exits = True

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.exits: Collector[tuple[str, str]] = Collector()
        self.downs: Collector[tuple[str, str]] = Collector()

    def on_exit(self, pid: str, reason: str) -> None:
        self.exits((pid, reason))

    def on_down(self, ref: str, pid: str, reason: str) -> None:
        self.downs((pid, reason))

    def op_echo(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return content


def _child_setup() -> None:
    """In a twistd container before it runs: SIGINT as by default (this suite may
    run as a shell's background job, which ignores it), and on Linux SIGKILL
    should pytest die without its teardown (killed by a CI timeout, say)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class OsContainer:
    """A C{twistd -n cc} container of Reporters (tests.core.process.linkers)."""

    proc: subprocess.Popen[bytes]
    cid: str
    out: Path  # its output (stdout and stderr)
    log: Path  # what its Reporters saw, JSON lines
    pids: dict[str, str]

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def events(self, **match: Any) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        events = [json.loads(line) for line in lines if line.endswith("}")]
        return [e for e in events if all(e.get(k) == v for k, v in match.items())]

    def signal(self, sig: int) -> float:
        """Send C{sig}; the monotonic time it was sent."""
        at = time.monotonic()
        self.proc.send_signal(sig)
        return at


class AgentSystem:
    """Containers of one unique sysname on one broker: in this process (observers)
    and as twistd OS processes."""

    def __init__(self, url: str, mode: str, tmp: Path) -> None:
        self.url, self.mode, self.tmp = url, mode, tmp
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 5672
        self.sysname = f"t-{uuid.uuid4().hex[:8]}"
        self.sysnames = {self.sysname}
        self.containers: list[Container] = []
        self.changes: dict[str, Collector[Change]] = {}  # by observer id
        self.probes: dict[str, Collector[tuple[str, int, bool]]] = {}  # (cid, epoch, held)
        self.os: list[OsContainer] = []
        self.proxies: list[Proxy] = []
        self.cids: dict[str, str] = {}  # every container's id: its sysname

    # -- containers in this process ------------------------------------------------

    async def container(
        self,
        name: str = "c1",
        sysname: str | None = None,
        proxy: Proxy | None = None,
        **agent: Any,
    ) -> Container:
        """A started container in this process, its agent's changes of mind and
        probe results recorded (L{changes}, L{probes})."""
        reactor = _reactor()
        sysname = sysname or self.sysname
        self.sysnames.add(sysname)
        endpoint = None
        if proxy is not None:
            endpoint = lambda r, _p: TCP4ClientEndpoint(r, "127.0.0.1", proxy.port)  # noqa: E731
        cid = f"{sysname}-{name}"
        broker = AmqpBroker(reactor, self.url, heartbeat=10, endpoint_factory=endpoint, name=cid)
        config = Config(DEFAULTS).merged(
            {"container": {"rpc_timeout": 10},
             "agent": {"heartbeat": H, "dead_after": K, **agent}}
        )  # fmt: skip
        container = Container(
            reactor=reactor, config=config, container_id=cid, sysname=sysname, broker=broker
        )
        self.containers.append(container)
        self.cids[cid] = sysname
        await wait_for(container.start(), TIMEOUT)
        self._record(container)
        return container

    def _record(self, container: Container) -> None:
        agent = container.agent
        assert agent is not None and agent.membership is not None
        membership = agent.membership
        changes: Collector[Change] = Collector()
        probes: Collector[tuple[str, int, bool]] = Collector()
        self.changes[container.id] = changes
        self.probes[container.id] = probes
        on_change, probe = membership._on_change, membership._probe

        def changed(peer: Any, old: str | None, why: str) -> None:
            changes(Change(time.monotonic(), time.time(), peer.cid, peer.epoch, old, peer.state,
                           why))  # fmt: skip
            on_change(peer, old, why)

        def probed(peer: Any) -> Any:
            def note(held: bool) -> bool:
                probes((peer.cid, peer.epoch, held))
                return held

            return probe(peer).addCallback(note)

        membership._on_change = changed
        membership._probe = probed

    async def change(
        self,
        observer: Container,
        cid: str,
        new: str,
        epoch: int = 0,
        old: Any = ANY,
        timeout: float = TIMEOUT,
    ) -> Change:
        """The first change of C{observer}'s mind making C{cid} (epoch) C{new}
        (from C{old}, if given: None for a new peer)."""

        def match(c: Change) -> bool:
            return c.cid == cid and c.epoch == epoch and c.new == new and old in (ANY, c.old)

        try:
            return (await self.changes[observer.id].wait_until(match, timeout))[-1]
        except Exception:
            pytest.fail(f"{observer.id} never saw {cid} (epoch {epoch}) {new} within {timeout}s; "
                        f"it saw {self.seen(observer, cid)}\n{self.outputs()}")  # fmt: skip

    def seen(self, observer: Container, cid: str) -> list[tuple[int, str | None, str, str]]:
        """C{observer}'s changes of mind about C{cid}: (epoch, old, new, why)."""
        return [(c.epoch, c.old, c.new, c.why) for c in self.changes[observer.id] if c.cid == cid]

    @staticmethod
    def view(observer: Container) -> dict[str, tuple[int, str]]:
        """What C{observer} thinks of its peers: cid -> (epoch, state)."""
        agent = observer.agent
        assert agent is not None and agent.membership is not None
        return {cid: (p.epoch, p.state) for cid, p in agent.membership.peers.items()}

    async def proxy(self) -> Proxy:
        proxy = Proxy(_reactor(), (self.host, self.port))
        await proxy.start()
        self.proxies.append(proxy)
        return proxy

    # -- twistd containers ---------------------------------------------------------

    async def twistd(
        self, tag: str, names: tuple[str, ...] = ("b",), *args: str, **env: str
    ) -> OsContainer:
        """A C{twistd -n cc} container of this system with a Reporter per name,
        once it has joined (its ready file is written after its identify)."""
        tmp = self.tmp
        log, pids, ready = tmp / f"{tag}.log", tmp / f"{tag}.pids", tmp / f"{tag}.ready"
        boot, out = tmp / f"{tag}.py", tmp / f"{tag}.out"
        boot.write_text(boot_script(list(names), str(log), str(pids)))
        command = cc_command(f"{tag}-{self.sysname}", "-n", "--broker", self.url,
                             "-s", self.sysname, "--ready-file", str(ready), *args, str(boot))  # fmt: skip
        cid = command[command.index("--container-id") + 1]
        self.cids[cid] = self.sysname
        environ = clean_env(ION_AGENT__HEARTBEAT=str(H), ION_AGENT__DEAD_AFTER=str(K), **env)
        with open(out, "wb") as sink:
            proc = subprocess.Popen(
                command, cwd=REPO, env=environ, stdout=sink, stderr=subprocess.STDOUT,
                preexec_fn=_child_setup,
            )  # fmt: skip
        node = OsContainer(proc, cid, out, log, {})
        self.os.append(node)
        await self._until(lambda: ready.exists() and pids.exists(), f"{tag} ready", node)
        node.pids = json.loads(pids.read_text())
        return node

    async def _until(self, condition: Any, what: str, node: OsContainer | None = None) -> None:
        """Poll C{condition()} (another OS process's doing) every POLL, up to TIMEOUT."""
        deadline = time.monotonic() + TIMEOUT
        while not condition():
            if node is not None and node.proc.poll() is not None:
                pytest.fail(f"{node.cid} exited with {node.proc.returncode} before {what}:\n"
                            f"{node.output()}")  # fmt: skip
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {TIMEOUT}s\n{self.outputs()}")
            await deferLater(_reactor(), POLL, lambda: None)

    async def exited(self, node: OsContainer) -> int:
        await self._until(lambda: node.proc.poll() is not None, f"exit of {node.cid}")
        return node.proc.returncode

    def outputs(self) -> str:
        return "".join(f"--- {n.cid} ---\n{n.output()[-4000:]}" for n in self.os)

    # -- teardown ------------------------------------------------------------------

    async def cleanup(self) -> None:
        """Stop everything this system started and delete what it declared, then
        check that the broker has none of it left."""
        for node in self.os:
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGCONT)  # it may be stopped
                node.proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + TIMEOUT
        while any(n.proc.poll() is None for n in self.os) and time.monotonic() < deadline:
            await deferLater(_reactor(), POLL, lambda: None)
        for node in self.os:
            if node.proc.poll() is None:
                node.proc.kill()
            node.proc.wait()
        shared: set[str] = set()
        for container in reversed(self.containers):
            shared |= container.exchange.shared_queues
            try:
                await wait_for(container.stop(), TIMEOUT)
            except Exception as e:  # the rest must still go
                print(f"stopping {container.id}: {e!r}")
        for proxy in self.proxies:
            await proxy.stop()
        await delete_systems(self.sysnames, shared, url=self.url)
        await self._check_clean(shared)
        assert self.agent_timers() == [], "the stopped containers' agents left timers running"

    def agent_timers(self, *containers: Container) -> list[str]:
        """The timers of the agents (and their memberships) of C{containers}
        (default: all of this system's in this process) still pending."""
        agents = [c.agent for c in containers or self.containers if c.agent is not None]
        mine = {id(o) for a in agents for o in (a, a.membership)}
        pending = [c for c in _reactor().getDelayedCalls() if c.active()]
        return [c.func.__qualname__ for c in pending
                if id(getattr(c.func, "__self__", None)) in mine]  # fmt: skip

    async def _check_clean(self, shared: set[str]) -> None:
        checker = AmqpBroker(_reactor(), self.url, reconnect=False, name="check-clean")
        await wait_for(checker.connect(), TIMEOUT)
        left = []
        try:
            for sysname in self.sysnames:
                for exchange in (f"ion.{sysname}", f"ion.{sysname}.events",
                                 f"ion.{sysname}.containers"):  # fmt: skip
                    if await checker.exchange_exists(exchange):
                        left.append(f"exchange {exchange}")
            agent_queues = {
                f"{sysname}.cc.{cid}.{epoch}" for cid, sysname in self.cids.items()
                for epoch in range(4)
            }  # fmt: skip
            for queue in sorted(shared | agent_queues):
                if await checker.queue_exists(queue):
                    left.append(f"queue {queue}")
        finally:
            await checker.close()
        assert not left, f"left on the broker: {left}"


# PRESENCE asks for the suite's node at run time: its tests go where the node runs.
_PRESENCE = pytest.param(PRESENCE, marks=on_rabbit_nodes)


@pytest.fixture(params=[_PRESENCE, PROBE])
def broker_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(url, mode): the suite's node with presence notices, or the shared broker."""
    if request.param == PRESENCE:
        return request.getfixturevalue("event_broker"), PRESENCE
    require_rabbitmq()
    return URL, PROBE


@pytest_twisted.async_yield_fixture
async def system(broker_url: tuple[str, str], tmp_path: Path) -> AsyncIterator[AgentSystem]:
    s = AgentSystem(*broker_url, tmp_path)
    try:
        yield s
    finally:
        await s.cleanup()


presence_only = pytest.mark.parametrize("broker_url", [_PRESENCE], indirect=True)
probe_only = pytest.mark.parametrize("broker_url", [PROBE], indirect=True)


async def watcher_of(c1: Container) -> Watcher:
    proc = await c1.spawn(Watcher, name="watcher")
    assert isinstance(proc, Watcher)
    return proc


# -- A1: meeting -------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a1_c1_then_c2_each_lists_the_other_up_within_one_interval(
    system: AgentSystem,
) -> None:
    """A1: C1 runs; C2 (twistd) joins with one identify; C1 lists it UP when the
    identify arrives, C2 lists C1 UP when C1's announce arrives: each within
    one H of the identify."""
    c1 = await system.container("c1")
    agent = c1.agent
    assert agent is not None
    identifies: Collector[tuple[str, float, float]] = Collector()  # (cid, sent, arrived)
    op_identify = agent.op_identify

    def spy(content: Any, headers: dict[str, Any], msg: m.Message) -> None:
        identifies((content["cid"], headers[m.TS] / 1000, time.time()))  # wall clock
        op_identify(content, headers, msg)

    agent.op_identify = spy  # type: ignore[method-assign]
    c2 = await system.twistd("c2")
    _, sent, arrived = (await identifies.wait_until(lambda i: i[0] == c2.cid, TIMEOUT))[-1]
    up = await system.change(c1, c2.cid, UP)
    assert up.old is None and up.why == "first heard"
    watcher = await watcher_of(c1)
    info = await wait_for(watcher.rpc_send(f"cc.{c2.cid}", "get_info"), TIMEOUT)
    peers = {p["cid"]: p for p in info["peers"]}
    assert peers[c1.id]["state"] == UP and peers[c1.id]["epoch"] == 0
    assert peers[c1.id]["agent"] == str(agent.id), "C2 has C1's announce"
    assert info["container"]["mode"] == system.mode
    c1_sees, c2_sees = up.wall - sent, peers[c1.id]["since"] - sent
    print(f"\nA1 {system.mode}: after C2's identify, C1 lists C2 UP in {ms(c1_sees)} "
          f"(the identify took {ms(arrived - sent)}), C2 lists C1 UP in {ms(c2_sees)} "
          f"(bound: H = {ms(H)})")  # fmt: skip
    assert c1_sees <= H and c2_sees <= H
    assert system.view(c1) == {c2.cid: (0, UP)}


# -- A2: an orderly stop -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a2_an_orderly_stop_is_left_never_suspect_and_monitors_get_shutdown(
    system: AgentSystem,
) -> None:
    """A2: C2 (twistd) is stopped with SIGTERM: C1 marks it LEFT, without ever
    thinking it SUSPECT, and a monitor from a C1 process of a C2 process gets
    C{shutdown}, not C{noconnection}."""
    c1 = await system.container("c1")
    c2 = await system.twistd("c2")
    await system.change(c1, c2.cid, UP)
    watcher = await watcher_of(c1)
    far = c2.pids["b"]
    watcher.monitor(far)
    await wait_for(watcher.rpc_send(far, "echo", "sync"), TIMEOUT)  # the monitor is there
    stopped = c2.signal(signal.SIGTERM)
    left = await system.change(c1, c2.cid, LEFT)
    assert await system.exited(c2) == 0
    down = (await watcher.downs.wait(1, TIMEOUT))[0]
    print(f"\nA2 {system.mode}: LEFT {ms(left.at - stopped)} after SIGTERM ({left.why})")
    assert down == (far, "shutdown")
    assert system.seen(c1, c2.cid) == [(0, None, UP, "first heard"), (0, UP, LEFT, "said goodbye")]
    assert list(watcher.downs) == [(far, "shutdown")]


# -- A3, A4: kill -9 ------------------------------------------------------------------


async def _killed(system: AgentSystem) -> tuple[Change, float]:
    """C2 (twistd) killed with SIGKILL: C1's DEAD change, and seconds from the kill."""
    c1 = await system.container("c1")
    agent = c1.agent
    assert agent is not None and agent.mode == system.mode
    c2 = await system.twistd("c2")
    await system.change(c1, c2.cid, UP)
    # Its beats have come for a while: C1's deadline is re-armed by each.
    await system._until(lambda: agent.membership.peers[c2.cid].seq >= 3, "C2's third beat")  # type: ignore[union-attr]
    killed = c2.signal(signal.SIGKILL)
    dead = await system.change(c1, c2.cid, DEAD)
    assert await system.exited(c2) == -signal.SIGKILL
    return dead, dead.at - killed


@presence_only
@pytest_twisted.ensureDeferred
async def test_a3_kill_9_is_dead_within_half_a_second_by_presence_notice(
    system: AgentSystem,
) -> None:
    """A3: C2 killed with SIGKILL on a broker with presence notices: C1 marks it
    DEAD on the broker's C{queue.deleted}, within 0.5 s of the kill."""
    dead, took = await _killed(system)
    print(f"\nA3 {system.mode}: DEAD {ms(took)} after kill -9 (bound 500 ms): {dead.why}")
    assert dead.why == "its agent queue was deleted"
    assert took <= 0.5


@probe_only
@pytest_twisted.ensureDeferred
async def test_a4_kill_9_is_dead_within_k_plus_1_intervals_by_probe(system: AgentSystem) -> None:
    """A4: C2 killed with SIGKILL on the shared broker (no presence notices):
    C1 finds it silent for k·H, probes its agent queue and finds it gone:
    DEAD within (k+1)·H = 0.8 s plus the probe (asserted: 1.0 s)."""
    dead, took = await _killed(system)
    print(f"\nA4 {system.mode}: DEAD {ms(took)} after kill -9 (bound (k+1)·H = {ms((K + 1) * H)} "
          f"+ probe; asserted 1000 ms): {dead.why}")  # fmt: skip
    assert system.seen(system.containers[0], dead.cid)[1][2] == SUSPECT
    assert dead.why == "its agent queue is gone"
    assert (K - 1) * H <= took <= 1.0


# -- A5, A6: a stopped container (SIGSTOP) ---------------------------------------------


async def _linked(c1: Container, c2: OsContainer) -> tuple[Watcher, str]:
    """A C1 process linked with C2's Reporter C{b}, the link in place at both ends."""
    watcher = await watcher_of(c1)
    far = c2.pids["b"]
    watcher.link(far)
    await wait_for(watcher.rpc_send(far, "echo", "sync"), TIMEOUT)
    return watcher, far


async def _until_time(deadline: float) -> None:
    """Let the reactor run until monotonic time C{deadline}: how long a fault
    lasts (a scenario's parameter), not a wait for anything to happen."""
    await deferLater(_reactor(), max(0.0, deadline - time.monotonic()), lambda: None)


@pytest_twisted.ensureDeferred
async def test_a5_a_stopped_container_is_suspect_while_held_and_up_again_after_sigcont(
    system: AgentSystem,
) -> None:
    """A5: C2 (twistd) SIGSTOPped for 2·k·H: C1 thinks it SUSPECT after about
    k·H, its probes find C2's agent queue held (405), so it stays SUSPECT; after
    SIGCONT it is UP again, and a link from a C1 process to a C2 process did
    not fire noconnection."""
    c1 = await system.container("c1")
    c2 = await system.twistd("c2")
    await system.change(c1, c2.cid, UP)
    watcher, far = await _linked(c1, c2)
    stopped = c2.signal(signal.SIGSTOP)
    suspect = await system.change(c1, c2.cid, SUSPECT)
    probes = system.probes[c1.id]
    await probes.wait_until(lambda p: p[0] == c2.cid, TIMEOUT)
    await _until_time(stopped + 2 * K * H)
    assert system.view(c1)[c2.cid] == (0, SUSPECT)
    resumed = c2.signal(signal.SIGCONT)
    up = await system.change(c1, c2.cid, UP, old=SUSPECT)
    took = suspect.at - stopped
    print(f"\nA5 {system.mode}: SUSPECT {ms(took)} after SIGSTOP (k·H = {ms(K * H)}, less the "
          f"part of an interval since its last beat); {len(probes)} probes found its queue "
          f"held; UP {ms(up.at - resumed)} after SIGCONT")  # fmt: skip
    assert (K - 1) * H - SLACK <= took <= K * H + SLACK
    assert list(probes) == [(c2.cid, 0, True)] * len(probes)
    assert system.seen(c1, c2.cid) == [
        (0, None, UP, "first heard"),
        (0, UP, SUSPECT, suspect.why),
        (0, SUSPECT, UP, "heard again"),
    ]
    await wait_for(watcher.rpc_send(far, "echo", "sync"), TIMEOUT)  # all C2 owed C1 is here
    assert list(watcher.exits) == [] and far in watcher.links
    assert c2.events(event="on_exit") == []


@pytest_twisted.ensureDeferred
async def test_a6_stopped_past_suspect_max_is_dead_then_rejoins_under_epoch_1(
    system: AgentSystem,
) -> None:
    """A6: C2 (twistd, AMQP heartbeat 60 s, so the broker keeps its connection)
    SIGSTOPped past C1's suspect_max (1.5 s): C1 marks it DEAD at suspect_max
    and the link from a C1 process into C2 fires noconnection; after SIGCONT,
    C2 finds itself in C1's dead digest and rejoins under epoch 1, ending its
    side of the link; C1 lists epoch 1 UP."""
    limit = 1.5
    c1 = await system.container("c1", suspect_max=limit)
    c2 = await system.twistd("c2", ("b",), "--broker_heartbeat", "60")
    await system.change(c1, c2.cid, UP)
    watcher, far = await _linked(c1, c2)
    stopped = c2.signal(signal.SIGSTOP)
    suspect = await system.change(c1, c2.cid, SUSPECT)
    dead = await system.change(c1, c2.cid, DEAD)
    assert (await watcher.exits.wait(1, TIMEOUT)) == [(far, "noconnection")]
    agent = c1.agent
    assert agent is not None and agent.membership is not None
    assert [c2.cid, 0] in agent.membership.dead_digest()
    resumed = c2.signal(signal.SIGCONT)
    back = await system.change(c1, c2.cid, UP, epoch=1)
    took = dead.at - stopped
    print(f"\nA6 {system.mode}: SUSPECT {ms(suspect.at - stopped)} and DEAD {ms(took)} after "
          f"SIGSTOP (k·H + suspect_max = {ms(K * H + limit)}, less the part of an interval "
          f"since its last beat); epoch 1 UP {ms(back.at - resumed)} after SIGCONT")  # fmt: skip
    assert dead.why == f"suspect for {limit:g}s (suspect_max)"
    assert (K - 1) * H + limit - SLACK <= took <= K * H + limit + SLACK
    ended = await _event(system, c2, event="on_exit", by=far)
    assert ended["pid"] == str(watcher.id) and ended["reason"] == "noconnection"
    assert f"joins again as epoch 1: {c1.id} declared it dead" in c2.output()
    assert system.view(c1) == {c2.cid: (1, UP)}
    assert [(e, new) for e, _old, new, _why in system.seen(c1, c2.cid)] == [
        (0, UP), (0, SUSPECT), (0, DEAD), (1, UP)
    ]  # fmt: skip


async def _event(system: AgentSystem, node: OsContainer, **match: Any) -> dict[str, Any]:
    """The first event C{node}'s Reporters logged that matches C{match}, once logged."""
    await system._until(lambda: node.events(**match), f"event {match} in {node.cid}", node)
    return node.events(**match)[0]


# -- A7: a lost broker connection ------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a7_a_cut_connection_comes_back_under_a_new_epoch_and_agent_queue(
    system: AgentSystem,
) -> None:
    """A7: C2 (in this process, connected through a proxy) has its broker
    connection cut and reconnects: it comes back under epoch 1 with a new agent
    queue; C1 ends epoch 0 (the link from a C1 process into C2 fires
    noconnection) and lists epoch 1 UP. C2 joins again once, not twice: its
    reconnect resumes the consumer of its old agent queue before it reports
    the connection back, and C1's beats naming epoch 0 dead come in meanwhile
    (with C2's many processes to resume, nearly always)."""
    proxy = await system.proxy()
    c1 = await system.container("c1")
    c2 = await system.container("c2", proxy=proxy)
    await system.change(c1, c2.id, UP)
    watcher = await watcher_of(c1)
    far = await c2.spawn(Watcher, name="far")
    for _ in range(MANY):  # so the reconnect takes a while resuming their consumers
        await c2.spawn(Watcher)
    watcher.link(str(far.id))
    await wait_for(watcher.rpc_send(str(far.id), "echo", "sync"), TIMEOUT)
    agent1, agent2 = c1.agent, c2.agent
    assert agent1 is not None and agent1.membership is not None and agent2 is not None
    old_queue = agent1.membership.peers[c2.id].queue
    assert old_queue == agent2._queue
    cut = time.monotonic()
    proxy.cut()
    dead = await system.change(c1, c2.id, DEAD)
    back = await system.change(c1, c2.id, UP, epoch=1)
    assert (await watcher.exits.wait(1, TIMEOUT)) == [(str(far.id), "noconnection")]
    print(f"\nA7 {system.mode}: epoch 0 DEAD {ms(dead.at - cut)} after the cut ({dead.why}); "
          f"epoch 1 UP {ms(back.at - cut)} after it")  # fmt: skip
    new_queue = agent1.membership.peers[c2.id].queue
    assert new_queue != old_queue and new_queue == agent2._queue
    assert await c1.exchange.broker.queue_exists(new_queue)
    assert not await c1.exchange.broker.queue_exists(old_queue)
    # Three more of its beats: a second rejoin would have shown by then.
    seq = agent1.membership.peers[c2.id].seq
    await system._until(lambda: agent1.membership.peers[c2.id].seq >= seq + 3, "three beats")  # type: ignore[union-attr]
    assert agent2.epoch == 1
    assert system.view(c1) == {c2.id: (1, UP)}
    assert [(e, new) for e, _old, new, _why in system.seen(c1, c2.id)] == [
        (0, UP), *([(0, SUSPECT)] if system.seen(c1, c2.id)[1][2] == SUSPECT else []),
        (0, DEAD), (1, UP),
    ]  # fmt: skip


# -- A10-A13: the agent's operations over AMQP -------------------------------------------

ECHO, CRASHY, BAD_INIT = (f"tests.core.cc.test_agent:{c}" for c in ("Echo", "Crashy", "BadInit"))


async def _pair(system: AgentSystem) -> tuple[Container, Container, Watcher]:
    """C1 and C2 (which spawns what L{ALLOW} names for others) in this process,
    each listing the other UP, and a caller in C1."""
    c1 = await system.container("c1")
    c2 = await system.container("c2", spawn_allow=ALLOW)
    await system.change(c1, c2.id, UP)
    await system.change(c2, c1.id, UP)
    return c1, c2, await watcher_of(c1)


@probe_only
@pytest_twisted.ensureDeferred
async def test_a10_spawn_on_another_container_under_its_remote_supervisor(
    system: AgentSystem,
) -> None:
    """A10: a process of C1 spawns an allowed module in C2 through C2's agent:
    it runs under C2's C{remote} supervisor and answers calls."""
    _c1, c2, caller = await _pair(system)
    pid = await wait_for(agent_client.spawn_on(caller, c2.id, ECHO, name="echo"), TIMEOUT)
    assert pid.startswith("echo.") and pid.endswith(f"@{c2.id}")
    info = await wait_for(caller.rpc_send(f"cc.{c2.id}", "get_info"), TIMEOUT)
    rows = {p["pid"]: p for p in info["processes"]}
    remote = next(p for p in rows.values() if p["name"] == "remote")
    assert rows[pid]["supervisor"] == remote["pid"]
    assert rows[pid]["class"] == "tests.core.cc.test_agent.Echo"
    assert isinstance(c2.proc_manager.processes[remote["pid"]], Supervisor)
    assert await wait_for(caller.rpc_send(pid, "echo", {"x": 1}), TIMEOUT) == {"x": 1}


@probe_only
@pytest_twisted.ensureDeferred
async def test_a11_spawn_errors_are_typed_and_leave_nothing_behind(system: AgentSystem) -> None:
    """A11: a module that does not exist, one whose on_init fails and one that
    spawn_allow does not list come back as ModuleNotFound, SpawnFailed and
    NotAllowed; C2 is left with its agent and the remote supervisor alone."""
    _c1, c2, caller = await _pair(system)
    spawn = agent_client.spawn_on
    with pytest.raises(exc.ModuleNotFound):
        await wait_for(spawn(caller, c2.id, "tests.core.cc.test_agent:Nothing"), TIMEOUT)
    with pytest.raises(exc.SpawnFailed, match="no good"):
        await wait_for(spawn(caller, c2.id, BAD_INIT), TIMEOUT)
    with pytest.raises(exc.NotAllowed, match="spawn_allow"):
        await wait_for(spawn(caller, c2.id, "ion.core.process.supervisor:Supervisor"), TIMEOUT)
    names = sorted(p.proc_name for p in c2.proc_manager.processes.values())
    assert names == ["cc_agent", "remote"], "no orphaned process"


@probe_only
@pytest_twisted.ensureDeferred
async def test_a12_spawn_linked_to_the_caller_tells_it_of_a_crash(system: AgentSystem) -> None:
    """A12: spawned in C2 with link_to the caller in C1, a process that crashes
    reaches the caller's on_exit with its error."""
    _c1, c2, caller = await _pair(system)
    pid = await wait_for(
        agent_client.spawn_on(caller, c2.id, CRASHY, link_to=str(caller.id)), TIMEOUT
    )
    await system._until(lambda: pid in caller.links, "the link at the caller")
    with pytest.raises(exc.ReceivedError):
        await wait_for(caller.rpc_send(pid, "crash"), TIMEOUT)
    ((who, reason),) = await caller.exits.wait(1, TIMEOUT)
    assert who == pid and reason.startswith("error")


@probe_only
@pytest_twisted.ensureDeferred
async def test_a13_gather_info_marks_a_frozen_container_within_the_deadline(
    system: AgentSystem,
) -> None:
    """A13: get_info asked of every container at once, with C3 frozen (its
    agent holds its queue but takes nothing): C1 and C2 answer, C3 is marked
    with a TimeoutError once the 1 s deadline has passed, not later."""
    c1, c2, caller = await _pair(system)
    c3 = await system.container("c3")
    await system.change(c1, c3.id, UP)
    agent3 = c3.agent
    assert agent3 is not None
    await agent3.freeze()
    asked = time.monotonic()
    infos = dict(await wait_for(agent_client.gather_info(caller, timeout=1.0), TIMEOUT))
    took = time.monotonic() - asked
    await agent3.thaw()
    print(f"\nA13 {system.mode}: get_info of 3 containers, one frozen, answered in {ms(took)} "
          f"(deadline 1000 ms)")  # fmt: skip
    assert set(infos) == {c1.id, c2.id, c3.id}
    assert infos[c1.id]["container"]["cid"] == c1.id
    assert infos[c2.id]["container"]["cid"] == c2.id
    assert isinstance(infos[c3.id], exc.TimeoutError)
    assert 1.0 <= took <= 1.5


# -- A16: systems apart ------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a16_a_second_sysname_on_the_same_broker_is_never_listed(
    system: AgentSystem,
) -> None:
    """A16: two containers of this system and two of another on the same
    broker: each lists its sibling alone, while both systems beat for three
    intervals and while a container of the other system stops."""
    other = f"{system.sysname}-x"
    c1, c2 = await system.container("c1"), await system.container("c2")
    c9, c10 = await system.container("c9", other), await system.container("c10", other)
    pairs = [(c1, c2), (c2, c1), (c9, c10), (c10, c9)]
    for a, b in pairs:
        await system.change(a, b.id, UP)

    def seq(a: Container, b: Container) -> int:
        assert a.agent is not None and a.agent.membership is not None
        return a.agent.membership.peers[b.id].seq

    start = {(a.id, b.id): seq(a, b) for a, b in pairs}
    for a, b in pairs:  # three more beats of each: the other system's came meanwhile too
        await system._until(lambda: seq(a, b) >= start[a.id, b.id] + 3, f"{b.id}'s beats")  # noqa: B023
    await c10.stop()
    await system.change(c9, c10.id, LEFT)
    assert system.view(c1) == {c2.id: (0, UP)} and system.view(c2) == {c1.id: (0, UP)}
    assert system.view(c9) == {c10.id: (0, LEFT)}
    assert {c.cid for c in system.changes[c1.id]} == {c2.id}
    assert {c.cid for c in system.changes[c9.id]} == {c10.id}


@pytest_twisted.ensureDeferred
async def test_a7_a_container_stopped_as_it_joins_again_leaves_no_agent_timer(
    system: AgentSystem,
) -> None:
    """A7: C2 (in this process, through a proxy) is stopped just as its broker
    connection comes back, while its agent joins again: the agent, terminated
    before that rejoin's broker calls come back, starts no heartbeat or
    deadline afterwards and tells nobody of a new epoch."""
    proxy = await system.proxy()
    c1 = await system.container("c1")
    c2 = await system.container("c2", proxy=proxy)
    await system.change(c1, c2.id, UP)
    await c2.spawn(Watcher)  # its stop deletes its queues between the rejoin's calls
    agent = c2.agent
    assert agent is not None
    back: Collector[bool] = Collector()
    c2.exchange.broker.on_reconnected(lambda: back(True))  # told after the agent
    proxy.cut()
    await back.wait(1, TIMEOUT)
    await wait_for(c2.stop(), TIMEOUT)
    assert agent.state == "TERMINATED"
    assert system.agent_timers(c2) == []
    assert all(c.epoch == 0 for c in system.changes[c1.id] if c.cid == c2.id)
