#!/usr/bin/env python
"""One-way throughput of L{AmqpBroker} against the raw pika floor, in one invocation.

Publishes N x 1 KiB messages to a fresh exclusive queue and consumes them on the
same connection, acking each (prefetch 1000), yielding to the reactor every 100
publishes; msgs/s = N / (first publish -> last ack). Then runs the raw pika
baseline (C{../shared/bench/baseline/oneway_bench.py --lib pika --mode ack})
with the same N, when that script is there.

usage: python scripts/bench_amqp_broker.py [--n 20000] [--mandatory] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BASELINE = Path(__file__).resolve().parents[2] / "shared" / "bench" / "baseline" / "oneway_bench.py"
URL = "amqp://guest:guest@127.0.0.1:5672/"
PAYLOAD = random.Random(42).randbytes(1024)


async def run(reactor, n: int, mandatory: bool) -> float:
    from twisted.internet import defer, task

    from ion.core.messaging.amqp import AmqpBroker

    broker = AmqpBroker(reactor, URL)
    await broker.connect()
    q = await broker.declare_queue(f"bench.amqp_broker.{os.getpid()}", exclusive=True)
    done: defer.Deferred[float] = defer.Deferred()
    count = 0

    def on_delivery(d):
        nonlocal count
        d.ack()
        count += 1
        if count == n:
            done.callback(time.perf_counter())

    await broker.consume(q, on_delivery, prefetch=1000)
    t0 = time.perf_counter()
    for i in range(n):
        broker.publish("", q, PAYLOAD, mandatory=mandatory)
        if i % 100 == 99:
            await task.deferLater(reactor, 0, lambda: None)
    t_end = await done
    await broker.close()
    return n / (t_end - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mandatory", action="store_true")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        from twisted.internet import defer, task

        box = {}

        async def go(reactor):
            box["rate"] = await run(reactor, a.n, a.mandatory)

        try:
            task.react(lambda reactor: defer.Deferred.fromCoroutine(go(reactor)))
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        label = "AmqpBroker" + (" mandatory" if a.mandatory else "")
        print(f"{label:<17} {box['rate']:>9.0f} msgs/s", flush=True)
        return
    for _ in range(a.runs):
        cmd = [sys.executable, __file__, "--child", "--n", str(a.n)]
        cmd += ["--mandatory"] if a.mandatory else []
        subprocess.run(cmd, check=True)
        if BASELINE.exists():
            out = subprocess.run(
                [sys.executable, str(BASELINE), "--lib", "pika", "--mode", "ack", "--n", str(a.n)],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            for line in out.splitlines():
                if line.startswith("RESULT "):
                    print(f"floor (raw pika)  {json.loads(line[7:])['msgs_per_s']:>9.0f} msgs/s")


if __name__ == "__main__":
    main()
