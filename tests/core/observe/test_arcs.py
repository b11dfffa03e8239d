"""Arcs and lanes from tap rows; several containers' rows merged on one clock."""

from __future__ import annotations

from typing import Any

from ion.core.observe import arcs
from ion.core.observe.tap import MessageTap


def call(tap: MessageTap, conv: str, caller: str, server: str, status: str = "OK",
         perf: str = "inform_result") -> None:  # fmt: skip
    tap.sent({"sender": caller, "sender-name": caller.split(".")[0], "receiver": "hello",
              "conv-id": conv, "conv-seq": 1, "protocol": "rpc", "performative": "request",
              "op": "hello"}, 10)  # fmt: skip
    tap.sent({"sender": server, "sender-name": "hello", "receiver": caller + ".reply",
              "conv-id": conv, "conv-seq": 2, "protocol": "rpc", "performative": perf,
              "op": "hello", "status": status}, 10)  # fmt: skip


def test_a_call_to_a_service_is_drawn_to_the_process_that_answered() -> None:
    tap = MessageTap("c1")
    call(tap, "k1", "shell.1@c1", "hello.2@c1")
    request, reply = arcs.arcs(tap.read().rows)
    assert (request.src, request.dst, request.kind, request.to) == (
        "shell.1@c1", "hello.2@c1", "request", "hello")  # fmt: skip
    assert (reply.src, reply.dst, reply.kind) == ("hello.2@c1", "shell.1@c1", "reply")


def test_kinds_failure_refuse_exit_event_and_one_way() -> None:
    rows: list[dict[str, Any]] = [
        {"dir": "send", "performative": "failure", "protocol": "rpc"},
        {"dir": "send", "performative": "refuse", "protocol": "request"},
        {"dir": "send", "performative": "inform_result", "status": "ERROR", "protocol": "rpc"},
        {"dir": "send", "performative": "inform", "protocol": "signal", "op": "sys_exit"},
        {"dir": "send", "performative": "inform", "protocol": "signal", "op": "sys_link"},
        {"dir": "event", "performative": "inform", "protocol": "none", "op": "event"},
        {"dir": "send", "performative": "agree", "protocol": "request"},
    ]
    assert [arcs.kind_of(r) for r in rows] == [
        "failure", "failure", "failure", "exit", "message", "event", "reply"]  # fmt: skip


def test_lanes_sort_by_container_then_name() -> None:
    tap = MessageTap("c2")
    call(tap, "k1", "zed.1@c2", "alpha.3@c1")
    call(tap, "k2", "beta.4@c2", "alpha.3@c1")
    got = arcs.arcs(tap.read().rows)
    names = arcs.lane_names(tap.read().rows)
    assert [(ln.container, ln.name) for ln in arcs.lanes(got, names)] == [
        ("c1", "hello"), ("c2", "beta"), ("c2", "zed")]  # fmt: skip


def test_a_message_sent_in_one_container_and_taken_in_another_is_one_arc() -> None:
    c1, c2 = MessageTap("c1", now=lambda: 100.0), MessageTap("c2", now=lambda: 100.004)
    h = {"sender": "shell.1@c1", "sender-name": "shell", "receiver": "hello", "conv-id": "k",
         "conv-seq": 1, "protocol": "rpc", "performative": "request", "op": "hello"}  # fmt: skip
    c1.sent(h, 10)
    c2.received(h, 10, "hello.2@c2", "hello")
    rows = arcs.merge([c1.read().as_dict(), c2.read().as_dict()])
    [row] = rows
    assert row["receiver"] == "hello.2@c2" and row["taken"] == 100.004
    [arc] = arcs.arcs(rows)
    assert (arc.src, arc.dst) == ("shell.1@c1", "hello.2@c2")


def test_skew_each_containers_times_move_by_its_offset_and_causality_holds() -> None:
    # c2's clock runs 5 s ahead: its reply looks 5 s late, the request it took
    # looks taken before it was sent.
    c1, c2 = MessageTap("c1", now=lambda: 100.0), MessageTap("c2", now=lambda: 105.001)
    req = {"sender": "shell.1@c1", "receiver": "hello", "conv-id": "k", "conv-seq": 1,
           "protocol": "rpc", "performative": "request", "op": "hello"}  # fmt: skip
    c1.sent(req, 10)
    c2.received(req, 10, "hello.2@c2", "hello")
    c2.now = lambda: 105.002
    c2.sent({"sender": "hello.2@c2", "receiver": "shell.1@c1.reply", "conv-id": "k",
             "conv-seq": 2, "protocol": "rpc", "performative": "inform_result"}, 5)  # fmt: skip
    # The trace exchange: asked at 200.0, answered at 200.010 (c1's clock); c2 said 205.005.
    shift = arcs.offset(200.0, 200.010, 205.005)
    assert abs(shift - (-5.0)) < 1e-9
    rows = arcs.merge([c1.read().as_dict(), c2.read().as_dict()], {"c2": shift})
    assert [r["performative"] for r in rows] == ["request", "inform_result"]
    assert abs(rows[1]["ts"] - 100.002) < 1e-6 and rows[0]["taken"] >= rows[0]["ts"]
    unshifted = arcs.merge([c1.read().as_dict(), c2.read().as_dict()])
    assert unshifted[1]["ts"] - unshifted[0]["ts"] > 4.9  # what skew would have shown


def test_select_by_pid_op_conversation_and_service() -> None:
    tap = MessageTap("c1")
    call(tap, "k1", "shell.1@c1", "hello.2@c1")
    tap.sent({"sender": "shell.1@c1", "receiver": "echo", "conv-id": "k2", "conv-seq": 1,
              "protocol": "rpc", "performative": "request", "op": "echo"}, 1)  # fmt: skip
    got = arcs.arcs(tap.read().rows)
    assert len(arcs.select(got, pid="hello.2@c1")) == 2
    assert [a.op for a in arcs.select(got, op="echo")] == ["echo"]
    assert len(arcs.select(got, conv_id="k1")) == 2
    assert [a.conv_id for a in arcs.select(got, service="hello")] == ["k1", "k1"]
    assert arcs.select(got, service="nothing") == []


def test_an_event_is_named_by_its_id() -> None:
    tap = MessageTap("c1")
    h = {"sender": "w.1@c1", "receiver": "ion.s.events", "conv-id": "e", "protocol": "none",
         "performative": "inform", "op": "event"}  # fmt: skip
    tap.event(h, 5, "1053.sup.2@c1")
    tap.event(h, 5, "9999.x")
    assert [a.op for a in arcs.arcs(tap.read().rows)] == ["child_restarted", "9999"]


def test_a_skew_within_half_the_round_trip_is_taken_as_none() -> None:
    assert arcs.offset(10.0, 10.004, 10.001) == 0.0  # -0.001 is within +-0.002
    assert abs(arcs.offset(10.0, 10.004, 9.0) - 1.002) < 1e-9
