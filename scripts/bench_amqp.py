#!/usr/bin/env python
"""Benchmark: RPC over RabbitMQ, ion beside the raw pika floor and nameko, in one run.

The same workload for each: an echo service in its own OS process, 1 KiB
request and reply; sequential calls (p50/p99 latency) and calls with 32 in
flight (calls/s). Runs are interleaved, each round in the other order than the
last (floor, ion, nameko, nameko, ion, floor, ...), and the table shows medians
of --runs runs and ion's ratio to the floor.

    scripts/bench_amqp.py [--runs 3] [--seq 2000] [--calls 10000]
        [--bench-dir ../shared/bench] [--nameko-venv DIR] [--no-nameko]
        [--queue-types classic,quorum] [--tap on,off] [--sign on,off]
        [--secure on,off]

--queue-types runs the ion side once per broker.queue_type (service and
client both configured with it; each an "ion <type>" row, interleaved with the
others) and adds each type's ratio to the first one's; without it ion runs
with the configured default (auto: classic on one node).

--tap runs the ion side once per observer.tap setting (service and client
alike; "ion tap on" and "ion tap off" rows, for each queue type) and prints
what the message tap costs: on beside off, sequential p50 and p90 and calls/s
in flight, the change from off to on, and the median of each round's change.

--sign does the same for security.signing (a key made for the run, given to
both sides in ION_SYSTEM_KEY; the boot check off): "ion sign on" and "ion sign
off" rows and what signing costs.

--secure does the same for broker.secure: on, the system exchange is a topic
exchange (ion-admin's systems) instead of a direct one; with guest on the
shared broker, so it measures the exchange type, not a user's permissions.

The floor is bench/baseline/rpc_bench.py and nameko is bench/peers/ (nameko
2.14.1 in its own virtualenv: python3 -m venv V && V/bin/pip install nameko==2.14.1);
a side that is not available is left out with a note.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peers  # noqa: E402  (scripts/peers.py)

REPO = Path(__file__).resolve().parents[1]
URL = "amqp://guest:guest@127.0.0.1:5672/"
PAYLOAD = {"data": b"x" * 1024}
WARMUP = 200


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- ion: echo service in a twistd container, client in this process ---------


@dataclass(frozen=True)
class Settings:
    """What an ion side runs with (None: as configured): broker.queue_type,
    observer.tap, security.signing, broker.secure. One source for the server's
    environment, the client's config and the flag that hands them to it."""

    qtype: str | None = None
    tap: bool | None = None
    sign: bool | None = None
    secure: bool | None = None

    def config(self) -> dict[str, dict[str, Any]]:
        config: dict[str, dict[str, Any]] = {}
        if self.qtype:
            config.setdefault("broker", {})["queue_type"] = self.qtype
        if self.tap is not None:
            config["observer"] = {"tap": self.tap}
        if self.sign is not None:  # (the boot check: a boot-time cost, not a message's)
            config["security"] = {"signing": self.sign, "join_check": 0}
        if self.secure is not None:
            config.setdefault("broker", {}).update(url=URL, secure=self.secure)
        return config

    def env(self) -> dict[str, str]:
        """The same as ION_<SECTION>__<KEY> variables (for the twistd server)."""
        return {
            f"ION_{section}__{key}".upper(): str(value).lower()
            if value in (True, False)
            else str(value)
            for section, values in self.config().items()
            for key, value in values.items()
        }

    def argv(self) -> list[str]:
        return ["--settings", json.dumps(asdict(self))]


@contextmanager
def ion_server(settings: Settings = Settings()) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """An echo service in a twistd container on its own sysname, run with
    C{settings}: (sysname, process)."""
    sysname = f"bench-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, **settings.env()}
    with tempfile.TemporaryDirectory() as tmp:
        ready = Path(tmp) / "ready"
        boot = Path(tmp) / "boot.py"
        boot.write_text("from ion.services.echo import EchoService\nawait cc.spawn(EchoService)\n")
        twistd = Path(sys.executable).parent / "twistd"
        server = subprocess.Popen(
            [
                str(twistd),
                "--pidfile=",
                "-n",
                "cc",
                "-n",
                "--broker",
                URL,
                "-s",
                sysname,
                "--container-id",
                f"{sysname}-server",
                "--ready-file",
                str(ready),
                str(boot),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():  # another OS process writes it
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the ion echo container did not start")
                time.sleep(0.02)
            yield sysname, server
        finally:
            server.send_signal(signal.SIGTERM)  # SIGINT is ignored in a background job
            server.wait(timeout=30)
            cleanup(sysname)


def ion_client_run(
    sysname: str, seq: int, calls: int, conc: int, settings: Settings = Settings()
) -> dict[str, float]:
    """Run the ion client (in its own OS process) against C{sysname}; its results."""
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--ion-client",
            sysname,
            *settings.argv(),
            "--seq",
            str(seq),
            "--calls",
            str(calls),
            "--conc",
            str(conc),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def ion_run(seq: int, calls: int, conc: int, settings: Settings) -> dict[str, float]:
    with ion_server(settings) as (sysname, server):
        before = cpu_seconds(server.pid)
        result = ion_client_run(sysname, seq, calls, conc, settings)
        after = cpu_seconds(server.pid)
    if before is not None and after is not None:
        result["server_cpu_us"] = (after - before) / (WARMUP + seq + calls) * 1e6
    return result


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) process C{pid} has used so far (Linux /proc; else None).
    On a shared machine it shows a side's own cost, which wall time mixes with others'."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cleanup(sysname: str) -> None:
    import pika

    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.queue_delete(f"{sysname}.echo")
    ch.exchange_delete(f"ion.{sysname}")
    ch.exchange_delete(f"ion.{sysname}.events")
    ch.exchange_delete(f"ion.{sysname}.containers")  # the container agents' fanout
    conn.close()


async def start_client(reactor: Any, sysname: str, settings: Settings) -> tuple[Any, Any]:
    """A client container of C{sysname} run with C{settings}, started, and the
    process in it that calls: (container, process)."""
    from ion.core.cc.container import Container
    from ion.core.config import DEFAULTS, Config
    from ion.core.messaging.amqp import AmqpBroker
    from ion.core.process.process import Process

    cc = Container(
        reactor=reactor,
        container_id=f"{sysname}-client",
        sysname=sysname,
        broker=AmqpBroker(reactor, URL, name=f"{sysname}-client"),
        config=Config(DEFAULTS).merged(settings.config()),
    )
    await cc.start()
    return cc, await cc.spawn(Process, name="client")


def ion_client(sysname: str, seq: int, calls: int, conc: int, settings: Settings) -> None:
    from twisted.internet import defer, task

    async def main(reactor: Any) -> None:
        cc, client = await start_client(reactor, sysname, settings)
        for _ in range(WARMUP):
            await client.rpc_send("echo", "echo", PAYLOAD)
        cpu0 = time.process_time()
        lat = []
        for _ in range(seq):
            t = time.perf_counter()
            await client.rpc_send("echo", "echo", PAYLOAD)
            lat.append(time.perf_counter() - t)
        left = calls

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await client.rpc_send("echo", "echo", PAYLOAD)

        t0 = time.perf_counter()
        await defer.gatherResults([defer.ensureDeferred(worker()) for _ in range(conc)])
        elapsed = time.perf_counter() - t0
        cpu = (time.process_time() - cpu0) / (seq + calls) * 1e6
        await cc.stop()
        print(
            json.dumps(
                {
                    "seq_p50_us": percentile(lat, 0.5) * 1e6,
                    "seq_p90_us": percentile(lat, 0.9) * 1e6,
                    "seq_p99_us": percentile(lat, 0.99) * 1e6,
                    "conc_calls_per_s": calls / elapsed,
                    "client_cpu_us": cpu,
                }
            )
        )

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))


# -- the raw pika floor and nameko, from the shared bench scripts --------------


def floor_run(bench: Path, seq: int, calls: int, conc: int) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            str(bench / "baseline" / "rpc_bench.py"),
            "--lib",
            "pika",
            "--seq",
            str(seq),
            "--calls",
            str(calls),
            "--conc",
            str(conc),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[len("RESULT ") :])
    return {k: r[k] for k in ("seq_p50_us", "seq_p99_us", "conc_calls_per_s")}


def nameko_run(bench_dir: Path, venv: Path, seq: int, calls: int, conc: int) -> dict[str, float]:
    with peers.nameko_service(bench_dir, venv) as bench:
        s = bench("rpc-seq", "--calls", str(seq), "--payload", "1024")
        c = bench("rpc-conc", "--calls", str(calls), "--inflight", str(conc), "--payload", "1024")
    return {
        "seq_p50_us": _first(s, "p50_us", "seq_p50_us", "p50"),
        "seq_p99_us": _first(s, "p99_us", "seq_p99_us", "p99"),
        "conc_calls_per_s": _first(c, "calls_per_s", "conc_calls_per_s", "throughput"),
    }


def _first(d: dict[str, Any], *keys: str) -> float:
    for k in keys:
        if k in d:
            return float(d[k])
    raise KeyError(f"none of {keys} in {sorted(d)}")


def ratios(m: dict[str, float], base: dict[str, float]) -> str:
    return ", ".join(
        f"{label} {m[k] / base[k]:.2f}x"
        for label, k in (
            ("p50", "seq_p50_us"),
            ("p99", "seq_p99_us"),
            ("throughput", "conc_calls_per_s"),
        )
    )


def cost_line(what: str, on: list[dict[str, float]], off: list[dict[str, float]], conc: int) -> str:
    """The cost of C{what} from the runs with it on and off (round by round): the
    medians side by side and the change off -> on; then the median of each
    round's change (on and off ran back to back, so drift between rounds cancels)."""
    keys = (("p50", "seq_p50_us"), ("p90", "seq_p90_us"), (f"{conc}-in-flight", "conc_calls_per_s"))
    m_on, m_off = ({k: statistics.median(r[k] for r in rs) for _, k in keys} for rs in (on, off))

    def pct(x: float) -> str:
        return f"{(x - 1) * 100:+.1f} %"

    lat = ", ".join(
        f"{label} {m_on[k] / 1e3:.3f} / {m_off[k] / 1e3:.3f} ms ({pct(m_on[k] / m_off[k])})"
        for label, k in keys[:2]
    )
    k = keys[2][1]
    paired = ", ".join(
        f"{label} {pct(statistics.median(a[k] / b[k] for a, b in zip(on, off, strict=True)))}"
        for label, k in keys
    )
    text = (
        f"{what} on / off: {lat}, {conc}-in-flight {m_on[k]:,.0f} / {m_off[k]:,.0f} calls/s"
        f" ({pct(m_on[k] / m_off[k])})\n  by round (median of each round's on / off): {paired}"
    )
    cpu = [c for c in ("client_cpu_us", "server_cpu_us") if all(c in r for r in on + off)]
    if cpu:  # each side's own CPU per call: what the setting costs, whatever else runs
        text += "\n  CPU per call (median): " + ", ".join(
            f"{c.split('_')[0]} {statistics.median(r[c] for r in on):.0f} / "
            f"{statistics.median(r[c] for r in off):.0f} us "
            f"(+{statistics.median(r[c] for r in on) - statistics.median(r[c] for r in off):.0f})"
            for c in cpu
        )
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seq", type=int, default=2000)
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--conc", type=int, default=32)
    ap.add_argument("--bench-dir", type=Path, default=REPO.parent / "shared" / "bench")
    ap.add_argument("--nameko-venv", type=Path, default=peers.DEFAULT_VENV)
    ap.add_argument("--no-nameko", action="store_true", help="leave nameko out")
    ap.add_argument(
        "--queue-types",
        help="comma-separated broker.queue_type values (classic,quorum): one ion row each",
    )
    ap.add_argument(
        "--tap", help="comma-separated observer.tap settings (on,off): one ion row each"
    )
    ap.add_argument(
        "--sign", help="comma-separated security.signing settings (on,off): one ion row each"
    )
    ap.add_argument(
        "--secure", help="comma-separated broker.secure settings (on,off): one ion row each"
    )
    ap.add_argument("--ion-client", help=argparse.SUPPRESS)
    ap.add_argument("--settings", default="{}", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.ion_client:
        ion_client(a.ion_client, a.seq, a.calls, a.conc, Settings(**json.loads(a.settings)))
        return
    qtypes = [t.strip() for t in a.queue_types.split(",") if t.strip()] if a.queue_types else []
    if bad := [t for t in qtypes if t not in ("auto", "classic", "quorum")]:
        raise SystemExit(f"--queue-types: {bad} not among auto, classic, quorum")
    taps = [t.strip() for t in a.tap.split(",") if t.strip()] if a.tap else []
    if bad := [t for t in taps if t not in ("on", "off")]:
        raise SystemExit(f"--tap: {bad} not among on, off")
    signs = [t.strip() for t in a.sign.split(",") if t.strip()] if a.sign else []
    if bad := [t for t in signs if t not in ("on", "off")]:
        raise SystemExit(f"--sign: {bad} not among on, off")
    secures = [t.strip() for t in a.secure.split(",") if t.strip()] if a.secure else []
    if bad := [t for t in secures if t not in ("on", "off")]:
        raise SystemExit(f"--secure: {bad} not among on, off")
    if "on" in signs and not os.environ.get("ION_SYSTEM_KEY"):
        from ion.core.security.keys import new_key_line

        os.environ["ION_SYSTEM_KEY"] = new_key_line("bench")  # both sides' (children's)
    # One ion side per (queue type, tap, signing, secure setting); None: as configured.
    variants = {
        " ".join(
            [
                "ion",
                *([q] if q else []),
                *([f"tap {t}"] if t else []),
                *([f"sign {g}"] if g else []),
                *([f"secure {c}"] if c else []),
            ]
        ): (q, t, g, c)
        for q in qtypes or [None]
        for t in taps or [None]
        for g in signs or [None]
        for c in secures or [None]
    }
    ions = list(variants)

    def on(value: str | None) -> bool | None:
        return None if value is None else value == "on"

    sides: dict[str, Any] = {
        name: partial(ion_run, a.seq, a.calls, a.conc, Settings(q, on(t), on(g), on(c)))
        for name, (q, t, g, c) in variants.items()
    }
    if (a.bench_dir / "baseline" / "rpc_bench.py").exists():
        sides["floor"] = lambda: floor_run(a.bench_dir, a.seq, a.calls, a.conc)
    else:
        print(f"(no floor: {a.bench_dir}/baseline/rpc_bench.py not found)")
    if a.no_nameko:
        pass
    elif peers.available(a.bench_dir, a.nameko_venv):
        sides["nameko"] = lambda: nameko_run(a.bench_dir, a.nameko_venv, a.seq, a.calls, a.conc)
    else:
        print(f"(no nameko: needs {a.nameko_venv}/bin/nameko and {a.bench_dir}/peers)")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    for i in range(a.runs):  # every other round backwards: no side always runs first
        for name, run in list(sides.items())[:: 1 if i % 2 == 0 else -1]:
            runs[name].append(run())
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    print(
        f"RPC over RabbitMQ, 1 KiB echo; {a.seq} sequential, {a.calls} with {a.conc} in flight;"
        f" median of {a.runs}"
    )
    width = max(14, *(len(n) + 1 for n in med))
    print(f"{'':{width}}{'seq p50 us':>12}{'seq p99 us':>12}{f'{a.conc} in flight/s':>18}")
    for name, m in med.items():
        print(
            f"{name:{width}}{m['seq_p50_us']:>12,.0f}{m['seq_p99_us']:>12,.0f}"
            f"{m['conc_calls_per_s']:>18,.0f}"
        )
    if "floor" in med:
        for name in ions:
            print(f"{name}/floor: " + ratios(med[name], med["floor"]), end="")
            print(" (targets p50 <= 1.3, throughput >= 0.7)" if name == "ion" else "")
    named = {v: n for n, v in variants.items()}
    first_q = qtypes[0] if qtypes else None
    for name, (q, t, g, c) in variants.items():  # each queue type beside the first, same rest
        if q != first_q:
            base = named[first_q, t, g, c]
            print(f"{name}/{base}: " + ratios(med[name], med[base]))
    costs = (("tap", taps, 1), ("sign", signs, 2), ("secure (topic exchange)", secures, 3))
    for what, settings, at in costs:
        if "on" not in settings or "off" not in settings:
            continue
        for v in variants.values():  # each pair that differs in this setting alone
            if v[at] != "on":
                continue
            off = named[tuple("off" if i == at else x for i, x in enumerate(v))]
            line = cost_line(what, runs[named[v]], runs[off], a.conc)
            labels = (
                v[0],
                v[1] and f"tap {v[1]}",
                v[2] and f"sign {v[2]}",
                v[3] and f"secure {v[3]}",
            )
            rest = " ".join(x for i, x in enumerate(labels) if i != at and x)
            print((f"{rest}: " if rest else "") + line)
    print("RESULT " + json.dumps(med))


if __name__ == "__main__":
    main()
