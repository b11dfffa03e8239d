#!/usr/bin/env python
"""Benchmark: CloudEvents in, webhooks out; ion's gateway beside Pacifica Notifications.

The same workload for each system, in one run: --subs subscriptions (a JSONPath
filter each, all aimed at one local receiver), then --events CloudEvents posted
to /receive by --clients concurrent clients. Each event matches exactly half of
the subscriptions: event i carries the tags s(i), ..., s(i+subs/2-1) (mod subs)
and subscription k's filter is C{$.data.tags.sk}, which finds something exactly
when the tag is there (Pacifica's rule). The receiver records when each
(subscription, event id) arrives.

Per system: accepted events/s (the posting's own time), deliveries/s (distinct
deliveries over the time from the first post to the last arrival), end-to-end
latency p50/p99 (from the event's post to its delivery's arrival), and what
went wrong: lost (expected, never arrived), duplicates (arrived again),
reordered (arrived after an event of the same subscription that was posted
only once this one had been accepted: concurrent posts have no order) and subs
failed (subscriptions disabled or carrying an error at the end). With --runs N
the runs alternate (each round in the other order) and the table shows medians.

    scripts/bench_gateway.py [--events 1000] [--subs 10] [--clients 4] [--runs 1]
        [--only pacifica|ion] [--target-down S] [--keep] [--pacifica-venv DIR]

--target-down S stops the receiver for S seconds once half of the expected
deliveries have arrived (its listening socket and every open connection
closed), then starts it again on the same port, and shows what each system
lost. --keep keeps the scratch directory (configs and logs) and prints it.

Pacifica (pacifica-notifications 0.5.2, in a virtualenv of its own made on
first use, see bench_gateway_pacifica.py): its CherryPy server, a celery worker
of concurrency 2 on RabbitMQ, PostgreSQL, a policy stub answering 200. ion: a
twistd container running res/deploy/gateway.rel on RabbitMQ, its store in
PostgreSQL, subscriptions made through its Pacifica-compatible /eventmatch with
a bearer token. Each system gets a schema of its own in the database C{test},
and its own broker names, all removed afterwards.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_gateway_pacifica as pac  # noqa: E402  (scripts/bench_gateway_pacifica.py)
from bench_gateway_receiver import PolicyStub, Receiver  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
BROKER = "amqp://127.0.0.1:5672/"  # (ion's: its login from the environment, not from ps)
TOKEN = "bench-token"
PADDING = "x" * 200  # each event's data carries this much besides its tags
TIMEOUT = 600  # the longest a run waits for its deliveries


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the workload --------------------------------------------------------------


def make_events(n: int, subs: int, run: str) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    """C{n} CloudEvents, each matching exactly half of C{subs} subscriptions, and
    the (subscription, event id) pairs that must arrive."""
    half = subs // 2
    events, expected = [], set()
    for i in range(n):
        tags = [f"s{(i + j) % subs}" for j in range(half)]
        event = {
            "specversion": "1.0",
            "id": f"{run}-{i:06d}",
            "source": f"/bench/gateway/{run}",
            "type": "org.example.bench.created",
            "datacontenttype": "application/json",
            "data": {"seq": i, "tags": {t: True for t in tags}, "padding": PADDING},
        }
        events.append(event)
        expected.update((t, event["id"]) for t in tags)
    return events, expected


def jsonpath(sub: str) -> str:
    return f"$.data.tags.{sub}"


def subscribe(url: str, headers: dict[str, str], name: str, target: str) -> None:
    body = json.dumps({"name": name, "jsonpath": jsonpath(name), "target_url": target})
    req = urllib.request.Request(
        url,
        data=body.encode(),
        method="POST",
        headers={**headers, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    created = answer[0] if isinstance(answer, list) else answer
    if not created.get("uuid"):
        raise SystemExit(f"subscribing {name} at {url}: no uuid in {answer}")


def failed_subscriptions(url: str, headers: dict[str, str]) -> int:
    """How many of the user's subscriptions are disabled or carry an error now."""
    req = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            answer = json.loads(resp.read())
    except OSError as e:
        print(f"  (listing the subscriptions: {e})", flush=True)
        return -1
    if isinstance(answer, dict):  # (a wrapper around the list)
        answer = next((v for v in answer.values() if isinstance(v, list)), [])
    return sum(1 for sub in answer if sub.get("disabled") or sub.get("error"))


def post_events(
    url: str, headers: dict[str, str], events: list[dict[str, Any]], clients: int
) -> tuple[float, dict[str, float], dict[str, float], list[str]]:
    """Post C{events} from C{clients} threads (one kept-alive connection each):
    (seconds taken, when each event id was posted, when it was accepted, errors)."""
    parts = urlsplit(url)
    sent: dict[str, float] = {}
    accepted: dict[str, float] = {}
    errors: list[str] = []

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        hdrs = {**headers, "Content-Type": "application/cloudevents+json"}
        for event in events[k::clients]:
            body = json.dumps(event).encode()
            sent[event["id"]] = time.monotonic()
            try:
                conn.request("POST", parts.path, body, hdrs)
                resp = conn.getresponse()
                text = resp.read()
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"{event['id']}: {e!r}")
                conn.close()
                continue
            if resp.status >= 300:
                errors.append(f"{event['id']}: {resp.status} {text[:200]!r}")
            else:
                accepted[event["id"]] = time.monotonic()
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - t0, sent, accepted, errors


def wait_deliveries(
    receiver: Receiver, expected: int, settle: float, down: float | None
) -> tuple[float, float]:
    """Wait until C{expected} distinct deliveries arrived, or none came for
    C{settle} s (counted from the receiver's return after a down time); with
    C{down}, stop the receiver for that long once half have arrived. (When the
    receiver went down, and came back.)"""
    start = time.monotonic()
    went_down = came_back = 0.0
    while True:
        now = time.monotonic()
        got = receiver.distinct()
        if got >= expected or now - start > TIMEOUT:
            return went_down, came_back
        if down is not None and not went_down and got >= expected / 2:
            receiver.stop()
            went_down = time.monotonic()
            print(f"  receiver down at {got} deliveries, for {down:g} s", flush=True)
        if went_down and not came_back and now - went_down >= down:  # type: ignore[operator]
            receiver.start()
            came_back = time.monotonic()
        quiet_since = max(receiver.last, came_back or start)
        if (not went_down or came_back) and now - quiet_since > settle:
            return went_down, came_back
        time.sleep(0.05)


def measure(
    receive: tuple[str, dict[str, str]],
    eventmatch: tuple[str, dict[str, str]],
    receiver: Receiver,
    a: argparse.Namespace,
) -> dict[str, float]:
    """One run against a started system (given its /receive and /eventmatch)."""
    run = uuid.uuid4().hex[:8]
    events, expected = make_events(a.events, a.subs, run)
    for k in range(a.subs):
        subscribe(*eventmatch, f"s{k}", receiver.url(f"s{k}"))
    elapsed, sent, accepted, errors = post_events(*receive, events, a.clients)
    if errors:
        print(f"  {len(errors)} posts failed, first: {errors[0]}", flush=True)
    wait_deliveries(receiver, len(expected), a.settle, a.target_down)
    failed = failed_subscriptions(*eventmatch)
    with receiver.lock:
        arrivals = {k: v[:] for k, v in receiver.arrivals.items()}
        order = {k: v[:] for k, v in receiver.order.items()}
    got = [k for k in arrivals if k in expected]
    latency = [arrivals[k][0] - sent[k[1]] for k in got if k[1] in sent]
    first_post = min(sent.values())
    last = max((arrivals[k][0] for k in got), default=first_post)
    return {
        "accepted_per_s": (len(events) - len(errors)) / elapsed,
        "post_errors": len(errors),
        "deliveries": len(got),
        "deliveries_per_s": len(got) / (last - first_post) if got else 0.0,
        "p50_ms": percentile(latency, 0.5) * 1e3,
        "p99_ms": percentile(latency, 0.99) * 1e3,
        "lost": len(expected) - len(got),
        "duplicates": sum(len(v) - 1 for v in arrivals.values()),
        "unexpected": sum(1 for k in arrivals if k not in expected),
        "reordered": sum(reordered(ids, sent, accepted) for ids in order.values()),
        "subs_failed": failed,
    }


def reordered(ids: list[str], sent: dict[str, float], accepted: dict[str, float]) -> int:
    """How many of C{ids} (one subscription's event ids, in arrival order) arrived
    after an event that was posted only once they had been accepted."""
    count, latest_post = 0, float("-inf")
    for i in ids:
        if accepted.get(i, float("inf")) < latest_post:
            count += 1
        latest_post = max(latest_post, sent.get(i, float("-inf")))
    return count


# -- the systems ------------------------------------------------------------------


def pacifica_run(a: argparse.Namespace, work: Path) -> dict[str, float]:
    with ExitStack() as stack:
        policy, receiver = PolicyStub(), Receiver()
        for server in (policy, receiver):
            server.start()
            stack.callback(server.stop)
        system = stack.enter_context(
            pac.pacifica(a.pacifica_venv, AMQP, policy.url, free_port(), work)
        )
        return measure(system.receive(), system.eventmatch(), receiver, a)


@contextmanager
def ion_gateway(work: Path) -> Iterator[str]:
    """A twistd container running res/deploy/gateway.rel on its own sysname, its
    store in a schema of its own; its base URL."""
    sysname = f"gwbench-{uuid.uuid4().hex[:8]}"
    port = free_port()
    with pac.pg_schema("gwbench") as schema:
        config = {
            "gateway": {
                "http": f"127.0.0.1:{port}",
                "database": pac.pg_url(schema),
                "data_dir": str(work / "ion-data"),
                "auth": {"tokens": {TOKEN: "bench"}},
                "allow_targets": ["127.0.0.0/8"],
            }
        }
        (work / "ion.yml").write_text(json.dumps(config))  # (JSON is YAML)
        ready = work / "ion-ready"
        log = work / "ion-gateway.log"
        twistd = Path(sys.executable).parent / "twistd"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [str(twistd), "--pidfile=", "-n", "cc", "-n", "--broker", BROKER, "-s", sysname,
                 "--container-id", f"{sysname}-gw", "--config", str(work / "ion.yml"),
                 "--ready-file", str(ready), "res/deploy/gateway.rel"],
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "ION_BROKER__USERNAME": "guest", "ION_BROKER__PASSWORD": "guest"},
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while not (ready.exists() and _answers(f"{base}/eventmatch")):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the ion gateway did not start; see {log}")
                time.sleep(0.1)
            yield base
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
            broker_cleanup(sysname)


def _answers(url: str) -> bool:
    return pac._answers(url)


def broker_cleanup(sysname: str) -> None:
    """Delete the queues and exchanges named after C{sysname} (listed by
    rabbitmqctl where it can, else the system's known exchanges)."""
    import pika

    names = {
        "queues": set(),
        "exchanges": {f"ion.{sysname}{x}" for x in ("", ".events", ".containers")},
    }
    if shutil.which("rabbitmqctl"):
        for what in ("queues", "exchanges"):
            out = subprocess.run(
                ["rabbitmqctl", "-q", f"list_{what}", "name"],
                capture_output=True, text=True, timeout=30, check=False,
            ).stdout  # fmt: skip
            names[what].update(n for n in out.split() if sysname in n)
    conn = pika.BlockingConnection(pika.URLParameters(AMQP))
    ch = conn.channel()
    for q in names["queues"]:
        ch.queue_delete(q)
    for x in names["exchanges"]:
        ch.exchange_delete(x)
    conn.close()


def ion_run(a: argparse.Namespace, work: Path) -> dict[str, float]:
    with ExitStack() as stack:
        receiver = Receiver()
        receiver.start()
        stack.callback(receiver.stop)
        base = stack.enter_context(ion_gateway(work))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        return measure((f"{base}/receive", auth), (f"{base}/eventmatch", auth), receiver, a)


# -- the table -------------------------------------------------------------------

COLUMNS = (
    ("accepted ev/s", "accepted_per_s", ",.0f"),
    ("deliveries/s", "deliveries_per_s", ",.0f"),
    ("e2e p50 ms", "p50_ms", ",.0f"),
    ("e2e p99 ms", "p99_ms", ",.0f"),
    ("lost", "lost", ",.0f"),
    ("duplicates", "duplicates", ",.0f"),
    ("reordered", "reordered", ",.0f"),
    ("subs failed", "subs_failed", ",.0f"),
)


def report(med: dict[str, dict[str, float]], a: argparse.Namespace, expected: int) -> None:
    down = f"; receiver down {a.target_down:g} s at half the deliveries" if a.target_down else ""
    print(
        f"CloudEvents in, webhooks out: {a.events} events, {a.subs} subscriptions, each event"
        f" matching {a.subs // 2} ({expected} deliveries); {a.clients} posting clients;"
        f" median of {a.runs}{down}"
    )
    print(f"{'':10}" + "".join(f"{label:>14}" for label, _, _ in COLUMNS))
    for name, m in med.items():
        print(f"{name:10}" + "".join(f"{m[k]:>14{fmt}}" for _, k, fmt in COLUMNS))
    if "ion" in med and "pacifica" in med:
        ion, pacifica = med["ion"], med["pacifica"]
        parts = [
            f"{label} {ion[k] / pacifica[k]:.1f}x"
            for label, k in (("accepted", "accepted_per_s"), ("deliveries", "deliveries_per_s"))
            if pacifica[k]
        ]
        print("ion/pacifica throughput: " + ", ".join(parts) + " (target: deliveries >= 5x)")
    print("RESULT " + json.dumps(med))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--subs", type=int, default=10, help="an even number >= 2")
    ap.add_argument("--clients", type=int, default=4, help="concurrent posting clients")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--only", choices=("pacifica", "ion"))
    ap.add_argument("--target-down", type=float, metavar="S", help="receiver down S s mid-run")
    ap.add_argument("--settle", type=float, help="s without a delivery that ends a run"
                    " (default 10, 40 with --target-down: ion's backoff reaches 30 s)")  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir (configs, logs)")
    ap.add_argument("--pacifica-venv", type=Path, default=pac.DEFAULT_VENV)
    a = ap.parse_args()
    if a.subs < 2 or a.subs % 2:
        raise SystemExit("--subs: an even number >= 2, so that exactly half match")
    if a.settle is None:
        a.settle = 40.0 if a.target_down else 10.0
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    systems: dict[str, Callable[[argparse.Namespace, Path], dict[str, float]]] = {
        "pacifica": pacifica_run,
        "ion": ion_run,
    }
    if a.only:
        systems = {a.only: systems[a.only]}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in systems}
    try:
        for i in range(a.runs):  # every other round backwards: no system always first
            for name, run in list(systems.items())[:: 1 if i % 2 == 0 else -1]:
                print(f"run {i + 1}: {name}", flush=True)
                (work / name).mkdir(exist_ok=True)
                runs[name].append(run(a, work / name))
                print("  " + json.dumps(runs[name][-1]), flush=True)
    finally:
        if a.keep:
            print(f"(kept {work})")
        else:
            shutil.rmtree(work, ignore_errors=True)
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    report(med, a, a.events * (a.subs // 2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
