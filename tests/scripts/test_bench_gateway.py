"""scripts/bench_gateway.py: its workload and its receiver, without the systems.

The workload must be what the table says (each event matching exactly half of
the subscriptions, by ion's own JSONPath filters); the receiver must record
each arrival and, stopped, refuse connections, then take them again on the
same port."""

from __future__ import annotations

import http.client
import importlib.util
import json
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

from ion.gateway.jsonpath import compile_filter

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bench = load("bench_gateway")  # (it puts scripts/ on the path for its own modules)
receiver_mod = load("bench_gateway_receiver")


def test_each_event_matches_exactly_half_of_the_subscriptions_by_ion_filters() -> None:
    events, expected = bench.make_events(40, 10, "run")
    filters = {f"s{k}": compile_filter(bench.jsonpath(f"s{k}")) for k in range(10)}
    matched = {(s, e["id"]) for e in events for s, f in filters.items() if f.matches(e)}
    assert matched == expected
    assert Counter(e for _, e in matched) == {e["id"]: 5 for e in events}
    assert Counter(s for s, _ in matched) == {s: 20 for s in filters}


def test_reordered_counts_only_an_event_accepted_before_another_was_posted() -> None:
    sent = {"a": 0.0, "b": 1.0, "c": 1.05}
    accepted = {"a": 0.5, "b": 1.1, "c": 1.2}  # b and c were in flight together
    assert bench.reordered(["a", "b", "c"], sent, accepted) == 0
    assert bench.reordered(["a", "c", "b"], sent, accepted) == 0  # no order between b, c
    assert bench.reordered(["b", "a", "c"], sent, accepted) == 1  # a was in before b left


def post(port: int, path: str, body: dict[str, str]) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        return conn.getresponse().status
    finally:
        conn.close()


def test_receiver_records_arrivals_and_refuses_while_stopped() -> None:
    receiver = receiver_mod.Receiver()
    receiver.start()
    try:
        port = receiver.port
        assert post(port, "/hook/s1", {"id": "e1"}) == 200
        assert post(port, "/hook/s1", {"id": "e1"}) == 200
        receiver.stop()
        with pytest.raises(ConnectionRefusedError):
            post(port, "/hook/s1", {"id": "e2"})
        receiver.start()
        assert receiver.port == port
        assert post(port, "/hook/s2", {"id": "e2"}) == 200
        assert {k: len(v) for k, v in receiver.arrivals.items()} == {
            ("s1", "e1"): 2,
            ("s2", "e2"): 1,
        }
        assert receiver.distinct() == 2 and receiver.count == 3
    finally:
        receiver.stop()
