#!/usr/bin/env python
"""Fuzz: publish malformed messages straight onto a system's exchange at a
container and check that they cost it nothing.

Boots one headless C{twistd -n cc} container running the hello app in a fresh
sysname on RabbitMQ (--url), and beside it a client container in this process
(no agent). Then publishes --count (100,000) malformed messages on
C{ion.<sysname>}, spread over the container's queues (the hello service, its
agent's key, the agent's process id and reply queue): random bytes, truncated
msgpack, wrong shapes and types, huge and deep headers, control characters in
headers, spoofed reply-to, replies and signals for nothing; and, when
C{ion.core.security.signing} can be imported, unsigned and badly signed
requests with signing on (else it says they were skipped). Every batch of
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
import importlib.util
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
from twisted.internet import defer, task

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak_common import TWISTD, Once, delete_system, run_soak, stop_processes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
HELLO_APP = ROOT / "res" / "apps" / "hello.app"
SIGNING = importlib.util.find_spec("ion.core.security") is not None and (
    importlib.util.find_spec("ion.core.security.signing") is not None
)
MAX_LOG_LINES = 100
_pack = msgpack.Packer(use_bin_type=True).pack

# Header names (ion.core.messaging.message), written out: a fuzzer builds its
# own frames and should not lean on the code it tests.
SENDER, RECEIVER, REPLY_TO, CONV_ID, CONV_SEQ = (
    "sender",
    "receiver",
    "reply-to",
    "conv-id",
    "conv-seq",
)
PROTOCOL, PERFORMATIVE, OP, USER_ID, EXPIRY, ENCODING = (
    "protocol", "performative", "op", "user-id", "expiry", "encoding",
)  # fmt: skip


@dataclass
class Targets:
    """Where malformed messages go: routing keys on C{ion.<sysname>}."""

    service: str  # the hello service's key
    agent: str  # the agent's key (cc.<cid>)
    agent_pid: str
    agent_reply: str  # the agent's reply queue key

    def all(self) -> list[str]:
        return [self.service, self.agent, self.agent_pid, self.agent_reply]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-able value of any type."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.randrange(-(2**63), 2**64)
    if kind == 1:
        return rng.random() * 10 ** rng.randrange(-5, 300)
    if kind == 2:
        return "".join(chr(rng.choice([rng.randrange(32), rng.randrange(32, 0x2FFF)]))
                       for _ in range(rng.randrange(40)))  # fmt: skip
    if kind == 3:
        return rng.randbytes(rng.randrange(40))
    if kind == 4:
        return rng.choice([None, True, False])
    if kind == 5:
        return rng.choice(["rpc", "request", "generic", "signal", "cc", "request", "inform_result"])
    if kind == 6:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {_junk(rng, 3): _junk(rng, depth + 1) for _ in range(rng.randrange(4))}
    return {"\u202e\x1b[2J": "\n2026-01-01 FAKE LOG LINE"}


def _good_headers(rng: random.Random, t: Targets, to: str) -> dict[str, Any]:
    """Headers of a well-formed request to C{to}, as a spoofer would write them."""
    n = rng.randrange(10**9)
    return {
        SENDER: f"mallory.{n % 97}@fuzz",
        RECEIVER: to,
        REPLY_TO: rng.choice([t.agent_reply, t.agent, f"nobody.{n}.reply", t.service]),
        CONV_ID: f"mallory.{n % 97}@fuzz#{n}",
        CONV_SEQ: 1,
        PROTOCOL: "rpc",
        PERFORMATIVE: "request",
        OP: "hello",
    }


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def case_random_bytes(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    return rng.choice(t.all()), rng.randbytes(rng.randrange(0, 600))


def case_truncated(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    body = _pack([_good_headers(rng, t, to), {"k": "v" * rng.randrange(100)}])
    return to, body[: rng.randrange(1, len(body))]


def case_wrong_shape(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    shapes = [
        lambda: _junk(rng),
        lambda: [],
        lambda: [_junk(rng)],
        lambda: [_junk(rng), _junk(rng), _junk(rng)],
        lambda: [[_junk(rng)], "content"],
        lambda: {"headers": {}, "content": 1},
        lambda: ["headers", {}],
    ]
    return rng.choice(t.all()), _pack(rng.choice(shapes)())


def case_wrong_types(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    headers = _good_headers(rng, t, to)
    for name in rng.sample(sorted(headers) + [CONV_SEQ, EXPIRY, ENCODING, USER_ID], 3):
        headers[name] = _junk(rng)
    if rng.random() < 0.3:
        headers[ENCODING] = rng.choice(["ion-object:", "ion-object:99999", "ion-object:x", "gzip"])
    if rng.random() < 0.2:
        headers[PERFORMATIVE] = rng.choice(["inform_result", "failure", "agree", "refuse"])
    return to, _pack([headers, _junk(rng)])


def case_huge_headers(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    headers = _good_headers(rng, t, to)
    if rng.random() < 0.5:
        headers[rng.choice([SENDER, OP, CONV_ID, "x-big"])] = "A\n" * rng.randrange(10_000, 200_000)
    else:
        headers.update({f"h{i}": i for i in range(rng.randrange(1_000, 20_000))})
    return to, _pack([headers, None])


def case_deep_headers(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    headers = _good_headers(rng, t, to)
    headers[rng.choice([SENDER, OP, "x-deep", CONV_SEQ])] = _deep(rng.randrange(50, 2_000))
    try:
        return to, _pack([headers, None])
    except ValueError:  # deeper than the packer goes: as raw nesting bytes
        return to, b"\x92\x81" + b"\x91" * rng.randrange(1_000, 100_000)


def case_control_text(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """A log-injection attempt: forged lines and terminal escapes in every header."""
    to = rng.choice(t.all())
    forged = "x\n2026-01-01 00:00:00 [ion] CRITICAL: FAKE LOG LINE\r\x1b[2J\x1b]0;t\x07\u202e\x9b"
    headers = {SENDER: forged, RECEIVER: forged, CONV_ID: forged, PROTOCOL: forged,
               PERFORMATIVE: forged, OP: forged}  # fmt: skip
    if rng.random() < 0.5:
        headers[PROTOCOL], headers[PERFORMATIVE] = "rpc", "inform_result"
    return to, _pack([headers, forged])


def case_spoofed_reply_to(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """Requests the service answers with an error, to someone else's reply queue."""
    headers = _good_headers(rng, t, t.service)
    headers[REPLY_TO] = rng.choice([t.agent_reply, t.agent, t.agent_pid])
    headers[OP] = rng.choice(["hello", "no_such_op", "__init__", "op_hello"])
    return t.service, _pack([headers, rng.choice([1, None, [], {"a": 1}])])


def case_stray_reply(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """Replies and signals for conversations nobody holds."""
    to = rng.choice([t.agent_reply, t.agent_pid, t.agent])
    headers = _good_headers(rng, t, to)
    headers[PERFORMATIVE] = rng.choice(["inform_result", "failure", "agree", "refuse", "inform"])
    headers[PROTOCOL] = rng.choice(["rpc", "request", "signal", "generic"])
    headers["status"] = rng.choice(["OK", "ERROR", 7])
    headers.pop(REPLY_TO)
    return to, _pack([headers, _junk(rng)])


def case_badly_signed(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """A well-formed request with no signature, or a made-up one (signing on)."""
    headers = _good_headers(rng, t, rng.choice([t.service, t.agent]))
    headers[USER_ID] = rng.choice(["admin", "root", "cc.admin"])
    headers["ts"] = int(time.time() * 1000)
    if rng.random() < 0.7:
        headers["kid"] = rng.choice(["k1", "current", "", 1, None])
        headers["sig"] = rng.choice([rng.randbytes(32), rng.randbytes(32).hex(), "", 5])
    return headers[RECEIVER], _pack([headers, "hi"])


CASES: list[Callable[[random.Random, Targets], tuple[str, bytes]]] = [
    case_random_bytes, case_truncated, case_wrong_shape, case_wrong_types, case_huge_headers,
    case_deep_headers, case_control_text, case_spoofed_reply_to, case_stray_reply,
]  # fmt: skip
# Huge bodies are the costly ones: one in WEIGHT_HUGE of the others.
WEIGHTS = [10, 10, 10, 20, 1, 2, 5, 10, 10]


def cases(signing: bool) -> tuple[list[Callable[..., tuple[str, bytes]]], list[int]]:
    """The case makers to draw from, and their weights."""
    if signing:
        return [*CASES, case_badly_signed], [*WEIGHTS, 15]
    return list(CASES), list(WEIGHTS)


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
        self.signing = SIGNING and not args.no_signing
        self.key = os.urandom(32).hex()
        self.figures = Figures(signing=self.signing)
        self.cleanup = Once(self._cleanup)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ION_")}
        env["ION_BROKER__URL"] = self.args.url
        env["ION_LOGGING__DROP_INTERVAL"] = str(self.args.drop_interval)
        if self.signing:
            env["ION_SECURITY__SIGNING"] = "true"
            env["ION_SYSTEM_KEY"] = self.key
        return env

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
            os.environ["ION_SYSTEM_KEY"] = self.key
            settings["security"] = {"signing": True}
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
              + ("on (ion.core.security.signing, signing on)" if self.signing else
                 "skipped (ion.core.security.signing not importable)" if not SIGNING else
                 "skipped (--no-signing)")
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
