"""The malformed messages scripts/fuzz_messages.py publishes: each case maker
takes a random generator and the L{Targets} (routing keys) and returns
C{(routing key, body bytes)}. L{cases} gives the makers to draw from, with
their weights; the signed cases only when signing is on."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

_pack = msgpack.Packer(use_bin_type=True).pack

# Header names (ion.core.messaging.message), written out: a fuzzer builds its
# own frames and should not lean on the code it tests.
SENDER, RECEIVER, REPLY_TO, CONV_ID, CONV_SEQ = (
    "sender", "receiver", "reply-to", "conv-id", "conv-seq",
)  # fmt: skip
PROTOCOL, PERFORMATIVE, OP, USER_ID, EXPIRY, ENCODING = (
    "protocol", "performative", "op", "user-id", "expiry", "encoding",
)  # fmt: skip


@dataclass
class Targets:
    """Where malformed messages go: routing keys on C{ion.<sysname>}."""

    service: str  # the hello service's key
    agent: str  # the agent's key (cc.<cid>)
    agent_pid: str
    agent_reply: str  # the agent's reply queue key

    def all(self) -> list[str]:
        return [self.service, self.agent, self.agent_pid, self.agent_reply]


def _junk(rng: random.Random, depth: int = 0) -> Any:
    """A random msgpack-able value of any type."""
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return rng.randrange(-(2**63), 2**64)
    if kind == 1:
        return rng.random() * 10 ** rng.randrange(-5, 300)
    if kind == 2:
        return "".join(chr(rng.choice([rng.randrange(32), rng.randrange(32, 0x2FFF)]))
                       for _ in range(rng.randrange(40)))  # fmt: skip
    if kind == 3:
        return rng.randbytes(rng.randrange(40))
    if kind == 4:
        return rng.choice([None, True, False])
    if kind == 5:
        return rng.choice(["rpc", "request", "generic", "signal", "cc", "request", "inform_result"])
    if kind == 6:
        return [_junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return {_junk(rng, 3): _junk(rng, depth + 1) for _ in range(rng.randrange(4))}
    return {"\u202e\x1b[2J": "\n2026-01-01 FAKE LOG LINE"}


def _good_headers(rng: random.Random, t: Targets, to: str) -> dict[str, Any]:
    """Headers of a well-formed request to C{to}, as a spoofer would write them."""
    n = rng.randrange(10**9)
    return {
        SENDER: f"mallory.{n % 97}@fuzz",
        RECEIVER: to,
        REPLY_TO: rng.choice([t.agent_reply, t.agent, f"nobody.{n}.reply", t.service]),
        CONV_ID: f"mallory.{n % 97}@fuzz#{n}",
        CONV_SEQ: 1,
        PROTOCOL: "rpc",
        PERFORMATIVE: "request",
        OP: "hello",
    }


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def case_random_bytes(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    return rng.choice(t.all()), rng.randbytes(rng.randrange(0, 600))


def case_truncated(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    body = _pack([_good_headers(rng, t, to), {"k": "v" * rng.randrange(100)}])
    return to, body[: rng.randrange(1, len(body))]


def case_wrong_shape(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    shapes = [
        lambda: _junk(rng),
        lambda: [],
        lambda: [_junk(rng)],
        lambda: [_junk(rng), _junk(rng), _junk(rng)],
        lambda: [[_junk(rng)], "content"],
        lambda: {"headers": {}, "content": 1},
        lambda: ["headers", {}],
    ]
    return rng.choice(t.all()), _pack(rng.choice(shapes)())


def case_wrong_types(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    headers = _good_headers(rng, t, to)
    for name in rng.sample(sorted(headers) + [CONV_SEQ, EXPIRY, ENCODING, USER_ID], 3):
        headers[name] = _junk(rng)
    if rng.random() < 0.3:
        headers[ENCODING] = rng.choice(["ion-object:", "ion-object:99999", "ion-object:x", "gzip"])
    if rng.random() < 0.2:
        headers[PERFORMATIVE] = rng.choice(["inform_result", "failure", "agree", "refuse"])
    return to, _pack([headers, _junk(rng)])


def case_huge_headers(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    headers = _good_headers(rng, t, to)
    if rng.random() < 0.5:
        headers[rng.choice([SENDER, OP, CONV_ID, "x-big"])] = "A\n" * rng.randrange(10_000, 200_000)
    else:
        headers.update({f"h{i}": i for i in range(rng.randrange(1_000, 20_000))})
    return to, _pack([headers, None])


def case_deep_headers(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    to = rng.choice(t.all())
    headers = _good_headers(rng, t, to)
    headers[rng.choice([SENDER, OP, "x-deep", CONV_SEQ])] = _deep(rng.randrange(50, 2_000))
    try:
        return to, _pack([headers, None])
    except ValueError:  # deeper than the packer goes: as raw nesting bytes
        return to, b"\x92\x81" + b"\x91" * rng.randrange(1_000, 100_000)


def case_control_text(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """A log-injection attempt: forged lines and terminal escapes in every header."""
    to = rng.choice(t.all())
    forged = "x\n2026-01-01 00:00:00 [ion] CRITICAL: FAKE LOG LINE\r\x1b[2J\x1b]0;t\x07\u202e\x9b"
    headers = {SENDER: forged, RECEIVER: forged, CONV_ID: forged, PROTOCOL: forged,
               PERFORMATIVE: forged, OP: forged}  # fmt: skip
    if rng.random() < 0.5:
        headers[PROTOCOL], headers[PERFORMATIVE] = "rpc", "inform_result"
    return to, _pack([headers, forged])


def case_spoofed_reply_to(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """Requests the service answers with an error, to someone else's reply queue."""
    headers = _good_headers(rng, t, t.service)
    headers[REPLY_TO] = rng.choice([t.agent_reply, t.agent, t.agent_pid])
    headers[OP] = rng.choice(["hello", "no_such_op", "__init__", "op_hello"])
    return t.service, _pack([headers, rng.choice([1, None, [], {"a": 1}])])


def case_stray_reply(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """Replies and signals for conversations nobody holds."""
    to = rng.choice([t.agent_reply, t.agent_pid, t.agent])
    headers = _good_headers(rng, t, to)
    headers[PERFORMATIVE] = rng.choice(["inform_result", "failure", "agree", "refuse", "inform"])
    headers[PROTOCOL] = rng.choice(["rpc", "request", "signal", "generic"])
    headers["status"] = rng.choice(["OK", "ERROR", 7])
    headers.pop(REPLY_TO)
    return to, _pack([headers, _junk(rng)])


def case_badly_signed(rng: random.Random, t: Targets) -> tuple[str, bytes]:
    """A well-formed request with no signature, or a made-up one (signing on)."""
    headers = _good_headers(rng, t, rng.choice([t.service, t.agent]))
    headers[USER_ID] = rng.choice(["admin", "root", "cc.admin"])
    headers["ts"] = int(time.time() * 1000)
    if rng.random() < 0.3:  # unsigned
        return headers[RECEIVER], _pack([headers, "hi"])
    # A signed body, 0xC1 len(kid) kid sig payload, with a made-up signature or
    # kid, a cut prefix, or a payload of the wrong shape.
    kid = rng.choice([b"fuzz", b"k1", b"", rng.randbytes(rng.randrange(1, 80))])
    payload = rng.choice([_pack([headers, "hi"]), rng.randbytes(40), b"", _pack([1, 2])])
    sig = rng.choice([rng.randbytes(32), rng.randbytes(rng.randrange(0, 32))])
    length = rng.choice([len(kid), len(kid), rng.randrange(256)])
    return headers[RECEIVER], bytes((0xC1, length)) + kid + sig + payload


CASES: list[Callable[[random.Random, Targets], tuple[str, bytes]]] = [
    case_random_bytes, case_truncated, case_wrong_shape, case_wrong_types, case_huge_headers,
    case_deep_headers, case_control_text, case_spoofed_reply_to, case_stray_reply,
]  # fmt: skip
# Huge headers are the costly ones: drawn least often (weight 1 against 2 to 20).
WEIGHTS = [10, 10, 10, 20, 1, 2, 5, 10, 10]


def cases(signing: bool) -> tuple[list[Callable[..., tuple[str, bytes]]], list[int]]:
    """The case makers to draw from, and their weights."""
    if signing:
        return [*CASES, case_badly_signed], [*WEIGHTS, 15]
    return list(CASES), list(WEIGHTS)
