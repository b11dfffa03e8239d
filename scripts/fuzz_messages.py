#!/usr/bin/env python
"""Fuzz: publish malformed messages straight onto a system's exchange at a
container and check that they cost it nothing.

Boots one headless C{twistd -n cc} container running the hello app in a fresh
sysname on RabbitMQ (--url), and beside it a client container in this process
(no agent). Then publishes --count (100,000) malformed messages on
C{ion.<sysname>}, spread over the container's queues (the hello service, its
agent's key, the agent's process id and reply queue): random bytes, truncated
msgpack, wrong shapes and types, huge and deep headers, control characters in
headers, spoofed reply-to, replies and signals for nothing; and unsigned and
badly signed requests, the container signing (--no-signing: not); the cases
are in scripts/fuzz_cases.py. Every batch of
--batch messages ends with a ping of the agent and a hello call, each answered
within --deadline seconds or counted as a hang; the calls queue behind the
batch, so they also bound the backlog.

Prints, and checks against its target:

- crashes: the container process died (0);
- hangs: pings or hello calls not answered within the deadline (0);
- tracebacks: C{Traceback} lines in the container's log (0);
- RSS before, after the first batch and at the end (/proc/<pid>/status): flat
  (the end at most max(16 MiB, 10 %) over the first batch's);
- log lines the container wrote from the first message to the end (< 100),
  counted after one C{logging.drop_interval} so the last summary is in.

The last line is C{RESULT {json}}; exit status 1 when a target is missed.
The container is stopped with SIGTERM and the system's exchanges and the hello
queue deleted, after Ctrl-C or an error too. Linux only (RSS from /proc).

    .venv/bin/python scripts/fuzz_messages.py [--count 100000] [--seed 1]
        [--batch 1000] [--url amqp://guest:guest@127.0.0.1:5672/]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fuzz_cases import Targets, cases  # noqa: E402
from soak_common import TWISTD, Once, delete_system, run_soak, stop_processes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HELLO_APP = ROOT / "res" / "apps" / "hello.app"


def _key_line() -> str:
    from ion.core.security.keys import new_key_line

    return new_key_line("fuzz")


MAX_LOG_LINES = 100


def rss_kib(pid: int) -> int:
    """The resident set size of process C{pid}, in KiB (/proc/<pid>/status)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


@dataclass
class Figures:
    """What a run measured."""

    sent: int = 0
    by_case: Counter[str] = field(default_factory=Counter)
    calls: int = 0
    hangs: int = 0
    crashed: bool = False
    exit_status: int | None = None
    tracebacks: int = 0
    rss_before: int = 0
    rss_warm: int = 0
    rss_after: int = 0
    log_lines: int = 0
    drops: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    signing: bool = False
    worst_call_s: float = 0.0


class Fuzz:
    """One run: a container to fuzz, a client to publish and call, the figures."""

    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor, self.args = reactor, args
        self.sysname = f"fuzz-{uuid.uuid4().hex[:8]}"
        self.cid = f"{self.sysname}-target"
        self.tmp = Path(tempfile.mkdtemp(prefix="ion-fuzz-"))
        self.log = self.tmp / "target.log"
        self.ready = self.tmp / "target.ready"
        self.proc: subprocess.Popen[bytes] | None = None
        self.container: Any = None
        self.client: Any = None
        self.signing = not args.no_signing
        self.key = _key_line() if self.signing else ""  # "<kid> <base64 key>" (ION_SYSTEM_KEY)
        self.figures = Figures(signing=self.signing)
        self.cleanup = Once(self._cleanup)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ION_")}
        env["ION_BROKER__URL"] = self.args.url
        env["ION_LOGGING__DROP_INTERVAL"] = str(self.args.drop_interval)
        if self.signing:
            env["ION_SECURITY__SIGNING"] = "true"
            env["ION_SECURITY__KEY_FILE"] = str(self.key_file())
        return env

    def key_file(self) -> Path:
        """The system's key as a key file of the run's own (never this process's
        environment: the script also runs inside the test suite)."""
        path = Path(self.tmp) / "ion.key"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(self.key + "\n")
        return path

    def launch(self) -> None:
        cmd = [*TWISTD, "--pidfile=", "-n", "cc", "--no_shell", "--container-id", self.cid,
               "-s", self.sysname, "--ready-file", str(self.ready), "--pack-root", str(ROOT),
               str(HELLO_APP)]  # fmt: skip
        with open(self.log, "wb") as out:  # a session of its own: Ctrl-C is this script's alone
            self.proc = subprocess.Popen(cmd, cwd=self.tmp, env=self.env(), stdout=out,
                                         stderr=out, start_new_session=True)  # fmt: skip

    async def start_client(self) -> None:
        from ion.core.cc.container import Container
        from ion.core.config import DEFAULTS, Config
        from ion.core.process.process import Process

        settings: dict[str, Any] = {"broker": {"url": self.args.url}, "agent": {"enabled": False}}
        if self.signing:  # the client signs its calls with the system's key
            settings["security"] = {"signing": True, "key_file": str(self.key_file())}
        self.container = Container(
            reactor=self.reactor, config=Config(DEFAULTS).merged(settings),
            container_id=f"{self.sysname}-client", sysname=self.sysname,
        )  # fmt: skip
        await self.container.start()
        self.client = await self.container.spawn(Process, name="fuzz_client")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not self.ready.exists():
            if self.proc is not None and self.proc.poll() is not None:
                raise SystemExit(
                    f"the container exited with {self.proc.returncode}; see {self.log}"
                )
            if time.monotonic() > end:
                raise SystemExit(f"the container was not ready after {timeout:g}s; see {self.log}")
            await task.deferLater(self.reactor, 0.1, lambda: None)  # a poll, bounded by timeout

    async def call(self, to: str, op: str, content: Any) -> Any:
        """One call the container must answer within the deadline; a miss is a hang."""
        began = time.monotonic()
        self.figures.calls += 1
        try:
            reply = await self.client.rpc_send(to, op, content, timeout=self.args.deadline)
        except Exception as e:
            self.figures.hangs += 1
            print(f"  {op} to {to}: not answered: {type(e).__name__}: {e}", flush=True)
            return None
        took = time.monotonic() - began
        self.figures.worst_call_s = max(self.figures.worst_call_s, took)
        return reply

    async def probe(self, agent_key: str) -> None:
        """A ping of the agent and a hello call: both queues' backlog ends with them."""
        await defer.DeferredList(
            [defer.ensureDeferred(self.call(agent_key, "ping", None)),
             defer.ensureDeferred(self.call("hello", "hello", "fuzz"))],
        )  # fmt: skip

    def alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None and not self.figures.crashed:
            self.figures.crashed, self.figures.exit_status = True, self.proc.returncode
            print(f"  the container died: exit status {self.proc.returncode}", flush=True)
        return not self.figures.crashed

    async def run(self) -> Figures:
        from ion.core.cc.agent_wire import agent_key
        from ion.core.process.runtime import REPLY_KEY_SUFFIX

        a, f = self.args, self.figures
        await self.start_client()
        self.launch()
        await self.wait_ready()
        assert self.proc is not None
        akey = agent_key(self.cid)
        pong = await self.call(akey, "ping", None)
        if not isinstance(pong, dict):
            raise SystemExit(f"the container's agent does not answer; see {self.log}")
        pid = str(pong["pong"])
        targets = Targets("hello", akey, pid, pid + REPLY_KEY_SUFFIX)
        rng = random.Random(a.seed)
        makers, weights = cases(self.signing)
        exchange, broker = f"ion.{self.sysname}", self.container.exchange.broker
        print(f"system {self.sysname}: fuzzing {self.cid} (pid {self.proc.pid}) with {a.count:,} "
              f"messages, seed {a.seed}; signed cases: "
              + ("on (the container signs)" if self.signing else "skipped (--no-signing)")
              + f"; log in {self.log}", flush=True)  # fmt: skip
        f.rss_before = rss_kib(self.proc.pid)
        log_start = self.log.stat().st_size  # the lines the run makes, from here
        began = time.monotonic()
        while f.sent < a.count and self.alive():
            n = min(a.batch, a.count - f.sent)
            published = []
            for maker in rng.choices(makers, weights, k=n):
                key, body = maker(rng, targets)
                f.by_case[maker.__name__[5:]] += 1
                published.append(broker.publish(exchange, key, body))
            await defer.gatherResults(published)
            first = f.sent == 0
            f.sent += n
            await self.probe(akey)
            if first:  # after one batch: the warm figure
                f.rss_warm = rss_kib(self.proc.pid)
            if f.sent % (a.batch * 20) == 0:
                print(f"  {f.sent:,} sent, RSS {rss_kib(self.proc.pid) / 1024:.1f} MiB, "
                      f"{time.monotonic() - began:.0f}s", flush=True)  # fmt: skip
        f.seconds = time.monotonic() - began
        if self.alive():
            f.rss_after = rss_kib(self.proc.pid)
            info = await self.client.rpc_send(akey, "get_info", None, timeout=a.deadline)
            f.drops = info.get("drops", {}) if isinstance(info, dict) else {}
            # The last summary line comes one drop interval after the last drop.
            await task.deferLater(self.reactor, a.drop_interval + 1.0, lambda: None)
            self.alive()
        text = self.log.read_bytes().decode("utf-8", "replace")
        f.tracebacks = text.count("Traceback")
        f.log_lines = self.log.read_bytes()[log_start:].count(b"\n")
        return f

    async def _cleanup(self) -> None:
        if self.proc is not None:
            await stop_processes(self.reactor, [(self.cid, self.proc)])
        try:
            if self.container is not None:
                await self.container.stop()
        except Exception as e:
            print(f"stopping the client failed: {type(e).__name__}: {e}", flush=True)
        await delete_system(self.reactor, self.args.url, self.sysname, [f"{self.sysname}.hello"])


def verdict(f: Figures) -> dict[str, bool]:
    """Each target: met or not."""
    grown = f.rss_after - f.rss_warm
    return {
        "crashes": not f.crashed,
        "hangs": f.hangs == 0,
        "tracebacks": f.tracebacks == 0,
        "rss_flat": not f.crashed and grown <= max(16 * 1024, f.rss_warm // 10),
        "log_lines": f.log_lines < MAX_LOG_LINES,
    }


def report(f: Figures, run: Fuzz) -> tuple[dict[str, Any], bool]:
    met = verdict(f)
    mib = lambda kib: f"{kib / 1024:.1f} MiB"  # noqa: E731
    rate = f.sent / f.seconds if f.seconds else 0.0
    print(f"\nsent {f.sent:,} malformed messages in {f.seconds:.1f}s ({rate:,.0f}/s): "
          + ", ".join(f"{k} {n:,}" for k, n in sorted(f.by_case.items())))  # fmt: skip
    ok = lambda name: "ok" if met[name] else "MISSED"  # noqa: E731
    print(f"crashes     {int(f.crashed)}  (target 0) {ok('crashes')}"
          + (f": exit status {f.exit_status}" if f.crashed else ""))  # fmt: skip
    print(f"hangs       {f.hangs} of {f.calls} calls (target 0; deadline {run.args.deadline:g}s, "
          f"slowest {f.worst_call_s:.2f}s) {ok('hangs')}")  # fmt: skip
    print(f"tracebacks  {f.tracebacks}  (target 0) {ok('tracebacks')}")
    print(f"RSS         before {mib(f.rss_before)}, after one batch {mib(f.rss_warm)}, "
          f"after {mib(f.rss_after)} (target flat) {ok('rss_flat')}")  # fmt: skip
    print(f"log lines   {f.log_lines} (target < {MAX_LOG_LINES}) {ok('log_lines')}")
    print(
        f"signed cases {'on' if f.signing else 'skipped'}; container's drop counts: "
        f"total {f.drops.get('total')}, causes {json.dumps(f.drops.get('causes', {}))}"
    )
    result = {
        "count": f.sent, "seed": run.args.seed, "seconds": round(f.seconds, 1),
        "crashes": int(f.crashed), "hangs": f.hangs, "calls": f.calls, "tracebacks": f.tracebacks,
        "rss_kib": [f.rss_before, f.rss_warm, f.rss_after], "log_lines": f.log_lines,
        "signing": f.signing, "dropped": f.drops.get("total"), "met": met,
    }  # fmt: skip
    return result, not all(met.values())


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--count", type=int, default=100_000, help="messages to publish (100000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (1)")
    p.add_argument("--batch", type=int, default=1_000, help="messages between probes (1000)")
    p.add_argument("--deadline", type=float, default=10.0, help="seconds a probe may take (10)")
    p.add_argument("--drop-interval", type=float, default=10.0,
                   help="the container's logging.drop_interval (10)")  # fmt: skip
    p.add_argument("--no-signing", action="store_true", help="leave the signed cases out")
    p.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    p.add_argument("--keep", action="store_true", help="keep the container's log directory")
    return p.parse_args(argv)


async def fuzz(reactor: Any, args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    """Run one fuzz; the RESULT figures and whether a target was missed."""
    run = Fuzz(reactor, args)
    try:
        figures = await run_soak(reactor, run.run(), run.cleanup, "the container")
        return report(figures, run)
    finally:
        if not args.keep:
            shutil.rmtree(run.tmp, ignore_errors=True)


async def main(reactor: Any, args: argparse.Namespace) -> None:
    result, missed = await fuzz(reactor, args)
    print("RESULT " + json.dumps(result), flush=True)
    if missed:
        raise SystemExit(1)


if __name__ == "__main__":
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, parse())))
