"""The SVG sequence chart: one lane per process grouped by container, one
C{g.msg} per arc drawn by its kind, every text from the data escaped."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.exception import ReceivedApplicationError
from ion.core.messaging import message as m
from ion.core.observe import arcs
from ion.core.observe.arcs import Lane
from ion.core.observe.msc import ROW, hms, render_svg
from ion.core.observe.tap import MessageTap
from ion.core.process.process import Process
from ion.services.hello import HelloService
from tests.core.observe.charts import T0, arc, every_kind
from tests.helpers import wait_for

NS = {"s": "http://www.w3.org/2000/svg"}
XSS = "<img src=x onerror=alert(1)>"


def parsed(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def msgs(root: ET.Element) -> list[ET.Element]:
    return root.findall(".//s:g[@class='msg']", NS)


def lane_ids(root: ET.Element) -> list[str]:
    return [g.get("data-id", "") for g in root.findall(".//s:g[@class='lane']", NS)]


def stroke_of(g: ET.Element) -> ET.Element:
    """The line (or loop) an arc is drawn with."""
    found = g.find("s:line", NS)
    return found if found is not None else g.find("s:path", NS)  # type: ignore[return-value]


def test_w3_four_arcs_with_a_failure_parse_as_four_messages_on_sorted_lanes() -> None:
    """W3: four arcs, one a failure, give valid XML with exactly four g.msg, one
    of performative failure, and the lanes sorted by container, then name."""
    four = [
        arc(0.0, "zeta.1@c1", "alpha.2@c2", "request", "request", "get"),
        arc(0.1, "alpha.2@c2", "zeta.1@c1", "reply", "inform_result", "result", status="OK"),
        arc(0.2, "zeta.1@c1", "beta.3@c1", "request", "request", "put"),
        arc(0.3, "beta.3@c1", "zeta.1@c1", "failure", "failure", "result", status="ERROR"),
    ]
    root = parsed(render_svg(four))
    assert len(msgs(root)) == 4
    assert [g.get("data-perf") for g in msgs(root)].count("failure") == 1
    assert lane_ids(root) == ["beta.3@c1", "zeta.1@c1", "alpha.2@c2"]
    containers = root.findall(".//s:g[@class='container']", NS)
    assert [c.get("data-container") for c in containers] == ["c1", "c2"]
    # each lane sits in its container's group, with its name and pid as header
    first = containers[0].findall("s:g[@class='lane']", NS)
    assert [[t.text for t in g.findall("s:text", NS)] for g in first] == [
        ["beta", "beta.3@c1"],
        ["zeta", "zeta.1@c1"],
    ]


def test_arcs_run_top_to_bottom_in_time_order_with_their_data() -> None:
    """Arcs given out of order are drawn by time, a row apart, each g.msg
    carrying its performative, kind, op, conversation and row seq."""
    chart = every_kind()
    root = parsed(render_svg(list(reversed(chart))))
    drawn = msgs(root)
    assert [g.get("data-seq") for g in drawn] == [str(a.seq) for a in chart]
    ys = [float(g.find("s:text[@class='time']", NS).get("y", "")) for g in drawn]  # type: ignore[union-attr]
    assert all(b - a == ROW for a, b in zip(ys, ys[1:], strict=False))
    first = drawn[0]
    assert (first.get("data-perf"), first.get("data-kind"), first.get("data-op")) == (
        "request", "request", "hello",
    )  # fmt: skip
    assert first.get("data-conv") == "conv-hello"
    assert first.find("s:text[@class='time']", NS).text == hms(T0)  # type: ignore[union-attr]


def test_each_kind_is_drawn_its_own_way() -> None:
    """Request solid with an arrowhead, reply dashed, failure red, event a box on
    its sender's lane, exit ending in a cross, message thin, a self-message a loop."""
    root = parsed(render_svg(every_kind()))
    by_seq = {g.get("data-seq"): g for g in msgs(root)}
    markers = {mk.get("id") for mk in root.findall(".//s:defs/s:marker", NS)}
    request, reply, failure = (stroke_of(by_seq[s]) for s in ("1", "2", "4"))
    assert (
        request.get("stroke-dasharray") is None and request.get("marker-end") == "url(#msc-arrow)"
    )
    assert reply.get("stroke-dasharray") and reply.get("stroke") == request.get("stroke")
    assert failure.get("stroke") == "#c00" and failure.get("marker-end") == "url(#msc-red)"
    assert by_seq["4"].find("s:text[@fill='#c00']", NS).text == "result ERROR"  # type: ignore[union-attr]
    event = by_seq["5"]
    assert event.find("s:line", NS) is None and event.find("s:rect", NS) is not None
    assert [t.text for t in event.findall("s:text", NS)][-1] == "proc.lifecycle"
    hello_x = float(root.find(".//s:g[@data-id='hello.1@c1']/s:line", NS).get("x1", ""))  # type: ignore[union-attr]
    rect = event.find("s:rect", NS)
    assert rect is not None
    assert float(rect.get("x", "")) + float(rect.get("width", "")) / 2 == hello_x  # on its lane
    assert stroke_of(by_seq["6"]).get("marker-end") == "url(#msc-cross)"
    assert stroke_of(by_seq["8"]).get("stroke-width") == "1"
    loop = by_seq["7"]
    assert loop.find("s:line", NS) is None and loop.find("s:path", NS) is not None
    used = {
        re.sub(r"url\(#(.*)\)", r"\1", stroke_of(g).get("marker-end", ""))
        for g in by_seq.values()
        if stroke_of(g) is not None
    }
    assert used <= markers


def test_hover_title_tells_conversation_protocol_performative_and_time() -> None:
    root = parsed(render_svg(every_kind()[:1]))
    title = msgs(root)[0].find("s:title", NS)
    assert title is not None and title.text is not None
    for part in ("conv-id conv-hello", "protocol rpc", "request: request hello", hms(T0)):
        assert part in title.text


def test_an_arc_to_a_lane_not_listed_gets_its_lane() -> None:
    """A lane list that lacks an arc's end (a service name) is extended with it."""
    chart = every_kind()
    given = [Lane("shell.2@c1", "shell", "c1"), Lane("hello.1@c1", "hello", "c1")]
    root = parsed(render_svg(chart, lane_list=given))
    ids = lane_ids(root)
    assert ids[:2] == ["shell.2@c1", "hello.1@c1"]
    assert set(ids[2:]) == {"sup.3@c2", "store"}
    assert "proc.lifecycle" not in ids  # an event's routing key is no lane
    assert len(msgs(root)) == len(chart)


def test_w4_names_ops_and_ids_from_the_data_are_only_ever_text() -> None:
    """W4 (SVG): a process named like an HTML element and ops, conversations and
    containers holding & \" < > come out as the very same text, never markup."""
    evil = f'{XSS}@c"<1>'
    op = "a&b\"<c>'"
    conv = '"><script>alert(2)</script>'
    chart = [
        arc(0, evil, "ok.1@c1", "request", "request", op, conv_id=conv),
        arc(1, "ok.1@c1", evil, "failure", "failure", op, status="<ERROR&>", conv_id=conv),
        arc(2, evil, "ev&nt<key>", "event", "", "", protocol="event"),
    ]
    svg = render_svg(chart, names={evil: XSS}, title=XSS)
    root = parsed(svg)
    assert "<img" not in svg and "<script" not in svg
    tags = {el.tag.split("}")[-1] for el in root.iter()}
    assert tags <= {"svg", "title", "style", "defs", "marker", "path", "rect", "g", "text", "line"}
    lane = root.find(f".//s:g[@class='lane'][@data-id='{evil}']", NS)
    assert lane is not None and lane.get("data-container") == 'c"<1>'
    assert [t.text for t in lane.findall("s:text", NS)] == [XSS, evil]
    box = root.find(".//s:g[@class='container']", NS)
    assert box is not None and box.get("data-container") == 'c"<1>'
    first, second, event = msgs(root)
    assert (first.get("data-op"), first.get("data-conv")) == (op, conv)
    assert first.findall("s:text", NS)[-1].text == op
    assert second.findall("s:text", NS)[-1].text == f"{op} <ERROR&>"
    assert event.findall("s:text", NS)[-1].text == "ev&nt<key>"
    assert root.find("s:title", NS).text == XSS  # type: ignore[union-attr]


def test_characters_xml_cannot_hold_are_replaced_not_fatal() -> None:
    chart = [arc(0, "a\x00b.1@c1", "c\x1b.2@c1", "request", "request", "op\x07")]
    root = parsed(render_svg(chart))
    assert msgs(root)[0].get("data-op") == "op\ufffd"


def test_a_standalone_svg_sized_to_its_lanes_and_arcs_with_no_outside_url() -> None:
    chart = every_kind()
    svg = render_svg(chart)
    root = parsed(svg)
    width, height = int(root.get("width", "")), int(root.get("height", ""))
    assert root.get("viewBox") == f"0 0 {width} {height}" and root.get("id") == "msc"
    assert height >= len(chart) * ROW and width >= 4 * 150  # four lanes
    assert re.findall(r"https?://", svg) == ["http://"]  # the namespace only
    assert all(u.startswith("url(#") for u in re.findall(r"url\([^)]*\)", svg))
    more = parsed(render_svg(chart * 2))
    assert int(more.get("height", "")) == height + len(chart) * ROW
    bare = parsed(render_svg(chart, svg_id=None))
    assert bare.get("id") is None
    other = render_svg(chart, svg_id="two")
    assert 'id="two"' in other and "url(#two-arrow)" in other and "url(#msc-" not in other


def test_no_arcs_is_still_a_chart() -> None:
    root = parsed(render_svg([]))
    assert msgs(root) == [] and lane_ids(root) == []
    assert "no messages" in ET.tostring(root, encoding="unicode")


def test_rows_of_a_message_tap_give_one_msg_per_row() -> None:
    """The rows a MessageTap records, made arcs, draw one g.msg each."""
    tap = MessageTap("c1", now=iter(T0 + i / 10 for i in range(100)).__next__)
    call = {m.SENDER: "a.1@c1", m.SENDER_NAME: "a", m.RECEIVER: "svc", m.CONV_ID: "k1",
            m.CONV_SEQ: 1, m.PROTOCOL: "rpc", m.PERFORMATIVE: "request", m.OP: "get"}  # fmt: skip
    answer = {m.SENDER: "b.2@c1", m.SENDER_NAME: "b", m.RECEIVER: "a.1@c1.reply", m.CONV_ID: "k1",
              m.CONV_SEQ: 2, m.PROTOCOL: "rpc", m.PERFORMATIVE: "failure", m.OP: "result",
              m.STATUS: "ERROR"}  # fmt: skip
    tap.sent(call, 100)
    tap.sent(answer, 120)
    tap.event({m.SENDER: "b.2@c1", m.OP: "ping"}, 10, "ev.key")
    rows = tap.read().rows
    root = parsed(render_svg(arcs.arcs(rows), names=arcs.lane_names(rows)))
    assert len(msgs(root)) == len(rows) == 3
    assert [g.get("data-kind") for g in msgs(root)] == ["request", "failure", "event"]
    assert lane_ids(root) == ["a.1@c1", "b.2@c1"]  # the service call drawn to who answered


class _Caller(Process):
    name = "caller"


@pytest_twisted.ensureDeferred
async def test_a_real_containers_tap_draws_every_row(container: Container) -> None:
    """A call that works and one that fails, on the embedded broker: the tap's
    rows (request, reply, request, failure) draw as that many g.msg."""
    await container.spawn(HelloService)
    caller = await container.spawn(_Caller)
    assert await wait_for(caller.rpc_send("hello", "hello", "you")) == {"value": "Hello there, you"}
    with pytest.raises(ReceivedApplicationError, match="nope"):
        await wait_for(caller.rpc_send("hello", "nope"))
    assert container.tap is not None
    rows: list[dict[str, Any]] = container.tap.read().rows
    root = parsed(render_svg(arcs.arcs(rows), names=arcs.lane_names(rows)))
    assert len(rows) == 4 and len(msgs(root)) == len(rows)
    assert [g.get("data-kind") for g in msgs(root)] == ["request", "reply", "request", "failure"]
    assert lane_ids(root) == [str(caller.id), str(container.proc_manager.find("hello").id)]  # type: ignore[union-attr]
