#!/usr/bin/env python
"""Soak on a RabbitMQ cluster: rpc and event load while broker nodes are SIGKILLed.

Starts a private three-node RabbitMQ cluster (tests/rabbit_cluster.RabbitCluster,
under a temp directory; or uses the nodes of --urls) and --containers (4)
headless C{twistd -n cc} containers in a fresh sysname, each given all the
nodes' URLs (its own node first, so they spread over the nodes; broker.shuffle
off) and broker.queue_type quorum, each running one SoakCounted instance
(scripts/soak_cluster_service.py: it records every request it runs and every
event it takes from the named subscription <sysname>.soak_events, a quorum
queue). A client container in this process (on all the nodes too) calls the
service at --rate calls/s (each with --rpc-timeout) and publishes confirmed
events at --event-rate/s, while a node is SIGKILLed and booted again every
--every s, round robin, for --seconds. Then load stops, --drain s pass, and
it prints:

    calls   ok / failed fast (a typed error well before the deadline) /
            hung (ended by its deadline, the request ran: the reply was lost) /
            lost (ended by its deadline, the request never ran; rpc_send does
                  not tell whether the broker had confirmed it) /
            duplicated (run more than once, or answered more than once)
    events  published-confirmed / delivered / lost (confirmed, never delivered) /
            duplicated (delivered more than once)
    outage  the longest gap between two successful replies

Targets: 0 hung, 0 lost, outage <= --max-outage (5 s); exit 1 when one is
missed (or a container died). The containers are stopped (SIGTERM) and the
cluster stopped, after Ctrl-C or an error too; the logs are kept (and named)
when a target is missed. The last line is C{RESULT {json}}. Linux only.

    .venv/bin/python scripts/soak_cluster.py [--containers 4] [--rate 50]
        [--event-rate 10] [--every 20] [--seconds 180] [--down 1]
        [--rpc-timeout 10] [--drain 20] [--queue-type quorum|auto]
        [--urls amqp://h:p1/,amqp://h:p2/,amqp://h:p3/]

With --urls the script only loads that cluster (killing needs nodes it started)
and deletes the sysname's queues and exchanges after. A node is killed at load
start + k * --every unless the previous one is still booting (two nodes down
would take the quorum away): that kill then waits, and says how late it is; the
load runs on until the last killed node is back. Boots are slow on a busy
machine (15-25 s on two loaded CPUs), so the real period may exceed --every.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, task, threads

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
sys.path.insert(0, str(REPO))  # tests.rabbit_cluster
sys.path.insert(0, str(SCRIPTS))  # soak_cluster_service

from soak_cluster_service import EVENT_ID, EVENT_QUEUE, SERVICE  # noqa: E402
from soak_common import TWISTD, Once, delete_system, run_soak, stop_processes  # noqa: E402

BOOT = (
    "from soak_cluster_service import SoakCounted\n"
    "await cc.spawn(SoakCounted, args={{'dir': {dir!r}, 'tag': {tag!r}}})\n"
)
FAST = 0.5  # a typed error this long or more before the deadline is "failed fast"
STUCK = 5.0  # a call not ended this long after its deadline is hung (never ended)


@dataclass
class Call:
    token: str
    start: float
    end: float | None = None
    outcome: str | None = None  # ok, fast, late, deadline, stuck, mismatched
    error: str = ""


@dataclass
class Box:
    """One twistd container of the soak."""

    tag: str
    urls: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    ready: Path | None = None


@dataclass
class Tally:
    calls: list[Call] = field(default_factory=list)
    replies_ok: list[float] = field(default_factory=list)  # monotonic times
    events_sent: int = 0
    events_confirmed: set[int] = field(default_factory=set)
    events_failed: Counter[str] = field(default_factory=Counter)
    kills: list[tuple[float, int, float]] = field(default_factory=list)  # at, node, boot s
    leaders_before: list[str] = field(default_factory=list)  # by kill: the last leaders seen
    harness: list[str] = field(default_factory=list)  # failures of the cluster machinery
    extra_replies: int = 0  # late or unknown-conversation replies the client dropped
    client_links: Counter[str] = field(default_factory=Counter)  # connects, restores


class Soak:
    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor, self.args = reactor, args
        self.sysname = f"soakc-{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="ion-soak-cluster-"))
        self.cluster: Any = None
        self.urls: list[str] = []
        self.boxes: list[Box] = []
        self.container: Any = None
        self.client: Any = None
        self.tally = Tally()
        self.loading = False
        self.pending: set[defer.Deferred[Any]] = set()
        self.examples: dict[str, str] = {}  # an error's type: its first message
        self.last_leaders = "?"
        self.cleanup = Once(self._cleanup)  # containers, client, cluster
        self.t0 = time.monotonic()
        self.load_start = self.load_end = self.t0

    def now(self) -> float:
        return time.monotonic() - self.t0

    def say(self, text: str) -> None:
        print(f"[{self.now():7.1f}s] {text}", flush=True)

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        return task.deferLater(self.reactor, seconds, lambda: None)

    # -- setup ---------------------------------------------------------------

    async def start_cluster(self) -> None:
        if self.args.urls:
            self.urls = [u.strip() for u in self.args.urls.split(",") if u.strip()]
            self.say(f"using the cluster at {', '.join(self.urls)} (no node is killed)")
            return
        from tests.rabbit_cluster import RabbitCluster

        self.cluster = RabbitCluster(3, parent=self.tmp, supervised=True)
        began = time.monotonic()
        await threads.deferToThread(self.cluster.start)
        self.urls = self.cluster.urls
        self.say(f"cluster of 3 formed in {time.monotonic() - began:.1f}s: {' '.join(self.urls)}")

    def launch(self, box: Box) -> None:
        ready, log = self.tmp / f"{box.tag}.ready", self.tmp / f"{box.tag}.log"
        script = self.tmp / f"{box.tag}.py"
        script.write_text(BOOT.format(dir=str(self.tmp), tag=box.tag))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ION_")}
        env.update(
            ION_BROKER__URL=",".join(box.urls),
            ION_BROKER__SHUFFLE="false",
            ION_BROKER__QUEUE_TYPE=self.args.queue_type,
            ION_CONTAINER__RPC_TIMEOUT=str(self.args.rpc_timeout),
            PYTHONPATH=os.pathsep.join([str(SCRIPTS), env.get("PYTHONPATH", "")]),
        )
        cmd = [*TWISTD, "--pidfile=", "-n", "cc", "-n", "--container-id", box.tag]
        cmd += ["-s", self.sysname, "--ready-file", str(ready), str(script)]
        with open(log, "wb") as out:  # a session of their own: Ctrl-C is this script's alone
            box.proc = subprocess.Popen(
                cmd, cwd=self.tmp, env=env, stdout=out, stderr=out, start_new_session=True
            )
        box.log, box.ready = log, ready

    async def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not all(b.ready is not None and b.ready.exists() for b in self.boxes):
            for b in self.boxes:
                if b.proc is not None and b.proc.poll() is not None:
                    raise SystemExit(f"{b.tag} exited with {b.proc.returncode}; see {b.log}")
            if time.monotonic() > end:
                raise SystemExit(f"not all containers ready after {timeout:g}s; see {self.tmp}")
            await self.sleep(0.1)

    async def start_client(self) -> None:
        from ion.core.cc.container import Container
        from ion.core.config import DEFAULTS, Config
        from ion.core.process.process import Process

        settings = {
            "broker": {"url": list(self.urls), "queue_type": self.args.queue_type},
            "container": {"rpc_timeout": self.args.rpc_timeout},
            "agent": {"enabled": False},
        }
        self.container = Container(
            reactor=self.reactor,
            config=Config(DEFAULTS).merged(settings),
            container_id=f"{self.sysname}-client",
            sysname=self.sysname,
        )
        await self.container.start()
        self.client = await self.container.spawn(Process, name="soak_client")

    # -- load ----------------------------------------------------------------

    def call_once(self) -> None:
        from ion.core.exception import IonError

        token = uuid.uuid4().hex
        call = Call(token, time.monotonic())
        self.tally.calls.append(call)
        timeout = self.args.rpc_timeout
        d = self.client.rpc_send(SERVICE, "call", {"token": token}, timeout=timeout)
        d.addTimeout(timeout + STUCK, self.reactor)

        def done(result: Any) -> None:
            call.end = time.monotonic()
            if isinstance(result, dict) and result.get("token") == token:
                call.outcome = "ok"
                self.tally.replies_ok.append(call.end)
            else:
                call.outcome, call.error = "mismatched", repr(result)[:80]

        def failed(f: Any) -> None:
            call.end = time.monotonic()
            e = f.value
            left = timeout - (call.end - call.start)
            call.error = type(e).__name__
            self.examples.setdefault(call.error, f"{e}"[:200])
            if isinstance(e, defer.TimeoutError):
                call.outcome = "stuck"  # not ended by its own deadline
            elif "Timeout" in call.error and left < FAST:
                call.outcome = "deadline"
            elif left >= FAST and isinstance(e, IonError):
                call.outcome = "fast"
            else:
                call.outcome = "late"  # an error near the deadline, or an untyped one

        d.addCallbacks(done, failed)
        self.pending.add(d)
        d.addBoth(lambda _: self.pending.discard(d))

    def event_once(self, seq: int) -> None:
        from ion.core import events

        event = events.create_event(EVENT_ID, origin="soak", description=str(seq))
        d = events.publish(
            self.container.exchange, str(self.client.id), event, container_id=self.container.id
        )
        d.addTimeout(self.args.rpc_timeout + STUCK, self.reactor)
        self.tally.events_sent += 1
        d.addCallbacks(
            lambda _: self.tally.events_confirmed.add(seq),
            lambda f: self.tally.events_failed.update([type(f.value).__name__]),
        )
        self.pending.add(d)
        d.addBoth(lambda _: self.pending.discard(d))

    async def paced(self, rate: float, fire: Any) -> None:
        """Call C{fire(n)} C{rate} times a second (open loop) while loading."""
        n, began = 0, time.monotonic()
        while self.loading:
            fire(n)
            n += 1
            wait = began + n / rate - time.monotonic()
            if wait > 0:
                await self.sleep(wait)

    # -- chaos ---------------------------------------------------------------

    async def chaos(self, end: float) -> None:
        """Kill node k % 3 at load start + k * --every (k = 1, 2, ...) and boot it
        again after --down s; a kill whose time comes while the previous node is
        still booting waits for it (two nodes down would cost the quorum)."""
        if self.cluster is None:
            await self.sleep(max(0.0, end - time.monotonic()))
            return
        k = 0
        while True:
            k += 1
            due = self.load_start + k * self.args.every
            if max(due, time.monotonic()) + 1 > end:
                return  # no kill after the load window (the last one may end past it)
            await self.sleep(max(0.0, due - time.monotonic()))
            i = (k - 1) % 3
            killed = time.monotonic()
            self.tally.leaders_before.append(self.last_leaders)
            late = f", {killed - due:.1f}s late" if killed - due > 0.5 else ""
            await threads.deferToThread(self.cluster.kill, i)
            self.say(f"node {i + 1} ({self.urls[i]}) SIGKILLed{late}")
            await self.sleep(self.args.down)
            began = time.monotonic()
            try:
                await threads.deferToThread(self.cluster.start, i)
            except Exception as e:
                # RabbitNode.await_boot removes a node that fails to boot for good:
                # killing another one now would take the quorum away. Load on.
                first = str(e).splitlines()[:3]
                self.say(f"node {i + 1} did not boot again: {type(e).__name__}: {first}")
                self.say("no more kills: the cluster runs on two nodes (a harness failure)")
                self.tally.kills.append((killed - self.t0, i, -1.0))
                self.tally.harness.append(f"node {i + 1} did not boot again: {first}")
                await self.sleep(max(0.0, end - time.monotonic()))
                return
            boot = time.monotonic() - began
            self.tally.kills.append((killed - self.t0, i, boot))
            self.say(f"node {i + 1} running again, booted and rejoined in {boot:.1f}s")
            self.say(f"quorum queue leaders now: {await self.leaders()}")

    async def leaders(self) -> str:
        """Which node leads the service's and the events' quorum queues (best effort)."""
        out = []
        for what, queue in (("service", SERVICE), ("events", EVENT_QUEUE)):
            try:
                i = await threads.deferToThread(self.cluster.leader, f"{self.sysname}.{queue}")
                out.append(f"{what} n{i + 1}")
            except Exception as e:
                out.append(f"{what} ? ({type(e).__name__})")
        self.last_leaders = ", ".join(out)
        return self.last_leaders

    # -- run -----------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        a = self.args
        await self.start_cluster()
        n = len(self.urls)
        for c in range(a.containers):
            urls = self.urls[c % n :] + self.urls[: c % n]  # its own node first
            self.boxes.append(Box(f"{self.sysname}-c{c}", urls))
        for b in self.boxes:
            self.launch(b)
        await self.wait_ready(60 + 10 * a.containers)
        self.say(f"{a.containers} containers ready (sysname {self.sysname}); logs in {self.tmp}")
        await self.start_client()
        consumers = await self.container.exchange.service_consumers(SERVICE)
        self.say(f"client ready; {SERVICE} has {consumers} consumers; soaking {a.seconds:g}s")
        if self.cluster is not None:
            self.say(f"quorum queue leaders: {await self.leaders()}")
        self.loading = True
        self.load_start = time.monotonic()
        end = self.load_start + a.seconds
        rpc = defer.Deferred.fromCoroutine(self.paced(a.rate, lambda _n: self.call_once()))
        ev = defer.Deferred.fromCoroutine(self.paced(a.event_rate, self.event_once))
        progress = task.LoopingCall(self.progress)
        progress.start(10, now=False)
        try:
            await self.chaos(end)
            await self.sleep(max(0.0, end - time.monotonic()))
        finally:
            self.loading = False
            await rpc
            await ev
        self.load_end = time.monotonic()
        self.say(f"load window {self.load_end - self.load_start:.1f}s")
        self.say(f"load stopped; draining {a.drain:g}s (open: {len(self.pending)})")
        drain_end = time.monotonic() + a.drain
        while time.monotonic() < drain_end:
            await self.sleep(0.5)
        progress.stop()
        try:
            consumers = await self.container.exchange.service_consumers(SERVICE)
        except Exception as e:
            consumers = f"{type(e).__name__}: {e}"
        return {"consumers_end": consumers}

    def progress(self) -> None:
        c = Counter(call.outcome or "open" for call in self.tally.calls)
        self.say(
            "calls " + " ".join(f"{k} {v}" for k, v in sorted(c.items()))
            + f"; events confirmed {len(self.tally.events_confirmed)}/{self.tally.events_sent}"
        )  # fmt: skip

    # -- cleanup -------------------------------------------------------------

    async def _cleanup(self) -> None:
        await stop_processes(self.reactor, [(b.tag, b.proc) for b in self.boxes if b.proc])
        try:
            if self.container is not None:
                await self.container.stop()
        except Exception as e:
            print(f"stopping the client failed: {type(e).__name__}: {e}", flush=True)
        if self.cluster is not None:
            try:
                await threads.deferToThread(self.cluster.stop)
            except Exception as e:
                print(f"stopping the cluster failed: {type(e).__name__}: {e}", flush=True)
            from tests.rabbit_node import node_pids

            stray = [pid for node in self.cluster.nodes for pid in node_pids(node)]
            print(f"processes of this run's nodes left: {stray or 'none'}", flush=True)
        elif self.urls:
            queues = (SERVICE, EVENT_QUEUE, "dead_letters")
            await delete_system(
                self.reactor, self.urls, self.sysname, [f"{self.sysname}.{q}" for q in queues]
            )


# -- the record and the report ---------------------------------------------------


def read_records(
    tmp: Path, suffix: str, where: dict[str, list[tuple[str, float]]] | None = None
) -> tuple[Counter[str], dict[str, list[float]]]:
    """What the service instances wrote: how often each key, and when, by container
    (and, into C{where}, by key: the containers and wall times it ran at)."""
    counts: Counter[str] = Counter()
    times: dict[str, list[float]] = {}
    for f in sorted(tmp.glob(f"*.{suffix}")):
        stamps = times.setdefault(f.stem, [])
        for line in f.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2:
                counts[parts[0]] += 1
                stamps.append(float(parts[1]))
                if where is not None:
                    where.setdefault(parts[0], []).append((f.stem, float(parts[1])))
    return counts, times


def report(run: Soak, extra: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    a, t = run.args, run.tally
    runs: dict[str, list[tuple[str, float]]] = {}
    ran, ran_at = read_records(run.tmp, "calls", runs)
    got, got_at = read_records(run.tmp, "events")
    outcome = Counter(c.outcome or "open" for c in t.calls)
    hung = lost = 0
    for c in t.calls:
        if c.outcome in ("deadline", "stuck", None):
            if ran[c.token]:
                hung += 1
            else:
                lost += 1
    dup_run = sum(1 for c in t.calls if ran[c.token] > 1)
    errors = Counter(f"{c.outcome}: {c.error}" for c in t.calls if c.outcome not in ("ok",))
    # the longest gap between successful replies, load start and end included
    marks = [run.load_start, *sorted(t.replies_ok), run.load_end]
    gaps = [(b - a_, a_) for a_, b in zip(marks, marks[1:], strict=False)]
    outage, outage_at = max(gaps) if gaps else (0.0, run.load_start)
    confirmed = t.events_confirmed
    delivered = {int(k) for k in got}
    ev_lost = sorted(confirmed - delivered)
    ev_dup = sum(1 for k, v in got.items() if v > 1)
    unconfirmed_delivered = len(delivered - confirmed)

    print(f"\n{'calls':<10}{'made':>7}{'ok':>7}{'fast':>7}{'hung':>7}{'lost':>7}"
          f"{'late':>7}{'mism.':>7}{'dup':>7}")  # fmt: skip
    print(f"{'':<10}{len(t.calls):>7}{outcome['ok']:>7}{outcome['fast']:>7}{hung:>7}{lost:>7}"
          f"{outcome['late']:>7}{outcome['mismatched']:>7}{dup_run:>7}")  # fmt: skip
    print(f"{'events':<10}{'sent':>7}{'conf.':>7}{'failed':>7}{'deliv.':>7}{'lost':>7}"
          f"{'dup':>7}")  # fmt: skip
    print(f"{'':<10}{t.events_sent:>7}{len(confirmed):>7}{sum(t.events_failed.values()):>7}"
          f"{len(delivered):>7}{len(ev_lost):>7}{ev_dup:>7}")  # fmt: skip
    print(f"\nfailed calls by error: {dict(errors.most_common())}")
    for kind, text in sorted(run.examples.items()):
        print(f"  e.g. {kind}: {text}")
    unanswered = [c for c in t.calls if c.outcome in ("deadline", "stuck", None)]
    if unanswered:
        shift = time.time() - time.monotonic()  # monotonic + shift: wall time
        print(f"calls ended by their deadline ({len(unanswered)}; wall clock, UTC; first 30):")
        for c in unanswered[:30]:
            where = ", ".join(
                f"{tag.rsplit('-', 1)[-1]} at {wall(at)}" for tag, at in runs.get(c.token, [])
            )
            print(f"  sent {wall(c.start + shift)} ({c.start - run.t0:.2f}s), "
                  f"{c.outcome} {c.error}; ran: {where or 'never'}")  # fmt: skip
    print(f"failed event publishes by error: {dict(t.events_failed)}")
    print(f"events delivered though their publish was not confirmed: {unconfirmed_delivered}")
    print(f"replies the client dropped as late or unknown (a second reply, or one past its "
          f"call's end): {t.extra_replies}")  # fmt: skip
    print(f"longest outage (gap between successful replies): {outage:.2f}s, from "
          f"{outage_at - run.t0:.1f}s")  # fmt: skip
    for gap, g0 in sorted(gaps, reverse=True)[:3]:
        g1 = g0 + gap
        inside = Counter(
            f"{c.outcome}: {c.error}" for c in t.calls if c.end and g0 < c.end < g1 and c.error
        )
        before = [(at, i, k) for k, (at, i, _b) in enumerate(t.kills) if at + run.t0 <= g1]
        near = ""
        if before:
            at, i, k = before[-1]
            near = (f"; {g0 - run.t0 - at:.2f}s after node {i + 1} was killed (at {at:.1f}s; "
                    f"leaders last seen before it: {t.leaders_before[k]})")  # fmt: skip
        print(f"  gap {gap:.2f}s from {g0 - run.t0:.1f}s{near}; calls ended in it: "
              f"{dict(inside.most_common())}")  # fmt: skip
    print("node kills (at s, node, rejoin s): "
          + ", ".join(f"{at:.0f}s n{i + 1} {b:.1f}s" for at, i, b in t.kills))  # fmt: skip
    print(f"{SERVICE} consumers at the end: {extra['consumers_end']} (of {a.containers})")
    # each container's share of the work, and whether it worked after the last kill
    last_kill = (t.kills[-1][0] + run.t0 + max(0.0, t.kills[-1][2])) if t.kills else 0.0
    wall0 = time.time() - (time.monotonic() - last_kill)
    print(f"\n{'container':<22}{'exit':>6}{'calls run':>11}{'after last kill':>17}{'events':>8}"
          f"{'connects':>10}{'restored':>10}{'gave up':>9}")  # fmt: skip
    dead, gave_up = [], 0
    for b in run.boxes:
        rc = b.proc.returncode if b.proc is not None else None
        calls = ran_at.get(b.tag, [])
        after = sum(1 for s in calls if s > wall0)
        text = b.log.read_text(errors="replace") if b.log is not None else ""
        links = (text.count(" connected to "), text.count("broker connection restored"),
                 text.count("gave up restoring"))  # fmt: skip
        gave_up += links[2]
        print(f"{b.tag:<22}{rc!s:>6}{len(calls):>11}{after:>17}{len(got_at.get(b.tag, [])):>8}"
              f"{links[0]:>10}{links[1]:>10}{links[2]:>9}")  # fmt: skip
        if b.proc is not None and b.proc.returncode not in (0, None, -signal.SIGTERM):
            dead.append(b.tag)
    cl = t.client_links
    print(f"{'client (this process)':<22}{'':>6}{'':>11}{'':>17}{'':>8}"
          f"{cl['connects']:>10}{cl['restored']:>10}{cl['gave up']:>9}")  # fmt: skip
    gave_up += cl["gave up"]
    missed = []
    if hung:
        missed.append(f"{hung} hung")
    if lost:
        missed.append(f"{lost} lost calls")
    if ev_lost:
        missed.append(f"{len(ev_lost)} lost events (first {ev_lost[:10]})")
    if outage > a.max_outage:
        missed.append(f"outage {outage:.1f}s > {a.max_outage:g}s")
    if gave_up:
        missed.append(f"{gave_up} queues given up by containers (see their logs)")
    if t.harness:
        missed.append(f"the run is not valid: {'; '.join(t.harness)}")
    if dead:
        missed.append(f"containers exited badly: {dead}")
    stuck = outcome["stuck"]
    result = {
        "containers": a.containers, "seconds": a.seconds, "rate": a.rate,
        "event_rate": a.event_rate, "every": a.every, "queue_type": a.queue_type,
        "kills": len(t.kills), "calls": len(t.calls), "ok": outcome["ok"],
        "failed_fast": outcome["fast"], "failed_late": outcome["late"], "hung": hung,
        "never_ended": stuck, "lost": lost, "mismatched": outcome["mismatched"],
        "duplicated_runs": dup_run, "extra_replies": t.extra_replies,
        "events_sent": t.events_sent, "events_confirmed": len(confirmed),
        "events_failed": sum(t.events_failed.values()), "events_delivered": len(delivered),
        "events_lost": len(ev_lost), "events_duplicated": ev_dup,
        "outage_s": round(outage, 2), "consumers_end": extra["consumers_end"],
        "targets_met": not missed,
    }  # fmt: skip
    return result, missed


def wall(at: float) -> str:
    """A wall-clock time as the logs write it: HH:MM:SS.mmm UTC."""
    return time.strftime("%H:%M:%S", time.gmtime(at)) + f"{at % 1:.3f}"[1:]


class ReplyCounter:
    """A log observer: counts the replies the client's conversations dropped."""

    def __init__(self, tally: Tally, out: Any) -> None:
        self.tally, self.out = tally, out

    def __call__(self, event: dict[str, Any]) -> None:
        fmt = event.get("log_format") or ""
        if "late reply dropped" in fmt or "reply for unknown conversation" in fmt:
            self.tally.extra_replies += 1
        elif "{name} connected to {url}" in fmt:
            self.tally.client_links["connects"] += 1
        elif "broker connection restored" in fmt:
            self.tally.client_links["restored"] += 1
        elif "gave up restoring" in fmt:
            self.tally.client_links["gave up"] += 1


async def main(reactor: Any, args: argparse.Namespace, counter: ReplyCounter) -> None:
    run = Soak(reactor, args)
    counter.tally = run.tally
    extra = await run_soak(reactor, run.run(), run.cleanup, "the containers and the cluster")
    result, missed = report(run, extra)
    print(f"\ntargets (0 hung, 0 lost, outage <= {args.max_outage:g}s): "
          + ("met" if not missed else "MISSED: " + "; ".join(missed)))  # fmt: skip
    print("RESULT " + json.dumps(result), flush=True)
    if missed:
        raise SystemExit(f"targets missed; the logs are in {run.tmp}")
    shutil.rmtree(run.tmp, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--containers", type=int, default=4, help="service containers (4)")
    p.add_argument("--rate", type=float, default=50.0, help="calls per second (50)")
    p.add_argument("--event-rate", type=float, default=10.0, help="events per second (10)")
    p.add_argument("--every", type=float, default=20.0, help="a node killed every S s (20)")
    p.add_argument("--down", type=float, default=1.0, help="s a killed node stays down (1)")
    p.add_argument("--seconds", type=float, default=180.0, help="the load window, s (180)")
    p.add_argument("--rpc-timeout", type=float, default=10.0, help="each call's timeout (10)")
    p.add_argument("--drain", type=float, default=20.0, help="s to wait after the load (20)")
    p.add_argument("--max-outage", type=float, default=5.0, help="outage target, s (5)")
    p.add_argument("--queue-type", choices=("quorum", "auto"), default="quorum")
    p.add_argument("--urls", help="an existing cluster's AMQP URLs, comma-separated")
    args = p.parse_args(argv)
    if args.containers < 1 or args.rate <= 0 or args.event_rate <= 0:
        p.error("--containers, --rate and --event-rate must be positive")
    return args


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    from twisted.logger import globalLogBeginner

    from ion.core.log import make_observer

    # The client container's log goes to a file (it warns at each lost link);
    # the observer counts the replies it drops.
    log_path = Path(tempfile.gettempdir()) / f"ion-soak-cluster-client-{os.getpid()}.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - open for the whole run
    counter = ReplyCounter(Tally(), log_file)
    print(f"client log: {log_path}", flush=True)
    globalLogBeginner.beginLoggingTo(
        [counter, make_observer({"logging": {"level": "info"}}, log_file)],
        redirectStandardIO=False,
    )
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments, counter)))
