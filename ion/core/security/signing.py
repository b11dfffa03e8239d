"""Signed messages: HMAC-SHA256 over a fixed header set and the body's digest.

The signed input is a canonical, length-prefixed encoding of the headers in
L{SIGNED} (those present, in that order, as one msgpack map of name to scalar
value: none can be added, dropped or changed) followed by the SHA-256 of the
content bytes as they travel (L{ion.core.messaging.message.encode} packs the
content of a signed message on its own). Nothing is re-serialized to be checked: the receiver verifies the
bytes it got, before it unpacks the content.

A received message is taken when its key id is in the ring, its signature
matches (C{hmac.compare_digest}), its C{ts} is within C{security.max_skew}
seconds of this container's clock, and its (consumer, sender, conv-id, conv-seq,
nonce) has not been taken before (L{ReplayCache}). The C{nonce} header, a number
each signer counts up, tells apart messages that share the rest (signals and
events of one sender have no conv-seq).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import Counter
from collections.abc import Callable
from typing import Any, NoReturn

import msgpack

from ion.core.config import Config
from ion.core.exception import ConfigurationError, MessageFormatError, SignatureError
from ion.core.messaging import message as m
from ion.core.security.keys import KeyRing, load_ring
from ion.core.security.replay import ReplayCache

#: The headers a signature covers, in the order they are encoded.
SIGNED = (
    m.SENDER, m.RECEIVER, m.REPLY_TO, m.CONV_ID, m.CONV_SEQ, m.PROTOCOL, m.PERFORMATIVE,
    m.OP, m.STATUS, m.USER_ID, m.EXPIRY, m.TS, m.ENCODING, m.KID, m.NONCE,
)  # fmt: skip
_DOMAIN = b"ion-sig-1\0"
_SCALAR = frozenset({str, int, bytes, bool, float, type(None)})
_BLOCK = 64  # SHA-256's block size
_pack = msgpack.Packer(use_bin_type=True).pack
_DIGEST = 32
_NONCE_MASK = 2**63 - 1

# Refusal reasons (SignatureError.reason; counted in Signer.refused).
UNSIGNED = "unsigned"
UNKNOWN_KID = "unknown key id"
BAD_SIGNATURE = "bad signature"
OUT_OF_WINDOW = "ts outside the window"
REPLAYED = "replayed"

Listener = Callable[[dict[str, Any], SignatureError], None]


def canonical(headers: dict[str, Any], body: bytes) -> bytes:
    """The bytes a signature covers; C{TypeError} naming a header no signature can cover.

    The headers of L{SIGNED} that are present, in that order, as one msgpack map
    of name to value (each value a scalar: typed and length-prefixed, and one
    Python value packs to one byte string), then the SHA-256 of C{body}.
    """
    present = {name: headers[name] for name in SIGNED if name in headers}
    if not _SCALAR.issuperset(map(type, present.values())):
        for name, value in present.items():
            if type(value) not in _SCALAR:
                raise TypeError(f"header {name!r} is a {type(value).__name__}")
    try:
        packed = _pack(present)
    except (ValueError, OverflowError) as e:  # a lone surrogate; an int past 64 bits
        raise TypeError(f"a header cannot be signed: {e}") from None
    return _DOMAIN + packed + hashlib.sha256(body).digest()


def _pads(secret: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's inner and outer hash states for C{secret} (RFC 2104), made
    once per key: each message then costs two SHA-256 copies, not a key setup."""
    if len(secret) > _BLOCK:
        secret = hashlib.sha256(secret).digest()
    secret = secret.ljust(_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in secret))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in secret))
    return inner, outer


def _mac(pads: tuple[Any, Any], data: bytes) -> bytes:
    """HMAC-SHA256 of C{data} from a key's L{_pads}."""
    inner = pads[0].copy()
    inner.update(data)
    outer = pads[1].copy()
    outer.update(inner.digest())
    return outer.digest()


class Signer:
    """Signs what a container sends and verifies what it takes, with one key ring."""

    def __init__(
        self,
        ring: KeyRing,
        now: Callable[[], float],
        max_skew: float = 300.0,
        replay_size: int = 100_000,
    ) -> None:
        self.ring = ring
        self._pads = {key.kid: _pads(key.secret) for key in (ring.current, ring.previous) if key}
        self._now = now
        self.max_skew_ms = int(max_skew * 1000)
        self.replay = ReplayCache(replay_size)
        self._nonce = secrets.randbits(62)  # another count than a restarted container's
        self.signed = 0
        self.verified = 0
        #: Refusals by reason (see the constants above).
        self.refused: Counter[str] = Counter()
        #: Called with (headers, error) for each message refused (the boot check listens).
        self.listeners: list[Listener] = []

    def sign(self, headers: dict[str, Any], body: bytes) -> None:
        """Add C{ts}, C{kid}, C{nonce} and C{sig} to C{headers} for C{body}."""
        key = self.ring.current
        self._nonce = (self._nonce + 1) & _NONCE_MASK
        headers[m.TS] = int(self._now() * 1000)
        headers[m.KID] = key.kid
        headers[m.NONCE] = self._nonce
        try:
            data = canonical(headers, body)
        except TypeError as e:
            raise MessageFormatError(f"cannot sign: {e}") from None
        headers[m.SIG] = _mac(self._pads[key.kid], data)
        self.signed += 1

    def verify(
        self, headers: dict[str, Any], body: Any, consumer: str, redelivery: bool = False
    ) -> None:
        """Raise L{SignatureError} unless C{headers} and C{body} (the content bytes
        as received) verify and were not taken by C{consumer} before.

        C{redelivery}: the broker says it delivered this message before (a
        requeue, or the poison check's copy): taken again a few times.
        """
        sig = headers.get(m.SIG)
        if sig is None or not isinstance(body, bytes):
            self._refuse(headers, UNSIGNED, "unsigned message")
        kid = headers.get(m.KID)
        key = self.ring.get(kid)
        if key is None:
            self._refuse(headers, UNKNOWN_KID, f"unknown key id {_shown(kid)}")
        try:
            data = canonical(headers, body)
        except TypeError:
            data = b""
        if not (
            data
            and isinstance(sig, bytes)
            and len(sig) == _DIGEST
            and hmac.compare_digest(_mac(self._pads[key.kid], data), sig)
        ):
            self._refuse(headers, BAD_SIGNATURE, f"bad signature (key id {_shown(kid)})")
        # Authentic from here: a key holder sent it. Is it fresh?
        ts = headers.get(m.TS)
        now = int(self._now() * 1000)
        skew = self.max_skew_ms
        if not isinstance(ts, int) or isinstance(ts, bool) or abs(now - ts) > skew:
            self._refuse(headers, OUT_OF_WINDOW, f"ts outside the window of ±{skew // 1000} s")
        key_seen = (
            consumer,
            headers.get(m.SENDER),
            headers.get(m.CONV_ID),
            headers.get(m.CONV_SEQ),
            headers.get(m.NONCE),
        )
        why = self.replay.check(key_seen, ts, ts + skew, now, redelivery)
        if why is not None:
            self._refuse(headers, REPLAYED, why)
        self.verified += 1

    def _refuse(self, headers: dict[str, Any], reason: str, text: str) -> NoReturn:
        self.refused[reason] += 1
        error = SignatureError(f"message refused: {text}", reason)
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
    return Signer(ring, now, float(skew), size)
