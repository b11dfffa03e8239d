#!/usr/bin/env python
"""Soak: N real containers beating on RabbitMQ; false positives, CPU and heartbeat traffic.

Scenario A15 of the container agent. Starts --containers (10) headless
C{twistd -n cc} containers in a fresh sysname on RabbitMQ (--url) with
C{agent.heartbeat} H (--heartbeat, 0.2 s), and beside them a baseline container
with C{agent.enabled: false}; once all are ready (and 2 s more) it soaks for
--seconds (60), then reports:

- views: each agent's get_info (asked by a client container in this process,
  which runs no agent) must list the other N-1 containers UP, epoch 0;
- false positives: SUSPECT or DEAD lines (or a rejoin under a new epoch) in
  any container's log from launch to the stop: must be 0;
- CPU: each container's utime+stime (/proc/<pid>/stat) over the soak as a
  percent of wall time; median, max, baseline, agent share (median - baseline);
- heartbeats: expected n*n/H deliveries/s (n beats every H, each delivered to n
  agent queues); measured as the beats sent (seq deltas between two get_info
  rounds, over the observers' clocks) times n, and as the beats a tap queue
  bound to C{ion.<sys>.containers} takes (one queue's share) times n.

Prints a table and a last line C{RESULT {json}}; exits 1 on a false positive or
a peer missing from a view. The containers are stopped with SIGTERM and the
sysname's exchanges deleted, after Ctrl-C or an error too. Linux only.

    .venv/bin/python scripts/soak_agent.py [--containers 10] [--heartbeat 0.2]
        [--seconds 60] [--url amqp://guest:guest@127.0.0.1:5672/]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from twisted.internet import defer, task
from twisted.logger import ILogObserver, globalLogBeginner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_common import TWISTD, Once, delete_system, run_soak, stop_processes  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
SETTLE = 2.0  # seconds after the last container is ready before the soak window opens
BAD = re.compile(r"\) (SUSPECT|DEAD): |joins again as epoch")


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) process C{pid} has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


@dataclass
class Node:
    """One twistd container of the soak."""

    cid: str
    proc: subprocess.Popen[bytes]
    log: Path
    ready: Path

    def bad_lines(self, start: int = 0) -> tuple[list[str], int]:
        """Its SUSPECT/DEAD/rejoin lines from byte C{start} of its log, and the log's end."""
        data = self.log.read_bytes()
        text = data[start:].decode("utf-8", "replace")
        return [line for line in text.splitlines() if BAD.search(line)], len(data)


class Soak:
    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor, self.args = reactor, args
        self.sysname = f"soak-{uuid.uuid4().hex[:8]}"
        self.tmp = Path(tempfile.mkdtemp(prefix="ion-soak-"))
        self.nodes: list[Node] = []  # with agents; the baseline is the last of self.all
        self.all: list[Node] = []
        self.container: Any = None
        self.client: Any = None
        self.tapped: Counter[str] = Counter()  # heartbeats delivered to the tap, by sender
        self.tapping = False
        self.cleanup = Once(self._cleanup)  # stops the containers, deletes the exchanges

    def sleep(self, seconds: float) -> defer.Deferred[None]:
        return task.deferLater(self.reactor, seconds, lambda: None)

    def launch(self, cid: str, agent: bool) -> Node:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ION_")}
        env.update(ION_BROKER__URL=self.args.url, ION_AGENT__HEARTBEAT=str(self.args.heartbeat))
        env["ION_AGENT__ENABLED"] = "true" if agent else "false"
        ready, log = self.tmp / f"{cid}.ready", self.tmp / f"{cid}.log"
        cmd = [*TWISTD, "--pidfile=", "-n", "cc", "--no_shell", "--container-id", cid]
        cmd += ["-s", self.sysname, "--ready-file", str(ready)]
        with open(log, "wb") as out:  # a session of their own: Ctrl-C is this script's alone
            proc = subprocess.Popen(
                cmd, cwd=self.tmp, env=env, stdout=out, stderr=out, start_new_session=True
            )
        return Node(cid, proc, log, ready)

    async def start_client(self) -> None:
        """A container in this process, without an agent, to ask the agents and tap heartbeats."""
        from ion.core.cc.container import Container
        from ion.core.config import DEFAULTS, Config
        from ion.core.messaging import message as m
        from ion.core.process.process import Process

        settings = {"broker": {"url": self.args.url}, "agent": {"enabled": False}}
        cid = f"{self.sysname}-client"
        self.container = Container(
            reactor=self.reactor, config=Config(DEFAULTS).merged(settings),
            container_id=cid, sysname=self.sysname,
        )  # fmt: skip
        await self.container.start()
        self.client = await self.container.spawn(Process, name="soak_client")
        broker, fanout = self.container.exchange.broker, f"ion.{self.sysname}.containers"
        tap = f"{self.sysname}.soak.tap"
        await broker.declare_exchange(fanout, "fanout")  # as the agents declare it
        await broker.declare_queue(tap, exclusive=True, auto_delete=True)
        await broker.bind_queue(tap, fanout, "")

        def delivered(delivery: Any) -> None:
            msg = m.decode(delivery.body)
            if self.tapping and msg.op == "heartbeat" and isinstance(msg.content, dict):
                self.tapped[str(msg.content.get("cid"))] += 1

        await broker.consume(tap, delivered, 0, auto_ack=True)

    async def wait_ready(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not all(n.ready.exists() for n in self.all):
            for n in self.all:
                if n.proc.poll() is not None:
                    raise SystemExit(f"{n.cid} exited with {n.proc.returncode}; see {n.log}")
            if time.monotonic() > end:
                raise SystemExit(f"not all containers ready after {timeout:g}s; see {self.tmp}")
            await self.sleep(0.1)

    async def infos(self) -> dict[str, Any]:
        """Each container's get_info reply (or the exception instead), asked at once."""
        from ion.core.cc.agent_wire import agent_key

        ask = [self.client.rpc_send(agent_key(n.cid), "get_info", timeout=10) for n in self.nodes]
        results = await defer.DeferredList(ask, consumeErrors=True)
        return {n.cid: v if ok else v.value for n, (ok, v) in zip(self.nodes, results, strict=True)}

    async def _cleanup(self) -> None:
        await stop_processes(self.reactor, [(n.cid, n.proc) for n in self.all])
        try:
            if self.container is not None:
                await self.container.stop()
        except Exception as e:
            print(f"stopping the client failed: {type(e).__name__}: {e}", flush=True)
        await delete_system(self.reactor, self.args.url, self.sysname)

    async def soak(self) -> dict[str, Any]:
        """Launch, soak, measure: the raw figures."""
        a = self.args
        await self.start_client()
        t0 = time.monotonic()
        self.nodes = [self.launch(f"{self.sysname}-c{i:02d}", True) for i in range(a.containers)]
        self.all = [*self.nodes, self.launch(f"{self.sysname}-base", False)]
        await self.wait_ready(timeout=30 + 5 * a.containers)
        boot = time.monotonic() - t0
        print(f"system {self.sysname}: {a.containers} containers and a baseline ready in "
              f"{boot:.1f}s; soaking {a.seconds:g}s; logs in {self.tmp}", flush=True)  # fmt: skip
        await self.sleep(SETTLE)
        before = await self.infos()
        cpu0, w0 = {n.cid: cpu_seconds(n.proc.pid) for n in self.all}, time.monotonic()
        self.tapping = True
        await self.sleep(a.seconds)
        cpu1, w1 = {n.cid: cpu_seconds(n.proc.pid) for n in self.all}, time.monotonic()
        self.tapping = False
        after = await self.infos()
        cpu = {c: (cpu1[c] - cpu0[c]) / (w1 - w0) * 100 for c in cpu0}
        logs = {n.cid: n.bad_lines() for n in self.all}
        return dict(boot=boot, wall=w1 - w0, cpu=cpu, before=before, after=after, logs=logs)


def peers_of(info: Any) -> dict[str, dict[str, Any]]:
    return {p["cid"]: p for p in info["peers"]} if isinstance(info, dict) else {}


def report(run: Soak, raw: dict[str, Any], shutdown: list[str]) -> tuple[dict[str, Any], bool]:
    """Print the table and the summary; the RESULT figures, and whether the soak failed."""
    n, cids, cpu = run.args.containers, [node.cid for node in run.nodes], raw["cpu"]
    missing: dict[str, list[str]] = {}  # observer -> the others it does not see UP in epoch 0
    rates: dict[str, float] = {}  # beats/s each sent: its seq in the others' views
    lags: dict[str, float] = {}
    for o in cids:
        peers = peers_of(raw["after"][o])
        up = [c for c, p in peers.items() if p["state"] == "UP" and p["epoch"] == 0]
        missing[o] = [c for c in cids if c != o and c not in up]
    for x in cids:
        per_observer, lags[x] = [], 0.0
        for o in cids:
            p0, p1 = peers_of(raw["before"][o]).get(x), peers_of(raw["after"][o]).get(x)
            if p0 and p1 and p0["epoch"] == p1["epoch"] and p1["last_heard"] > p0["last_heard"]:
                per_observer.append((p1["seq"] - p0["seq"]) / (p1["last_heard"] - p0["last_heard"]))
            lags[x] = max(lags[x], p1["lag_ms"] if p1 else 0.0)
        rates[x] = statistics.median(per_observer) if per_observer else 0.0
    false_pos = {cid: lines for cid, (lines, _end) in raw["logs"].items() if lines}
    n_false, n_missing = sum(map(len, false_pos.values())), sum(map(len, missing.values()))
    print(f"\n{'container':<20}{'CPU %':>7}{'peers UP':>10}{'beats/s':>9}{'lag ms':>8}"
          f"{'SUSPECT/DEAD':>14}")  # fmt: skip
    for c in cids:
        print(f"{c:<20}{cpu[c]:>7.2f}{f'{n - 1 - len(missing[c])}/{n - 1}':>10}{rates[c]:>9.2f}"
              f"{lags[c]:>8.1f}{len(false_pos.get(c, [])):>14}")  # fmt: skip
    base = cpu[run.all[-1].cid]
    print(f"{'baseline (no agent)':<20}{base:>7.2f}")
    med, top = statistics.median(cpu[c] for c in cids), max(cpu[c] for c in cids)
    expected, sent = n * n / run.args.heartbeat, sum(rates.values())
    tap = sum(run.tapped.values()) / raw["wall"]
    dropped = sum(i["dropped"] for i in raw["after"].values() if isinstance(i, dict))
    print(f"\nCPU % over {raw['wall']:.1f}s: median {med:.2f}, max {top:.2f}; baseline {base:.2f}; "
          f"agent share (median - baseline) {med - base:.2f}")  # fmt: skip
    print(f"heartbeat deliveries/s: expected {expected:.0f} (n*n/H); measured {sent * n:.0f} "
          f"(beats sent {sent:.1f}/s by seq, x {n}); tap queue {tap:.1f}/s x {n} = {tap * n:.0f}; "
          f"dropped (from ended epochs) {dropped}")  # fmt: skip
    print(f"false positives (SUSPECT/DEAD/rejoin lines, launch to stop): {n_false}; "
          f"peers missing from views: {n_missing}")  # fmt: skip
    for c, lines in false_pos.items():
        print("\n".join(f"  {c}: {line}" for line in lines))
    for c, gone in missing.items():
        if gone:
            info = raw["after"][c]
            print(f"  {c} does not see UP: {gone} {'' if isinstance(info, dict) else repr(info)}")
    if shutdown:
        print(f"while stopping (not counted): {len(shutdown)} SUSPECT/DEAD lines; the first:")
        print("\n".join(f"  {line}" for line in shutdown[:5]))
    exits = {node.cid: node.proc.returncode for node in run.all}
    print("stop:", f"exit statuses {exits}" if any(exits.values()) else "all exited 0 on SIGTERM")
    result = {
        "containers": n, "heartbeat_s": run.args.heartbeat, "seconds": round(raw["wall"], 2),
        "boot_s": round(raw["boot"], 2), "cpu_pct": {c: round(cpu[c], 3) for c in cids},
        "cpu_pct_median": round(med, 3), "cpu_pct_max": round(top, 3),
        "baseline_cpu_pct": round(base, 3), "agent_cpu_pct": round(med - base, 3),
        "expected_deliveries_per_s": round(expected, 1),
        "measured_deliveries_per_s": round(sent * n, 1), "tap_deliveries_per_s": round(tap * n, 1),
        "false_positives": n_false, "missing_from_views": n_missing, "dropped": dropped,
        "max_lag_ms": max(lags.values()), "shutdown_suspect_dead": len(shutdown),
    }  # fmt: skip
    return result, bool(n_false or n_missing)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    run = Soak(reactor, args)
    raw = await run_soak(reactor, run.soak(), run.cleanup, "the containers")
    shutdown = [line for n in run.nodes for line in n.bad_lines(raw["logs"][n.cid][1])[0]]
    result, failed = report(run, raw, shutdown)
    print("RESULT " + json.dumps(result), flush=True)
    if failed:
        raise SystemExit(f"false positives or incomplete views; the logs are in {run.tmp}")
    shutil.rmtree(run.tmp, ignore_errors=True)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--containers", type=int, default=10, help="containers with agents (10)")
    p.add_argument("--heartbeat", type=float, default=0.2, help="agent.heartbeat H, s (0.2)")
    p.add_argument("--seconds", type=float, default=60.0, help="the soak window, s (60)")
    p.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/", help="the RabbitMQ")
    args = p.parse_args(argv)
    if args.containers < 2:
        p.error("--containers: at least 2")
    return args


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    from ion.core.log import make_observer

    # The client container's warnings and errors (a failed call, say) go to stderr.
    quiet = {"logging": {"level": "warn", "levels": {"ion": "warn"}}}
    observer = cast(ILogObserver, make_observer(quiet, sys.stderr))
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, arguments)))
