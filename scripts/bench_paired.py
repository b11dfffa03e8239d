#!/usr/bin/env python
"""Benchmark: what one setting costs an rpc over RabbitMQ, its two values
measured call by call in one client.

bench_amqp.py --sign on,off (or --tap, --secure) runs each value in its own
processes, one after the other: on a shared 2-core machine the drift between
two runs (other work, where the heap and the queues fall) is as large as a few
percent of p50, the size of the costs it is asked to show. Here each round
starts two echo containers (one per value) and one client OS process holding
two containers, one per value; the client alternates single sequential calls
between them (on, off, off, on, ...), so both values meet the same machine at
the same moment, and a round's p50 change is the setting's own.

    scripts/bench_paired.py --setting sign [--rounds 11] [--seq 2000] [--same]

--same runs both sides with the setting off (an A/A run): the changes it
prints are the harness's own noise and bias, the floor under what it can show.

Prints each round's p50 and p90, on and off, and their change; then the
median of the rounds' changes with the lowest and highest, and p50 over all
rounds' calls pooled; the servers' CPU per call (from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_amqp as amqp  # noqa: E402  (scripts/bench_amqp.py: the servers, the settings)

SETTINGS = ("sign", "tap", "secure")
VALUES = ("on", "off")


def settings(setting: str, value: str, same: bool) -> amqp.Settings:
    """The settings of side C{value}; both off when C{same} (an A/A run)."""
    return amqp.Settings(**{setting: value == "on" and not same})


def client(sysnames: list[str], setting: str, seq: int, same: bool) -> None:
    """The client (in its own OS process): one container per value, calls alternated."""
    from twisted.internet import defer, task

    async def main(reactor: Any) -> None:
        clients, containers = [], []
        for sysname, value in zip(sysnames, VALUES, strict=True):
            cc, client = await amqp.start_client(reactor, sysname, settings(setting, value, same))
            containers.append(cc)
            clients.append(client)
        for _ in range(amqp.WARMUP):
            for c in clients:
                await c.rpc_send("echo", "echo", amqp.PAYLOAD)
        lat: list[list[float]] = [[], []]
        for i in range(seq):
            for side in (0, 1) if i % 2 == 0 else (1, 0):  # neither always goes first
                t = time.perf_counter()
                await clients[side].rpc_send("echo", "echo", amqp.PAYLOAD)
                lat[side].append(time.perf_counter() - t)
        signed = [cc.exchange.signer.signed if cc.exchange.signer else 0 for cc in containers]
        for cc in containers:
            await cc.stop()
        print(json.dumps({"latencies": lat, "signed": signed}))

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))


def run_round(
    setting: str, seq: int, first: int, same: bool
) -> tuple[list[list[float]], list[float]]:
    """One round: both servers, one client; the latencies (s) and each server's
    CPU per call (us), on first. C{first}: which server starts first."""
    order = (first, 1 - first)
    with ExitStack() as stack:
        servers: dict[int, tuple[str, Any]] = {}
        for side in order:
            servers[side] = stack.enter_context(
                amqp.ion_server(settings(setting, VALUES[side], same))
            )
        pids = [servers[side][1].pid for side in (0, 1)]
        before = [amqp.cpu_seconds(p) for p in pids]
        out = subprocess.run(
            [sys.executable, __file__, *(["--same"] if same else []), "--client", setting,
             str(seq), servers[0][0], servers[1][0]],
            capture_output=True, text=True, timeout=600, check=True,
        ).stdout  # fmt: skip
        after = [amqp.cpu_seconds(p) for p in pids]
    answer = json.loads(out.strip().splitlines()[-1])
    lat, signed = answer["latencies"], answer["signed"]
    if (setting == "sign" and (signed[0] > 0) == same) or signed[1] > 0:
        raise SystemExit(f"signing is not as asked (messages signed, on / off: {signed})")
    calls = amqp.WARMUP + seq
    cpu = [
        (a - b) / calls * 1e6 if a is not None and b is not None else float("nan")
        for a, b in zip(after, before, strict=True)
    ]
    return lat, cpu


def pct(x: float) -> str:
    return f"{(x - 1) * 100:+.1f} %"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=SETTINGS, default="sign")
    ap.add_argument("--rounds", type=int, default=11)
    ap.add_argument("--seq", type=int, default=2000, help="calls per value per round")
    ap.add_argument("--same", action="store_true", help="both sides off: an A/A run")
    ap.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.client:
        setting, seq, *sysnames = a.client
        client(sysnames, setting, int(seq), a.same)
        return
    if a.setting == "sign" and not os.environ.get("ION_SYSTEM_KEY"):
        from ion.core.security.keys import new_key_line

        os.environ["ION_SYSTEM_KEY"] = new_key_line("bench")  # both servers' and the client's
    print(
        ("A/A: both sides off, " if a.same else "")
        + f"{a.setting} on / off, rpc over RabbitMQ, 1 KiB echo; {a.rounds} rounds of"
        f" {a.seq} sequential calls a value, alternated call by call in one client"
    )
    print(f"{'round':>5} {'p50 on':>9} {'p50 off':>9} {'change':>9} {'p90 on':>9} {'p90 off':>9}"
          f" {'change':>9}   server CPU us/call on / off")  # fmt: skip
    changes50, changes90, pooled = [], [], [[], []]
    cpus: list[list[float]] = [[], []]
    for r in range(a.rounds):
        lat, cpu = run_round(a.setting, a.seq, r % 2, a.same)
        p50 = [amqp.percentile(x, 0.5) * 1e6 for x in lat]
        p90 = [amqp.percentile(x, 0.9) * 1e6 for x in lat]
        changes50.append(p50[0] / p50[1])
        changes90.append(p90[0] / p90[1])
        for side in (0, 1):
            pooled[side] += lat[side]
            cpus[side].append(cpu[side])
        print(
            f"{r + 1:>5} {p50[0]:>9,.0f} {p50[1]:>9,.0f} {pct(changes50[-1]):>9}"
            f" {p90[0]:>9,.0f} {p90[1]:>9,.0f} {pct(changes90[-1]):>9}"
            f"   {cpu[0]:.0f} / {cpu[1]:.0f}",
            flush=True,
        )
    all50 = [amqp.percentile(x, 0.5) * 1e6 for x in pooled]
    print(
        f"p50 change, median of rounds: {pct(statistics.median(changes50))}"
        f" (lowest {pct(min(changes50))}, highest {pct(max(changes50))});"
        f" p90: {pct(statistics.median(changes90))}"
    )
    print(
        f"p50 of all calls pooled: {all50[0]:,.0f} / {all50[1]:,.0f} us ({pct(all50[0] / all50[1])});"
        f" server CPU per call, median: {statistics.median(cpus[0]):.0f} /"
        f" {statistics.median(cpus[1]):.0f} us"
    )
    print("RESULT " + json.dumps({
        "p50_change_median": statistics.median(changes50) - 1,
        "p50_changes": [c - 1 for c in changes50],
        "p50_pooled_us": all50,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
