#!/usr/bin/env python
"""Benchmark: spawning and stopping many idle processes in one container.

For each N, spawns N bare processes (sequentially, as an app would) on the
embedded broker, then stops the container, which terminates them newest
first. Prints spawns/s, memory per idle process (resident set growth over the
N spawns, KiB) and the seconds the stop took, by the clock and by this
process's CPU time (which other work on a busy machine disturbs less); median
of --runs runs, each in a fresh interpreter so that memory is not reused from
the run before.

    scripts/bench_spawn.py [--n 10000 --n 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def rss_kib() -> float:
    """This interpreter's resident set, in KiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024


async def one_run(reactor: Any, n: int, children: bool) -> dict[str, float]:
    from ion.core.cc.container import Container
    from ion.core.process.process import Process

    cc = Container(reactor=reactor, container_id=f"bench{os.getpid()}")
    await cc.start()
    for i in range(200):  # warm-up: code paths, caches
        await cc.terminate(await cc.spawn(Process, name=f"warm{i}"))
    gc.collect()
    before = rss_kib()
    t0, c0 = time.perf_counter(), time.process_time()
    if children:
        sup = await cc.spawn(Process, name="sup")
        for _ in range(n):
            await sup.spawn_child(Process, name="idle")
    else:
        for _ in range(n):
            await cc.spawn(Process, name="idle")
    spawn_s, spawn_cpu = time.perf_counter() - t0, time.process_time() - c0
    gc.collect()
    per_proc = (rss_kib() - before) / n
    t0, c0 = time.perf_counter(), time.process_time()
    await cc.stop()
    stop_s, stop_cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "n": n,
        "spawns_per_s": n / spawn_s,
        "spawns_per_cpu_s": n / spawn_cpu,
        "kib_per_proc": per_proc,
        "stop_s": stop_s,
        "stop_cpu_s": stop_cpu,
    }


def child(n: int, children: bool) -> None:
    """Run once and print the figures as JSON (in a fresh interpreter)."""
    from twisted.internet import defer, task
    from twisted.logger import globalLogBeginner

    from ion.core.log import make_observer

    # As under twistd: lines at info and above are written (here, to nowhere),
    # and none are kept in the startup buffer.
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    globalLogBeginner.beginLoggingTo([make_observer({}, devnull)], redirectStandardIO=False)

    async def run(reactor: Any) -> None:
        print(json.dumps(await one_run(reactor, n, children)), flush=True)

    task.react(lambda reactor: defer.ensureDeferred(run(reactor)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, action="append", help="processes (default 10000, 50000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--children", action="store_true", help="spawn them as children of one process"
    )
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.children)
        return
    sizes = args.n or [10_000, 50_000]
    print(f"median of {args.runs} runs; (cpu): by this process's CPU time, steadier when busy")
    print(
        f"{'processes':>10} {'spawns/s':>9} {'(cpu)':>7} {'KiB/proc':>9}"
        f" {'stop s':>7} {'(cpu)':>6}   stop s of each run"
    )
    for n in sizes:
        runs = []
        for _ in range(args.runs):
            done = subprocess.run(
                [sys.executable, __file__, "--child", str(n)]
                + (["--children"] if args.children else []),
                check=True,
                capture_output=True,
                text=True,
            )
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        spread = ", ".join(f"{r['stop_s']:.2f}" for r in runs)
        print(
            f"{n:>10,} {med['spawns_per_s']:>9,.0f} {med['spawns_per_cpu_s']:>7,.0f}"
            f" {med['kib_per_proc']:>9.1f} {med['stop_s']:>7.2f} {med['stop_cpu_s']:>6.2f}"
            f"   {spread}"
        )


if __name__ == "__main__":
    main()
