#!/usr/bin/env python
"""Benchmark: what the message tap's hooks cost per message, in microseconds.

MessageTap.sent and .received (a message from another container) on an rpc
request's headers, with the ring full (observer.tap_size rows, 2000 by
default), so each row also evicts the oldest; and the tap's work for one rpc
call seen from one container (its request sent and its reply taken), to set
beside bench_amqp.py --tap on,off.

    scripts/bench_tap.py [--size 2000] [--number 200000] [--repeat 5]

Each figure is the best of --repeat timeit runs of --number calls, with the
garbage collector on.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ion.core.messaging import message as m  # noqa: E402
from ion.core.observe.tap import MessageTap  # noqa: E402

REQUEST = {
    m.SENDER: "bench.client-1@bench-client",
    m.SENDER_NAME: "client",
    m.RECEIVER: "echo",
    m.REPLY_TO: "bench.client-1.reply",
    m.CONV_ID: "bench.client-1#17",
    m.CONV_SEQ: 1,
    m.PROTOCOL: "rpc",
    m.PERFORMATIVE: "request",
    m.OP: "echo",
    m.TS: int(time.time() * 1000),
}
REPLY = {
    **REQUEST,
    m.SENDER: "bench.echo-2@bench-server",
    m.SENDER_NAME: "echo",
    m.RECEIVER: "bench.client-1.reply",
    m.CONV_SEQ: 2,
    m.PERFORMATIVE: "inform_result",
    m.STATUS: "OK",
}
CONTENT = {"data": b"x" * 1024}
SIZE = 1200


def per_call_us(stmt: str, tap: MessageTap, number: int, repeat: int) -> float:
    names = {
        "gc": gc,
        "tap": tap,
        "REQUEST": REQUEST,
        "REPLY": REPLY,
        "CONTENT": CONTENT,
        "SIZE": SIZE,
    }
    # With the garbage collector on (timeit turns it off), as in a container.
    runs = timeit.repeat(stmt, "gc.enable()", number=number, repeat=repeat, globals=names)
    best = min(runs)
    return best / number * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000, help="rows the ring keeps")
    ap.add_argument("--number", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=5)
    a = ap.parse_args()
    tap = MessageTap("bench-client", size=a.size)
    for _ in range(a.size):  # a full ring: every row from now on evicts one
        tap.sent(REQUEST, SIZE, CONTENT)
    cases = {
        "sent(request)": "tap.sent(REQUEST, SIZE, CONTENT)",
        "received(reply, other container)": "tap.received(REPLY, SIZE, 'p', 'client', CONTENT)",
        "one rpc call, client side": (
            "tap.sent(REQUEST, SIZE, CONTENT); tap.received(REPLY, SIZE, 'p', 'client', CONTENT)"
        ),
    }
    print(f"MessageTap, ring of {a.size} rows full; best of {a.repeat} x {a.number:,} calls")
    for label, stmt in cases.items():
        print(f"{label:36}{per_call_us(stmt, tap, a.number, a.repeat):>8.2f} us")


if __name__ == "__main__":
    main()
