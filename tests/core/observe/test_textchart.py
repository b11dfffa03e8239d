"""The text sequence chart: its shape, one line per arc, and lanes past the width."""

from __future__ import annotations

import re

from ion.core.observe.arcs import Lane
from ion.core.observe.msc import hms
from ion.core.observe.textchart import text_chart
from tests.core.observe.charts import T0, arc, every_kind


def columns(chart: str) -> dict[str, int]:
    """Where each lane's lifeline is, from the header of pids (centred on it)."""
    pids = chart.splitlines()[1]
    out = {}
    for word in pids.split():
        start = pids.index(word)
        out[word] = start + len(word) // 2
    return out


def test_headers_then_one_line_per_arc_with_its_time() -> None:
    chart = every_kind()
    text = text_chart(chart, width=120)
    lines = text.splitlines()
    assert len(lines) == 2 + len(chart)
    assert lines[0].split() == ["time", "store", "hello", "shell", "sup"]
    assert lines[1].split() == ["store", "hello.1@c1", "shell.2@c1", "sup.3@c2"]
    for line, a in zip(lines[2:], chart, strict=True):
        assert line.startswith(hms(a.ts) + "  ")
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.250", hms(T0 + 0.25))


def test_each_kind_has_its_mark_pointing_at_its_receiver() -> None:
    chart = every_kind()
    text = text_chart(chart, width=120)
    lines = text.splitlines()[2:]
    x = columns(text)
    hello, shell, sup = x["hello.1@c1"], x["shell.2@c1"], x["sup.3@c2"]
    request, reply, _, failure, event, exit_, loop, message = lines
    assert request[hello + 1] == "<" and "─" in request[hello:shell] and "hello" in request
    assert reply[shell - 1] == ">" and "- -" in reply and "result" in reply
    assert failure[shell - 1] == ">" and "!! result ERROR" in failure
    assert "[event proc.lifecycle]" in event
    assert exit_[hello + 1] == "x" and "sys_exit" in exit_ and exit_[sup] == "│"
    assert "↺ tick" in loop[sup:]
    assert "·" in message and "note" in message


def test_a_leftward_reply_is_dashed_from_its_head() -> None:
    back = [arc(0, "b.1@c", "a.2@c", "reply", "inform_result", "r")]
    line = text_chart(back, lane_list=[Lane("a.2@c", "a", "c"), Lane("b.1@c", "b", "c")],
                      width=80).splitlines()[2]  # fmt: skip
    assert "│<- - " in line


def test_names_longer_than_a_column_are_cut() -> None:
    long = "a-process-with-a-very-long-name"
    text = text_chart([arc(0, "x.1@c", "y.2@c", "request", "request", "op")],
                      names={"x.1@c": long}, width=120)  # fmt: skip
    header = text.splitlines()[0]
    assert long not in header and long[:10] in header and "…" in header


def test_one_lane_is_enough() -> None:
    text = text_chart([arc(0, "solo.1@c", "solo.1@c", "message", "", "self")], width=40)
    lines = text.splitlines()
    assert lines[0].split() == ["time", "solo"] and "↺ self" in lines[2]


def test_lanes_past_the_width_are_left_out_and_named() -> None:
    """At 50 columns only some lanes show; the rest are named under the chart,
    and an arc to one of them ends at the edge, saying which."""
    chart = every_kind()
    text = text_chart(chart, width=50)
    lines = text.splitlines()
    assert len(lines) == 2 + len(chart) + 1
    assert all(len(line) <= 50 for line in lines[:2])
    assert lines[0].split() == ["time", "store", "hello"]
    assert lines[-1].startswith("┆ 2 more lane(s) past the width (50 columns)")
    assert "shell (shell.2@c1)" in lines[-1] and "sup (sup.3@c2)" in lines[-1]
    request = lines[2]
    assert "┆" in request and "(shell.2@c1 ┆)" in request
    assert text_chart(chart, width=10).splitlines()[0].split() == ["time", "store"]


def test_no_arcs() -> None:
    assert text_chart([], width=80).splitlines()[-1] == "(no messages)"
