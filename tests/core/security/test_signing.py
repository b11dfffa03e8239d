"""Signing and verifying one message (L{ion.core.security.signing}), without a broker."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.security import signing
from ion.core.security.keys import Key, KeyRing
from ion.core.security.replay import ReplayCache
from tests.core.security.conftest import Frame

OLD = Key("k1", b"\x01" * 32)
NEW = Key("k2", b"\x02" * 32)
RETIRED = Key("k0", b"\x00" * 32)


class Now:
    """A settable clock (seconds)."""

    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def request() -> dict[str, Any]:
    return {
        m.SENDER: "client.1@c1",
        m.RECEIVER: "echo",
        m.REPLY_TO: "client.1@c1.reply",
        m.CONV_ID: "client.1@c1#1",
        m.CONV_SEQ: 1,
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "request",
        m.OP: "echo",
        m.USER_ID: "alice",
        m.EXPIRY: 1_800_000_015_000,
    }


def signed(signer: signing.Signer, content: Any = "hello") -> bytes:
    return m.encode(request(), content, signer)


def take(signer: signing.Signer, body: bytes, consumer: str = "echo.1@c2", again: bool = False):
    return m.decode(body, None, lambda f: signer.verify(f, consumer, again))


# A changed value for each signed header (one the request has, or adds one it lacks).
TAMPERED = {
    m.SENDER: "admin.1@c9",
    m.RECEIVER: "other",
    m.REPLY_TO: "evil.1@c9.reply",
    m.CONV_ID: "client.1@c1#2",
    m.CONV_SEQ: 2,
    m.PROTOCOL: "request",
    m.PERFORMATIVE: "inform",
    m.OP: "delete_all",
    m.STATUS: "OK",
    m.USER_ID: "admin",
    m.EXPIRY: 1_900_000_000_000,
    m.TS: None,  # (set from the message: one millisecond later)
    m.ENCODING: "msgpack",
    m.KID: OLD.kid,
    m.NONCE: None,  # (one more)
    m.SENDER_EPOCH: 7,
    m.RECEIVER_EPOCH: 7,
}


def test_every_signed_header_has_a_tampering_case() -> None:
    assert set(TAMPERED) == set(signing.SIGNED)


def test_a_signed_message_verifies_and_decodes() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    msg = take(signer, signed(signer, {"a": [1, b"2"]}))
    assert msg.content == {"a": [1, b"2"]}
    assert msg.headers[m.KID] == "k2" and len(Frame(signed(signer)).sig) == 32
    assert signer.verified == 1


@pytest.mark.parametrize("name", signing.SIGNED)
def test_tampering_with_any_signed_header_is_refused(name: str) -> None:
    signer = signing.Signer(KeyRing(NEW, OLD), Now())
    f = Frame(signed(signer))
    value = TAMPERED[name]
    if name in (m.TS, m.NONCE):
        value = f.headers[name] + 1
    assert f.headers.get(name) != value
    f.headers[name] = value
    with pytest.raises(exc.SignatureError) as info:
        take(signer, f.pack())
    assert info.value.code == exc.UNAUTHORIZED
    assert info.value.reason == signing.BAD_SIGNATURE
    assert info.value.headers[name] == value  # (for the 401 answer)


def test_removing_a_signed_header_is_refused() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    f = Frame(signed(signer))
    del f.headers[m.USER_ID]
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signer, f.pack())


def test_an_added_header_is_refused() -> None:
    """Every header is covered, those the design names and any other."""
    signer = signing.Signer(KeyRing(NEW), Now())
    f = Frame(signed(signer))
    f.headers["sender-name"] = "admin"
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signer, f.pack())


def test_bytes_appended_to_a_signed_body_are_refused() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    f = Frame(signed(signer))
    f.payload += msgpack.packb("more")
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signer, f.pack(repack=False))


def test_tampering_with_the_body_is_refused_before_it_is_unpacked() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    f = Frame(signed(signer))
    f.payload = b"\x92\x80\xdd\xff\xff\xff\xff"  # an array of 2**32 items: never unpacked
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signer, f.pack(repack=False))
    f.content = "other"
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signer, f.pack())


def test_a_changed_or_cut_signature_is_refused() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    f = Frame(signed(signer))
    f.sig = bytes([f.sig[0] ^ 1]) + f.sig[1:]
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signer, f.pack(repack=False))
    body = signed(signer)
    cut = body[: 2 + body[1] + 20]  # the prefix and part of the signature
    with pytest.raises(exc.SignatureError, match="unsigned"):
        take(signer, cut)
    with pytest.raises(exc.MessageFormatError, match="cut short"):
        m.decode(cut)


def test_a_frame_kid_other_than_the_signed_one_is_refused() -> None:
    """The frame's kid picks the key; the signed headers must name the same."""
    signer = signing.Signer(KeyRing(NEW, OLD), Now())
    f = Frame(signed(signer))
    f.kid = OLD.kid
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signer, f.pack(repack=False))


def test_an_unsigned_message_is_refused() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    with pytest.raises(exc.SignatureError, match="unsigned") as info:
        take(signer, m.encode(request(), "hello"))
    assert info.value.reason == signing.UNSIGNED
    assert signer.refused == {signing.UNSIGNED: 1}


def test_previous_key_accepted_during_rotation() -> None:
    """A container still on the old ring (k1 current) is heard by one that
    rotated (k2 current, k1 previous), and the other way round."""
    before = signing.Signer(KeyRing(OLD), Now())
    after = signing.Signer(KeyRing(NEW, OLD), Now())
    assert take(after, signed(before)).headers[m.KID] == "k1"
    with pytest.raises(exc.SignatureError, match="unknown key id 'k2'"):
        take(before, signed(after))  # (the old ring does not know the new key yet)


def test_retired_key_refused() -> None:
    retired = signing.Signer(KeyRing(RETIRED), Now())
    ring = signing.Signer(KeyRing(NEW, OLD), Now())
    with pytest.raises(exc.SignatureError) as info:
        take(ring, signed(retired))
    assert info.value.reason == signing.UNKNOWN_KID


def test_same_kid_other_key_is_a_bad_signature() -> None:
    other = signing.Signer(KeyRing(Key("k2", b"\x09" * 32)), Now())
    with pytest.raises(exc.SignatureError, match="bad signature"):
        take(signing.Signer(KeyRing(NEW), Now()), signed(other))


@pytest.mark.parametrize("offset", [-301.0, 301.0])
def test_ts_outside_the_window_refused(offset: float) -> None:
    clock = Now()
    sender = signing.Signer(KeyRing(NEW), Now(clock.t + offset))
    receiver = signing.Signer(KeyRing(NEW), clock, max_skew=300)
    with pytest.raises(exc.SignatureError, match="outside the window") as info:
        take(receiver, signed(sender))
    assert info.value.reason == signing.OUT_OF_WINDOW


def test_ts_inside_the_window_accepted() -> None:
    clock = Now()
    sender = signing.Signer(KeyRing(NEW), Now(clock.t - 299.0))
    take(signing.Signer(KeyRing(NEW), clock, max_skew=300), signed(sender))


def test_replayed_message_refused() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    body = signed(signer)
    take(signer, body)
    with pytest.raises(exc.SignatureError, match="replayed") as info:
        take(signer, body)
    assert info.value.reason == signing.REPLAYED
    take(signer, body, consumer="echo.2@c2")  # another consumer: its first copy


def test_an_rpc_answer_keeps_no_replay_record_a_request_does() -> None:
    """An rpc call takes one answer and drops any other as late, so its answers
    are not recorded (one check less per call); every other message is."""
    signer = signing.Signer(KeyRing(NEW), Now())
    answer = {**request(), m.PERFORMATIVE: "inform_result", m.STATUS: "OK"}
    body = m.encode(answer, "result", signer)
    take(signer, body)
    take(signer, body)
    assert len(signer.replay) == 0
    inform = m.encode({**request(), m.PROTOCOL: "none", m.PERFORMATIVE: "inform_result"}, 1, signer)
    take(signer, inform)
    with pytest.raises(exc.SignatureError, match="replayed"):
        take(signer, inform)


def test_broker_redelivery_taken_a_few_times_only() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    body = signed(signer)
    take(signer, body)
    for _ in range(signer.replay.max_repeats - 1):
        take(signer, body, again=True)
    with pytest.raises(exc.SignatureError, match="replayed"):
        take(signer, body, again=True)


def test_a_redelivery_voucher_holds_for_its_body_and_count_only() -> None:
    signer = signing.Signer(KeyRing(NEW, OLD), Now())
    body, other = signed(signer), signed(signer)
    voucher = signer.voucher(body, 3)
    assert voucher is not None and signer.vouches(body, 3, voucher)
    assert not signer.vouches(body, 4, voucher)
    assert not signer.vouches(other, 3, voucher)
    assert not signer.vouches(body, 3, voucher[:-1] + bytes([voucher[-1] ^ 1]))
    for bad in (None, b"", "x", b"\xff"):
        assert not signer.vouches(body, 3, bad)
    assert not signer.vouches(body, "3", voucher)
    assert signer.voucher(m.encode(request(), "x"), 1) is None  # unsigned: nothing to vouch for
    retired = signing.Signer(KeyRing(Key("k0", b"\x07" * 32)), Now())
    assert not signer.vouches(body, 3, retired.voucher(body, 3))


def test_equal_messages_are_told_apart_by_their_nonce() -> None:
    """Signals and events of one sender share conv-id and have no conv-seq."""
    clock = Now()
    signer = signing.Signer(KeyRing(NEW), clock)
    take(signer, signed(signer))
    take(signer, signed(signer))  # same ms, same headers, same content


def test_replay_entries_expire_with_the_window() -> None:
    cache = ReplayCache(10)
    assert cache.check("a", 1000, 2000, 1000, False) is None
    assert cache.check("a", 1000, 2000, 1500, False) == "replayed"
    assert cache.check("b", 1500, 2500, 2001, False) is None
    assert len(cache) == 1  # "a" forgotten: its ts is out of the window now


def test_full_replay_cache_refuses_what_it_can_no_longer_prove_new() -> None:
    cache = ReplayCache(2)
    for key, ts in (("a", 10), ("b", 20), ("c", 30)):
        assert cache.check(key, ts, ts + 1000, 30, False) is None
    assert cache.evicted == 1 and cache.horizon == 10
    assert cache.check("a", 10, 1010, 30, False) is not None  # a replay of the evicted one
    assert cache.check("d", 11, 1011, 30, False) is None


def test_a_header_that_cannot_travel_cannot_be_signed() -> None:
    signer = signing.Signer(KeyRing(NEW), Now())
    headers = request()
    headers[m.USER_ID] = object()
    with pytest.raises(exc.MessageFormatError, match="cannot"):
        m.encode(headers, "x", signer)


def test_unsigned_reader_takes_signed_messages() -> None:
    """Signing off: signed content is still read (a mixed system during a switch)."""
    signer = signing.Signer(KeyRing(NEW), Now())
    assert m.decode(signed(signer, [1, 2])).content == [1, 2]


def test_key_material_not_in_reprs() -> None:
    assert "\\x02" not in repr(KeyRing(NEW, OLD))


@pytest.mark.parametrize("size", [32, 64, 100])
def test_signature_is_hmac_sha256_of_the_bytes_as_sent(size: int) -> None:
    """A known answer: the signature is the standard HMAC-SHA256 (RFC 2104) of
    the domain tag, the key id with its length and the payload as it travels."""
    import hashlib
    import hmac

    key = Key("kx", bytes(range(size)))
    signer = signing.Signer(KeyRing(key), Now())
    f = Frame(signed(signer))
    covered = b"ion-sig-3\0" + bytes((2,)) + b"kx" + f.payload
    expected = hmac.digest(key.secret, covered, hashlib.sha256)
    assert f.kid == "kx" and f.sig == expected
