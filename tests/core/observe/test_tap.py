"""The message tap's ring (W2), what it records and what it leaves out."""

from __future__ import annotations

from typing import Any

import pytest

from ion.core.observe.tap import FIELDS, RECV, SEND, MessageTap


def headers(n: int = 1, sender: str = "caller.1@c1", **more: Any) -> dict[str, Any]:
    return {"sender": sender, "sender-name": "caller", "receiver": "hello",
            "conv-id": f"conv-{n}", "conv-seq": 1, "protocol": "rpc",
            "performative": "request", "op": "hello", **more}  # fmt: skip


def test_a_row_holds_what_the_message_was_never_its_content() -> None:
    tap = MessageTap("c1", now=lambda: 12.5)
    secret = {"password": "hunter2"}
    tap.sent(headers(**{"user-id": "alice"}), 42, secret)
    [row] = tap.read().rows
    assert list(row) == list(FIELDS)
    assert row["seq"] == 1 and row["ts"] == 12.5 and row["dir"] == SEND
    assert (row["sender"], row["sender_name"], row["to"], row["receiver"]) == (
        "caller.1@c1", "caller", "hello", "hello")  # fmt: skip
    assert (row["conv_id"], row["conv_seq"], row["protocol"], row["performative"], row["op"]) == (
        "conv-1", 1, "rpc", "request", "hello")  # fmt: skip
    assert row["size"] == 42 and row["content_type"] == "dict" and row["user_id"] == "alice"
    assert "hunter2" not in repr(tap.read().as_dict())


def test_w2_the_ring_evicts_the_oldest_and_seq_keeps_rising() -> None:
    tap = MessageTap("c1", size=2000)
    for n in range(2500):
        tap.sent(headers(n), 10)
    all_rows = tap.read().rows
    assert len(all_rows) == 2000 and tap.last == 2500
    assert [r["seq"] for r in all_rows] == list(range(501, 2501))
    assert all_rows[0]["conv_id"] == "conv-500"


def test_w2_a_read_since_an_evicted_row_gets_a_gap_marker() -> None:
    tap = MessageTap("c1", size=2000)
    for n in range(2500):
        tap.sent(headers(n), 10)
    part = tap.read(since=100)
    assert part.gap == (101, 500)
    assert part.as_dict()["gap"] == [101, 500]
    assert part.rows[0]["seq"] == 501 and part.last == 2500
    assert tap.read(since=500).gap is None  # nothing after 500 was lost
    fresh = tap.read(since=2400)
    assert fresh.gap is None and [r["seq"] for r in fresh.rows] == list(range(2401, 2501))
    assert tap.read(since=2500).rows == [] and tap.read(since=2500).gap is None


def test_a_limit_gives_the_newest_rows() -> None:
    tap = MessageTap("c1")
    for n in range(10):
        tap.sent(headers(n), 1)
    assert [r["seq"] for r in tap.read(limit=3).rows] == [8, 9, 10]
    assert tap.read(limit=0).rows == []


def test_a_message_from_this_container_is_one_row_its_send() -> None:
    tap = MessageTap("c1")
    tap.sent(headers(), 10)
    tap.received(headers(), 10, "hello.2@c1", "hello")
    assert [r["dir"] for r in tap.read().rows] == [SEND]


def test_a_message_from_another_container_is_a_receive_naming_the_taker() -> None:
    tap = MessageTap("c2")
    tap.received(headers(), 10, "hello.2@c2", "hello")
    [row] = tap.read().rows
    assert row["dir"] == RECV and row["receiver"] == "hello.2@c2" and row["to"] == "hello"
    assert row["receiver_name"] == "hello" and row["container"] == "c2"


def test_membership_chatter_and_the_observers_reads_are_not_recorded() -> None:
    tap = MessageTap("c1")
    tap.received(headers(protocol="cc", op="heartbeat", sender="agent.0@c2"), 10, "a", "agent")
    tap.sent(headers(op="get_trace", receiver="cc.c2"), 10)
    tap.sent(headers(2, op="get_info", receiver="cc.c2"), 10)
    answer = headers(2, op="result", performative="inform_result", sender="cc_agent.0@c2")
    tap.received(answer, 10, "caller.1@c1", "caller")
    assert tap.read().rows == [] and tap.last == 0
    tap.received(answer, 10, "caller.1@c1", "caller")  # the same conversation again: not quiet
    assert tap.last == 1


def test_listeners_get_each_new_row_until_stopped() -> None:
    tap = MessageTap("c1")
    got: list[dict[str, Any]] = []
    stop = tap.listen(got.append)
    tap.sent(headers(1), 1)
    stop()
    tap.sent(headers(2), 1)
    assert [r["conv_id"] for r in got] == ["conv-1"]


def test_an_event_is_a_row_to_its_routing_key() -> None:
    tap = MessageTap("c1")
    tap.event(headers(receiver="ion.s.events", performative="inform", op="event"), 5, "1052.p.1@c1")
    [row] = tap.read().rows
    assert row["dir"] == "event" and row["to"] == "1052.p.1@c1"


def test_the_ring_keeps_at_least_one_row() -> None:
    with pytest.raises(ValueError):
        MessageTap("c1", size=0)


def test_a_received_row_keeps_only_short_headers() -> None:
    """Another system's sender may send 1 MB headers or odd types: a received row
    keeps the headers a row shows, each short, and an unhashable op is no error."""
    tap = MessageTap("c2")
    huge = {"sender": "x" * 1_000_000, "receiver": "hello", "conv-id": "c#1", "protocol": "rpc",
            "performative": "inform", "op": {"a": [[["deep"]]]}, "x-extra": "y" * 1_000_000}  # fmt: skip
    tap.received(huge, 2_000_000, "p.1@c2", "p")
    [row] = tap.read(0).rows
    assert len(row["sender"]) < 200 and row["to"] == "hello" and row["conv_id"] == "c#1"
    assert isinstance(row["op"], str) and len(row["op"]) < 200
    kept = tap._rows[-1][3]
    assert "x-extra" not in kept and sum(len(str(v)) for v in kept.values()) < 1_000
