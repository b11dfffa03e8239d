#!/usr/bin/env python
"""Benchmark: RPC through the embedded broker, in one container.

Prints sequential calls/s with p50/p99 latency for an echo service with 1 KiB
content, and throughput with 32 calls in flight; median of --runs runs, beside
the bare in-process floor (Deferreds + msgpack + one reactor hop, no ion).

    scripts/bench_local.py [--calls 20000] [--conc 32] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import deque
from typing import Any

import msgpack
from twisted.internet import defer, task

from ion.core.cc.container import Container
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess

PAYLOAD = {"data": b"x" * 1024}


class EchoService(ServiceProcess):
    """Answers C{echo} with its content."""

    service_name = "echo"

    def op_echo(self, content: Any, headers: dict, msg: Any) -> Any:
        return content


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


async def ion_run(reactor: Any, calls: int, conc: int) -> dict[str, float]:
    cc = Container(reactor=reactor, container_id=f"bench{time.monotonic_ns()}")
    await cc.start()
    await cc.spawn(EchoService)
    client = await cc.spawn(Process, name="client")
    for _ in range(500):  # warm-up
        await client.rpc_send("echo", "echo", PAYLOAD)
    lat = []
    t0 = time.perf_counter()
    for _ in range(calls):
        t = time.perf_counter()
        await client.rpc_send("echo", "echo", PAYLOAD)
        lat.append(time.perf_counter() - t)
    seq_elapsed = time.perf_counter() - t0
    lat.sort()
    # 32 in flight: keep conc calls outstanding until `calls` are done.
    done = 0
    started = 0
    finished: defer.Deferred[None] = defer.Deferred()

    def one(_: Any = None) -> None:
        nonlocal done, started
        if _ is not None:
            done += 1
        if started < calls:
            started += 1
            client.rpc_send("echo", "echo", PAYLOAD).addCallback(one)
        elif done == calls and not finished.called:
            finished.callback(None)

    t0 = time.perf_counter()
    for _ in range(conc):
        started += 1
        client.rpc_send("echo", "echo", PAYLOAD).addCallback(one)
    await finished
    conc_elapsed = time.perf_counter() - t0
    await cc.stop()
    return {
        "seq_calls_s": calls / seq_elapsed,
        "p50_us": percentile(lat, 0.50) * 1e6,
        "p99_us": percentile(lat, 0.99) * 1e6,
        "conc_calls_s": calls / conc_elapsed,
    }


async def floor_run(reactor: Any, calls: int) -> dict[str, float]:
    """The bare floor: dict of queues, msgpack both ways, one reactor hop per delivery."""
    queues: dict[str, deque] = {"svc": deque(), "client": deque()}
    waiting: dict[str, defer.Deferred] = {}

    def send(to: str, frame: bytes) -> None:
        def deliver() -> None:
            d = waiting.pop(to, None)
            if d is not None:
                d.callback(frame)
            else:
                queues[to].append(frame)

        reactor.callLater(0, deliver)

    def get(name: str) -> defer.Deferred:
        if queues[name]:
            return defer.succeed(queues[name].popleft())
        d: defer.Deferred = defer.Deferred()
        waiting[name] = d
        return d

    async def server() -> None:
        while True:
            msg = msgpack.unpackb(await get("svc"))
            h = msg["h"]
            send("client", msgpack.packb({"h": {"conv": h["conv"], "status": "OK"}, "b": msg["b"]}))

    defer.Deferred.fromCoroutine(server()).addErrback(lambda f: None)
    lat = []
    t0 = time.perf_counter()
    for i in range(calls):
        t = time.perf_counter()
        send(
            "svc", msgpack.packb({"h": {"conv": i, "op": "echo", "sender": "client"}, "b": PAYLOAD})
        )
        msgpack.unpackb(await get("client"))
        lat.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - t0
    lat.sort()
    return {
        "seq_calls_s": calls / elapsed,
        "p50_us": percentile(lat, 0.5) * 1e6,
        "p99_us": percentile(lat, 0.99) * 1e6,
    }


async def main(reactor: Any, args: argparse.Namespace) -> None:
    runs: dict[str, list[dict[str, float]]] = {"ion": [], "floor": []}
    for _ in range(args.runs):  # interleaved so noise hits both alike
        runs["floor"].append(await floor_run(reactor, args.calls))
        runs["ion"].append(await ion_run(reactor, args.calls, args.conc))
    summary = {
        name: {key: statistics.median(r[key] for r in rs) for key in rs[0]}
        for name, rs in runs.items()
    }
    print(f"embedded broker, 1 KiB echo, {args.calls} calls, median of {args.runs} runs")
    print(f"{'':8}{'seq calls/s':>14}{'p50 us':>10}{'p99 us':>10}{f'{args.conc} in flight/s':>18}")
    for name, s in summary.items():
        conc = f"{s['conc_calls_s']:>18,.0f}" if "conc_calls_s" in s else f"{'-':>18}"
        print(f"{name:8}{s['seq_calls_s']:>14,.0f}{s['p50_us']:>10.1f}{s['p99_us']:>10.1f}{conc}")
    ratio = summary["ion"]["seq_calls_s"] / summary["floor"]["seq_calls_s"]
    print(f"ion/floor sequential: {ratio:.2f}x")
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--conc", type=int, default=32)
    parser.add_argument("--runs", type=int, default=3)
    ns = parser.parse_args()
    task.react(lambda reactor: defer.ensureDeferred(main(reactor, ns)))
