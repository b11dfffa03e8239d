#!/usr/bin/env python
"""Benchmark: CPU per RPC call over RabbitMQ, by OS process, ion beside the raw pika floor.

Where the time of a call goes: the client's, the server's and the broker's
CPU, for ion (echo service in a twistd container, client in its own process)
and for the floor (../shared/bench/baseline/rpc_bench.py's pika server and
client roles), 1 KiB echo. Each client runs twice against one server: a short
run (start-up, the 200 warm-up calls, one call) and a full one; their
difference over the extra calls is the cost of a call, so start-up costs
cancel. Linux only (reads /proc); the broker is every beam.smp process.

    scripts/bench_amqp_cpu.py [--runs 3] [--calls 20000] [--mode conc|seq]
        [--bench-dir ../shared/bench] [--tap]

--mode conc keeps 32 calls in flight; seq makes them one after another.
--tap runs ion twice, with the message tap on and off (observer.tap), and
prints what it costs each side (the floor beside them).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_amqp  # noqa: E402  (scripts/bench_amqp.py)

HZ = os.sysconf("SC_CLK_TCK")
CONC = 32


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process C{pid} has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def broker_cpu() -> float:
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == "beam.smp":
                        total += process_cpu(int(entry))
            except OSError:
                pass  # gone meanwhile
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(server_pid: int, run_client: Callable[[], object]) -> tuple[float, float, float]:
    """(client, server, broker) CPU seconds while C{run_client} runs a client to its end."""
    before = children_cpu(), process_cpu(server_pid), broker_cpu()
    run_client()
    after = children_cpu(), process_cpu(server_pid), broker_cpu()
    return after[0] - before[0], after[1] - before[1], after[2] - before[2]


def per_call(
    server_pid: int, client: Callable[[int, int], object], calls: int, seq_mode: bool
) -> dict[str, float]:
    """Microseconds of CPU per call, by process: full run minus short run."""
    short = measured(server_pid, lambda: client(1, 1))
    full = measured(
        server_pid, lambda: client(calls, 1) if seq_mode else client(1, calls)
    )  # fmt: skip
    extra = calls - 1
    us = [(f - s) / extra * 1e6 for f, s in zip(full, short, strict=True)]
    return {"client": us[0], "server": us[1], "broker": us[2], "total": sum(us)}


def ion_side(calls: int, seq_mode: bool, tap: bool | None = None) -> dict[str, float]:
    settings = bench_amqp.Settings(tap=tap)
    with bench_amqp.ion_server(settings) as (sysname, server):
        return per_call(
            server.pid,
            lambda seq, n: bench_amqp.ion_client_run(sysname, seq, n, CONC, settings),
            calls,
            seq_mode,
        )


def floor_side(bench: Path, calls: int, seq_mode: bool) -> dict[str, float]:
    script = [sys.executable, str(bench / "baseline" / "rpc_bench.py"), "--lib", "pika"]
    queue = ["--queue", f"ion.bench.cpu.{os.getpid()}"]
    server = subprocess.Popen(
        [*script, "--role", "server", *queue], stdout=subprocess.PIPE, text=True
    )
    try:
        if server.stdout is None or server.stdout.readline().strip() != "READY":
            raise SystemExit("the floor's server did not start")

        def client(seq: int, n: int) -> None:
            subprocess.run(
                [*script, "--role", "client", *queue, "--seq", str(seq), "--calls", str(n),
                 "--conc", str(CONC)],
                capture_output=True, timeout=600, check=True,
            )  # fmt: skip

        return per_call(server.pid, client, calls, seq_mode)
    finally:
        server.terminate()  # its queue is auto-delete: it goes with the server
        server.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--mode", choices=["conc", "seq"], default="conc")
    ap.add_argument("--bench-dir", type=Path, default=bench_amqp.REPO.parent / "shared" / "bench")
    ap.add_argument("--tap", action="store_true", help="ion with observer.tap on and off")
    a = ap.parse_args()
    seq_mode = a.mode == "seq"
    sides: dict[str, Callable[[], dict[str, float]]] = {"ion": lambda: ion_side(a.calls, seq_mode)}
    if a.tap:
        sides = {
            "tap on": lambda: ion_side(a.calls, seq_mode, True),
            "tap off": lambda: ion_side(a.calls, seq_mode, False),
        }
    if (a.bench_dir / "baseline" / "rpc_bench.py").exists():
        sides["floor"] = lambda: floor_side(a.bench_dir, a.calls, seq_mode)
    else:
        print(f"(no floor: {a.bench_dir}/baseline/rpc_bench.py not found)")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for _ in range(a.runs):  # interleaved, so both see the same machine
        for name, run in sides.items():
            runs[name].append(run())
    how = f"{CONC} in flight" if a.mode == "conc" else "sequential"
    print(f"CPU per RPC call over RabbitMQ, 1 KiB echo, {how}; {a.calls} calls; median of {a.runs}")
    print(f"{'us/call':8}{'client':>9}{'server':>9}{'broker':>9}{'total':>9}")
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    for name, m in med.items():
        print(
            f"{name:8}" + "".join(f"{m[k]:>9.0f}" for k in ("client", "server", "broker", "total"))
        )
    if "floor" in med and "ion" in med:
        print(f"ion/floor total: {med['ion']['total'] / med['floor']['total']:.2f}x")
    if a.tap:
        on, off = med["tap on"], med["tap off"]
        print("tap on / off: " + ", ".join(
            f"{k} {on[k]:.0f} / {off[k]:.0f} us ({(on[k] / off[k] - 1) * 100:+.1f} %)"
            for k in ("client", "server", "total")))  # fmt: skip


if __name__ == "__main__":
    main()
