"""Signed messages: HMAC-SHA256 over the message's bytes as they travel.

A signed body is C{0xC1, len(kid), kid, sig, payload}: C{payload} the message
as an unsigned one travels (the msgpack array C{[headers, content]}), C{sig} the
HMAC-SHA256, under key C{kid}, of a domain tag, the key id (length-prefixed)
and the payload. msgpack is length-prefixed throughout, so every header is
covered (the set the design names, L{SIGNED}, among them: none can be added,
dropped or changed), and so is every content byte. Byte 0xC1 is one msgpack
never uses, so no unsigned body starts with it. Nothing is re-serialized to be
checked: the receiver verifies the bytes it got, then unpacks them once.

A received message is taken when its key id is in the ring, its signature
matches (C{hmac.compare_digest}), its signed C{kid} header names the same key,
its C{ts} is within C{security.max_skew} seconds of this container's clock,
and its signature has not been taken by the same consumer before
(L{ReplayCache}; an rpc answer is not recorded: its call takes one answer,
and drops any other as late), unless this is a redelivery: the broker's own flag, or the
copy a container sends round to count a classic queue's redeliveries (see
L{ion.core.process.poison}), whose transport header carries that count and a
voucher, an HMAC of the count and the signature under the system's key
(L{Signer.voucher}): a publisher without the key cannot pass a replay off as
such a copy. The C{nonce} header, a number each signer counts up, makes
each signature unique (signals and events of one sender share the rest).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, NoReturn

import msgpack

from ion.core.config import Config
from ion.core.exception import ConfigurationError, SignatureError
from ion.core.messaging import message as m
from ion.core.security.keys import KeyRing, load_ring
from ion.core.security.replay import ReplayCache

#: The headers the design names as signed (every header is covered: these are
#: those a signer sets or ion reads).
SIGNED = (
    m.SENDER, m.RECEIVER, m.REPLY_TO, m.CONV_ID, m.CONV_SEQ, m.PROTOCOL, m.PERFORMATIVE,
    m.OP, m.STATUS, m.USER_ID, m.EXPIRY, m.TS, m.ENCODING, m.KID, m.NONCE,
    m.SENDER_EPOCH, m.RECEIVER_EPOCH,
)  # fmt: skip
_DOMAIN = b"ion-sig-3\0"
_BLOCK = 64  # SHA-256's block size
_pack = msgpack.Packer(use_bin_type=True).pack
_unpackb = msgpack.unpackb
_TS, _KID, _NONCE = m.TS, m.KID, m.NONCE
_PROTOCOL, _PERFORMATIVE = m.PROTOCOL, m.PERFORMATIVE
_ANSWERS = frozenset({"inform_result", "failure"})  # (an rpc call's answers)
_DIGEST = 32
_NONCE_MASK = 2**63 - 1
#: The first byte of a signed body: one msgpack never uses, so no unsigned body has it.
MAGIC = 0xC1

# Refusal reasons (SignatureError.reason; counted in Signer.refused).
UNSIGNED = "unsigned"
UNKNOWN_KID = "unknown key id"
BAD_SIGNATURE = "bad signature"
OUT_OF_WINDOW = "ts outside the window"
REPLAYED = "replayed"

Listener = Callable[[dict[str, Any], SignatureError], None]


def _pads(secret: bytes, kid: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hash states for C{secret} (RFC 2104), the
    inner one past the domain tag and key id every signature of this key starts
    with. Made once per key: a message then costs two copies of them, not a key
    setup (nor OpenSSL 3's lookup of the digest by name, which in a busy process
    cost more than the hashing)."""
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
    inner.update(_DOMAIN + bytes((len(kid),)) + kid)
    return inner, hashlib.sha256(bytes(b ^ 0x5C for b in secret))


def _mac(pads: tuple[Any, Any], payload: Any) -> bytes:
    """HMAC-SHA256 of what a signature covers (a domain tag, the key id with its
    length, the payload), from the key's L{_pads}."""
    inner = pads[0].copy()
    inner.update(payload)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


def split(body: bytes) -> tuple[bytes, bytes, bytes] | None:
    """C{(kid, sig, payload)} of a signed body; None when it is not one."""
    if len(body) < 2 + _DIGEST or body[0] != MAGIC:
        return None
    start = 2 + body[1]
    end = start + _DIGEST
    if len(body) < end:
        return None
    return body[2:start], body[start:end], body[end:]


def _vouched(sig: bytes, count: int) -> bytes:
    """What a redelivery voucher covers: a tag of its own (it is never a
    message's signature), the count and the message's signature."""
    return b"redelivery\0" + count.to_bytes(8, "big") + sig


def open_unchecked(payload: Any) -> tuple[dict[str, Any], Any] | None:
    """The headers and content of a payload, unchecked; None when it is not a
    C{[headers, content]} pair."""
    try:
        frame = msgpack.unpackb(payload, raw=False, strict_map_key=False)
    except Exception:  # msgpack raises several unrelated types for bad input
        return None
    if isinstance(frame, list) and len(frame) == 2 and isinstance(frame[0], dict):
        return frame[0], frame[1]
    return None


class Signer:
    """Signs what a container sends and verifies what it takes, with one key ring."""

    def __init__(
        self,
        ring: KeyRing,
        now: Callable[[], float],
        max_skew: float = 300.0,
        replay_size: int = 100_000,
        max_redeliveries: int = 5,
    ) -> None:
        self.ring = ring
        keys = [key for key in (ring.current, ring.previous) if key is not None]
        self._pads = {key.kid: _pads(key.secret, key.kid.encode()) for key in keys}
        # A received kid is bytes: looked up as such, with no decoding.
        self._by_kid = {kid.encode(): (kid, pads) for kid, pads in self._pads.items()}
        current = ring.current.kid
        prefix = bytes((MAGIC, len(current.encode()))) + current.encode()
        self._sealing = (current, prefix, *self._pads[current])
        self._now = now
        self.max_skew_ms = int(max_skew * 1000)
        self.replay = ReplayCache(replay_size, max_repeats=1)
        self.allow_redeliveries(max_redeliveries)
        self._nonce = secrets.randbits(62)  # another count than a restarted container's
        self.signed = 0
        self.verified = 0
        #: Refusals by reason (see the constants above).
        self.refused: Counter[str] = Counter()
        #: Called with (headers, error) for each message refused (the boot check listens).
        self.listeners: list[Listener] = []

    def allow_redeliveries(self, limit: int) -> None:
        """Take a redelivered message as often as a process allowing C{limit}
        redeliveries needs (a process may allow more than the container's
        C{process.max_redeliveries}): each round takes its signature twice, the
        broker's flagged delivery and the counting copy, and there is the first."""
        self.replay.max_repeats = max(self.replay.max_repeats, 2 * limit + 2)

    def seal(self, headers: dict[str, Any], content: Any) -> bytes:
        """The signed body of a message of C{headers} (given C{ts}, C{kid} and
        C{nonce} here) and C{content}.

        @raise TypeError, ValueError, OverflowError: msgpack's, for what cannot travel.
        """
        # (Inline, as verify: a signed message costs per Python call made, cold
        # caches between messages multiplying what a micro-benchmark shows.)
        kid, prefix, inner_pad, outer_pad = self._sealing
        self._nonce = nonce = (self._nonce + 1) & _NONCE_MASK
        headers[_TS] = int(self._now() * 1000)
        headers[_KID] = kid
        headers[_NONCE] = nonce
        payload = _pack([headers, content])
        inner = inner_pad.copy()
        inner.update(payload)
        outer = outer_pad.copy()
        outer.update(inner.digest())
        self.signed += 1
        return b"".join((prefix, outer.digest(), payload))

    def verify(
        self, body: bytes, consumer: str, redelivery: bool = False
    ) -> tuple[dict[str, Any], Any]:
        """The headers and content of received C{body} (see
        L{ion.core.messaging.message.Verify}) when it verifies and C{consumer}
        has not taken it before; else raise L{SignatureError}, carrying the
        headers when they can be read (to answer the sender).

        C{redelivery}: the broker says it delivered this message before (a
        requeue, or the poison check's copy): taken again a few times.
        """
        size = len(body)
        if size < 2 + _DIGEST or body[0] != MAGIC:
            self._refuse_unsigned(body)
        start = 2 + body[1]
        end = start + _DIGEST
        known = self._by_kid.get(body[2:start])
        if size < end:
            self._refuse_unsigned(body)
        if known is None:
            self._refuse_kid(body, start, end)
        kid, (inner_pad, outer_pad) = known
        payload = memoryview(body)[end:]
        inner = inner_pad.copy()
        inner.update(payload)
        outer = outer_pad.copy()
        outer.update(inner.digest())
        sig = body[start:end]
        if not hmac.compare_digest(outer.digest(), sig):
            self._refuse(_readable(payload), BAD_SIGNATURE, f"bad signature (key id {_shown(kid)})")
        # Authentic from here: a key holder sent it. Is it well made, and fresh?
        try:
            frame = _unpackb(payload, raw=False, strict_map_key=False)
        except Exception:  # msgpack raises several unrelated types for bad input
            frame = None
        if (
            type(frame) is not list
            or len(frame) != 2
            or type(headers := frame[0]) is not dict
            or headers.get(_KID) != kid
        ):
            self._refuse(_readable(payload), BAD_SIGNATURE,
                         "signed payload is not [headers, content] with its kid")  # fmt: skip
        ts = headers.get(_TS)
        now = int(self._now() * 1000)
        skew = self.max_skew_ms
        if type(ts) is not int or abs(now - ts) > skew:
            self._refuse(headers, OUT_OF_WINDOW, f"ts outside the window of ±{skew // 1000} s")
        # An rpc answer needs no replay record: its call takes one answer and
        # closes, and a second (a replay) finds no call and is dropped as late.
        if headers.get(_PERFORMATIVE) not in _ANSWERS or headers.get(_PROTOCOL) != "rpc":
            why = self.replay.check((consumer, sig), ts, ts + skew, now, redelivery)
            if why is not None:
                self._refuse(headers, REPLAYED, why)
        self.verified += 1
        return headers, frame[1]

    def verifier(self, consumer: str, redelivery: bool = False) -> Callable[[bytes], Any]:
        """L{verify} for C{consumer}'s deliveries, as a L{m.Verify} (a C{partial}:
        a consumer keeps one, and a message costs one Python call, not two)."""
        return partial(self.verify, consumer=consumer, redelivery=redelivery)

    def _refuse_unsigned(self, body: bytes) -> NoReturn:
        opened = open_unchecked(body)
        self._refuse(opened[0] if opened else {}, UNSIGNED, "unsigned message")

    def _refuse_kid(self, body: bytes, start: int, end: int) -> NoReturn:
        shown = _shown(body[2:start].decode(errors="replace"))
        self._refuse(_readable(body[end:]), UNKNOWN_KID, f"unknown key id {shown}")

    def voucher(self, body: bytes, count: int) -> bytes | None:
        """What vouches that C{body}, a signed message, goes round again as a
        redelivery copy numbered C{count} (None: it is not signed)."""
        parts = split(body)
        if parts is None:
            return None
        key = self.ring.current
        kid = key.kid.encode()
        return bytes((len(kid),)) + kid + _mac(self._pads[key.kid], _vouched(parts[1], count))

    def vouches(self, body: bytes, count: Any, voucher: Any) -> bool:
        """Whether C{voucher} is one of L{voucher}'s for C{body} and C{count}."""
        if not isinstance(voucher, bytes) or not voucher or type(count) is not int:
            return False
        parts = split(body)
        known = self._by_kid.get(voucher[1 : 1 + voucher[0]])
        if parts is None or known is None or count < 0:
            return False
        mac = _mac(known[1], _vouched(parts[1], count))
        return hmac.compare_digest(voucher[1 + voucher[0] :], mac)

    def _refuse(self, headers: dict[str, Any], reason: str, text: str) -> NoReturn:
        self.refused[reason] += 1
        error = SignatureError(f"message refused: {text}", reason)
        error.headers = headers  # type: ignore[attr-defined]  # (to answer its sender)
        for listener in list(self.listeners):
            listener(headers, error)
        raise error

    def stats(self) -> dict[str, Any]:
        """Counts for get_info: signed, verified, refused by reason, replay cache."""
        return {
            "signed": self.signed,
            "verified": self.verified,
            "refused": dict(self.refused),
            "kids": self.ring.kids,
            "replay_cache": len(self.replay),
            "replay_evicted": self.replay.evicted,
        }


def _readable(payload: Any) -> dict[str, Any]:
    """The headers of a body that did not verify, as far as they can be read
    (to answer the sender, who may have used another key): never trusted."""
    opened = open_unchecked(payload)
    return opened[0] if opened else {}


def _shown(value: Any) -> str:
    """A received value for an error text: its repr, cut short (it is the sender's)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def signer_from_config(
    config: Config, now: Callable[[], float], environ: Any = None
) -> Signer | None:
    """The container's signer when C{security.signing} is on, else None.

    @raise ConfigurationError: no usable key, or a bad C{max_skew} / C{replay_cache}.
    """
    ring = load_ring(config, environ)
    if ring is None:
        return None
    skew = config.get("security.max_skew", 300)
    if not isinstance(skew, int | float) or isinstance(skew, bool) or skew <= 0:
        raise ConfigurationError(f"security.max_skew must be a positive number, not {skew!r}")
    size = config.get("security.replay_cache", 100_000)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigurationError(f"security.replay_cache must be a positive integer, not {size!r}")
    redeliveries = config.get("process.max_redeliveries", 5)
    if not isinstance(redeliveries, int) or isinstance(redeliveries, bool) or redeliveries < 0:
        redeliveries = 5  # (the process's own check names the setting)
    return Signer(ring, now, float(skew), size, redeliveries)
