#!/usr/bin/env python
"""Micro-benchmark: what signing adds to one message, in microseconds.

Encodes and decodes a request with 1 KiB of content (the rpc benchmark's
payload) with signing off and on, and times the signature alone (sign, and
verify with the replay check). Median of --rounds rounds of --n messages each,
in CPU time of this process (time.process_time: on a machine shared with other
work, wall time measures the others too).

    scripts/bench_signing.py [--n 20000] [--rounds 5] [--size 1024]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from ion.core.messaging import message as m  # noqa: E402
from ion.core.security.keys import Key, KeyRing  # noqa: E402
from ion.core.security.replay import ReplayCache
from ion.core.security.signing import Signer  # noqa: E402


def headers(n: int) -> dict:
    return {
        m.SENDER: "client.1@bench-client",
        m.SENDER_NAME: "client",
        m.RECEIVER: "echo",
        m.REPLY_TO: "client.1@bench-client.reply",
        m.CONV_ID: f"client.1@bench-client#{n}",
        m.CONV_SEQ: 1,
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "request",
        m.OP: "echo",
        m.TS: int(time.time() * 1000),
        m.EXPIRY: int(time.time() * 1000) + 15000,
    }


def per_message_us(run: Callable[[int], object], n: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.process_time()
        for i in range(n):
            run(i)
        times.append((time.process_time() - t) / n * 1e6)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=1024)
    a = ap.parse_args()
    content = {"data": b"x" * a.size}
    signer = Signer(KeyRing(Key("bench", b"k" * 32)), time.time, replay_size=10**7)
    bodies_off = [m.encode(headers(i), content) for i in range(a.n)]
    bodies_on = [m.encode(headers(i), content, signer) for i in range(a.n)]
    consumer = iter(range(10**9))  # a fresh consumer per round: no replays between rounds

    def verify_round() -> Callable[[int], object]:
        verify = signer.verifier(str(next(consumer)))
        return lambda i: verify(bodies_on[i])

    def decode_on_round() -> Callable[[int], object]:
        verify = signer.verifier(str(next(consumer)))  # (as a process keeps it)
        return lambda i: m.decode(bodies_on[i], None, verify)

    rows = [
        (
            "seal (pack, HMAC-SHA256 of the payload)",
            lambda i: signer.seal(headers(i), content),
        ),
        ("headers() alone (part of seal)", lambda i: headers(i)),
        ("encode, signing off", lambda i: m.encode(headers(i), content)),
        ("encode, signing on", lambda i: m.encode(headers(i), content, signer)),
        ("decode, signing off", lambda i: m.decode(bodies_off[i])),
    ]
    print(f"{a.size} B content, {a.n} messages x {a.rounds} rounds, median CPU us per message")
    for label, run in rows:
        print(f"  {label:50} {per_message_us(run, a.n, a.rounds):7.2f}")
    for label, make in (("verify (+ unpack, window, replay cache)", verify_round),
                        ("decode + verify, signing on", decode_on_round)):  # fmt: skip
        times = [per_message_us(make(), a.n, 1) for _ in range(a.rounds)]
        print(f"  {label:50} {statistics.median(times):7.2f}")
    print(f"  {'replay check, steady state (60 s of 1,000/s)':50} {steady_replay_us():7.2f}")


def steady_replay_us() -> float:
    """One replay check in a steady state: 1,000 new messages a second, each
    forgotten after 60 s, so the oldest go as fast as new ones come (the case a
    plain dict, scanning the holes its oldest left, made 40 times slower)."""
    cache = ReplayCache(100_000)
    n = 0
    for second in range(180):
        now = second * 1000
        for _ in range(1000):
            cache.check(n, now, now + 60_000, now, False)
            n += 1
    t = time.process_time()
    for i in range(20_000):
        now = 180_000 + i
        cache.check(n + i, now, now + 60_000, now, False)
    return (time.process_time() - t) / 20_000 * 1e6


if __name__ == "__main__":
    main()
