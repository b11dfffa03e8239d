#!/usr/bin/env python
"""Benchmark: events published -> handled end to end, on each broker given.

One publisher process and one subscriber process (in one container), N events
of about 1 KiB (a data block event), published as fast as the broker takes
them; the time runs from the first publish to the last event handled. Median
of --runs runs per broker.

    scripts/bench_events.py [--events 10000] [--runs 3] [--broker local] [--broker amqp://...] [--nameko]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from twisted.internet import defer, task

from ion.core import events
from ion.core.cc.container import Container
from ion.core.object.event_ids import EventId
from ion.core.process.process import Process

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (scripts/peers.py)

REPO = Path(__file__).resolve().parents[1]
DATA = b"x" * 1000


def make_broker(reactor: Any, url: str) -> Any:
    from ion.core.config import DEFAULTS, Config
    from ion.core.messaging.connect import make_broker

    return make_broker(reactor, Config(DEFAULTS).merged({"broker": {"url": url}}))


async def run_once(reactor: Any, url: str, n: int) -> float:
    sysname = f"bench-{uuid.uuid4().hex[:8]}"
    container = Container(
        reactor=reactor, container_id=sysname, sysname=sysname, broker=make_broker(reactor, url)
    )
    await container.start()
    try:
        publisher = await container.spawn(Process, name="publisher")
        subscriber = await container.spawn(Process, name="subscriber")
        done: defer.Deferred[None] = defer.Deferred()
        count = 0

        def handle(event: Any, msg: Any) -> None:
            nonlocal count
            count += 1
            if count == n:
                done.callback(None)

        await events.EventSubscriber(
            subscriber, event_id=int(EventId.DATABLOCK), handler=handle
        ).start()
        pub = events.DataBlockEventPublisher(publisher, origin="bench")
        t0 = time.perf_counter()
        pending = []
        for i in range(n):
            pending.append(pub.create_and_publish_event(block_id=str(i), data=DATA))
            if len(pending) >= 256:  # pipelined, but let the broker push back
                await defer.DeferredList(pending, fireOnOneErrback=True)
                pending = []
        await defer.DeferredList(pending, fireOnOneErrback=True)
        await done.addTimeout(120, reactor)
        return n / (time.perf_counter() - t0)
    finally:
        await container.stop()
        if url != "local":
            await _delete_system(reactor, url, sysname)


async def _delete_system(reactor: Any, url: str, sysname: str) -> None:
    cleaner = make_broker(reactor, url)
    await cleaner.connect()
    await cleaner.delete_exchange(f"ion.{sysname}")
    await cleaner.delete_exchange(f"ion.{sysname}.events")
    await cleaner.close()


async def main(reactor: Any, args: argparse.Namespace) -> None:
    brokers = args.broker or ["local"]
    results: dict[str, list[float]] = {b: [] for b in brokers}
    for _ in range(args.runs):
        for url in brokers:  # interleaved, so noise hits each alike
            results[url].append(await run_once(reactor, url, args.events))
    print(f"events end to end, ~1 KiB each, {args.events} per run, median of {args.runs}")
    summary = {}
    for url, rates in results.items():
        label = "embedded" if url == "local" else "rabbitmq"
        summary[label] = statistics.median(rates)
        print(
            f"  {label:10} {summary[label]:>10,.0f} events/s   (runs: "
            + ", ".join(f"{r:,.0f}" for r in rates)
            + ")"
        )
    if args.nameko:
        rates = []
        with peers.nameko_service(args.bench_dir, args.nameko_venv) as bench:
            for _ in range(args.runs):
                r = bench("events", "--events", str(args.events), "--mode", "standalone",
                          "--payload", "1000")  # fmt: skip
                rates.append(float(r["events_per_s"]))
        summary["nameko"] = statistics.median(rates)
        print(
            f"  {'nameko':10} {summary['nameko']:>10,.0f} events/s   (runs: "
            + ", ".join(f"{r:,.0f}" for r in rates)
            + ")"
        )
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--broker", action="append", help="local or an amqp:// URL (repeatable)")
    parser.add_argument("--nameko", action="store_true", help="also nameko's event dispatch")
    parser.add_argument("--bench-dir", type=Path, default=REPO.parent / "shared" / "bench")
    parser.add_argument("--nameko-venv", type=Path, default=peers.DEFAULT_VENV)
    ns = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, ns)))
