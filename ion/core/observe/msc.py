"""A message sequence chart of arcs, as a standalone SVG document.

One vertical lane per process, grouped by container, and one row per arc,
oldest on top (L{ion.core.observe.arcs}). Each arc is a
C{<g class="msg">} whose C{data-*} attributes say what it was (the web view
and the tests read them), with a C{<title>} that a browser shows on hover.
Every text taken from the data is escaped: a process may be named anything,
and the chart is shown inline in a web page. Styling is by presentation
attributes (no style element, which the web view's Content-Security-Policy
blocks, and no external URL), so the same text works inline in HTML and as a
downloaded C{.svg} file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from itertools import groupby
from xml.sax.saxutils import escape, quoteattr

from ion.core.observe import arcs as a
from ion.core.observe.arcs import Arc, Lane
from ion.core.process.outbox import REPLY_KEY_SUFFIX

SVG_NS = "http://www.w3.org/2000/svg"
ROW = 24  # px between arcs
LANE_W = 150  # px between lanes (more when names are long)
MAX_LANE_W = 270
GUTTER = 96  # the time column on the left
NAME_MAX = 36  # characters of a lane name shown (all of it in its title)
_CHAR_W = 7  # px of a 12px character, about
_BLACK, _GREY, _RED = "#222", "#666", "#c00"
# Characters XML 1.0 cannot hold at all (not even as references): replaced.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_ID = re.compile(r"[^A-Za-z0-9_-]")


def hms(ts: float) -> str:
    """A time as HH:MM:SS.mmm, local time."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S.%f")[:-3]


def chart_lanes(
    arc_list: Sequence[Arc], lane_list: Sequence[Lane] | None, names: dict[str, str] | None = None
) -> list[Lane]:
    """The lanes to draw: C{lane_list} (or L{arcs.lanes} of the arcs), and after
    it a lane for each end an arc has that the list lacks (a service name)."""
    found = a.lanes(arc_list, names)
    if lane_list is None:
        return found
    known = {ln.id for ln in lane_list}
    return list(lane_list) + [ln for ln in found if ln.id not in known]


def label_of(arc: Arc) -> str:
    """The text an arc is labelled with: its op (an event's: its routing key
    when it has none), and its status when that is not OK."""
    text = arc.op or (arc.dst if arc.kind == a.EVENT_KIND else "") or arc.performative
    if arc.status and arc.status != "OK":
        text += f" {arc.status}"
    return text


def details(arc: Arc) -> str:
    """The hover text of an arc: what it was, its conversation, protocol, time."""
    to = (
        f" (sent to {arc.to})"
        if arc.to and arc.to not in (arc.dst, arc.dst + REPLY_KEY_SUFFIX)
        else ""
    )
    lines = [
        f"{arc.kind}: {arc.performative} {arc.op}".rstrip(),
        f"from {arc.src} to {arc.dst}{to}",
        f"conv-id {arc.conv_id or '-'}",
        f"protocol {arc.protocol or '-'}",
        f"time {hms(arc.ts)} ({arc.ts:.3f})",
        f"size {arc.size} bytes",
    ]
    if arc.status:
        lines.insert(1, f"status {arc.status}")
    if arc.container:
        lines.append(f"row {arc.seq} of {arc.container}'s tap")
    return "\n".join(lines)


def _t(value: object) -> str:
    """Text content, escaped."""
    return escape(_NOT_XML.sub("\ufffd", str(value)))


def _q(value: object) -> str:
    """An attribute value, escaped and quoted."""
    return quoteattr(_NOT_XML.sub("\ufffd", str(value)))


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _markers(p: str) -> str:
    """The arrowheads and the cross, ids prefixed by C{p} (ids are per page)."""
    head = '<marker id="{id}" viewBox="0 0 10 10" refX="{rx}" refY="5" markerWidth="9" ' \
           'markerHeight="9" markerUnits="userSpaceOnUse" orient="auto">{path}</marker>'  # fmt: skip
    solid = '<path d="M0,0 L10,5 L0,10 z" fill="{c}"/>'
    open_ = '<path d="M0,0 L10,5 L0,10" fill="none" stroke="{c}" stroke-width="1.5"/>'
    cross = '<path d="M1,1 L9,9 M1,9 L9,1" stroke="{c}" stroke-width="2"/>'
    return "<defs>" + "".join(
        head.format(id=f"{p}-{name}", rx=rx, path=path.format(c=colour))
        for name, rx, path, colour in (
            ("arrow", 10, solid, _BLACK),
            ("open", 10, open_, _BLACK),
            ("red", 10, solid, _RED),
            ("cross", 5, cross, _BLACK),
        )
    ) + "</defs>"  # fmt: skip


def _stroke(arc: Arc, p: str) -> str:
    """The line attributes of an arc's kind."""
    if arc.kind == a.REQUEST:
        return f'stroke="{_BLACK}" stroke-width="1.5" marker-end="url(#{p}-arrow)"'
    if arc.kind == a.REPLY:
        dashed = 'stroke-dasharray="6 4"'
        return f'stroke="{_BLACK}" stroke-width="1.2" {dashed} marker-end="url(#{p}-open)"'
    if arc.kind == a.FAILURE:
        dash = "" if arc.performative == "request" else ' stroke-dasharray="6 4"'
        return f'stroke="{_RED}" stroke-width="1.5"{dash} marker-end="url(#{p}-red)"'
    if arc.kind == a.EXIT:
        return f'stroke="{_BLACK}" stroke-width="1.2" marker-end="url(#{p}-cross)"'
    return f'stroke="{_GREY}" stroke-width="1" marker-end="url(#{p}-open)"'  # a message


def _arc(arc: Arc, y: int, x: dict[str, int], lane_w: int, p: str) -> str:
    """The C{<g class="msg">} of one arc at height C{y}."""
    label = label_of(arc)
    colour = _RED if arc.kind == a.FAILURE else _BLACK
    attrs = " ".join(
        f"data-{k}={_q(v)}"
        for k, v in (
            ("perf", arc.performative), ("kind", arc.kind), ("op", arc.op),
            ("conv", arc.conv_id), ("seq", arc.seq), ("container", arc.container),
            ("src", arc.src), ("dst", arc.dst), ("ts", f"{arc.ts:.6f}"),
        )
    )  # fmt: skip
    parts = [
        f'<g class="msg" {attrs}><title>{_t(details(arc))}</title>',
        f'<text class="time" font-size="10" fill="#777" x="{GUTTER - 8}" y="{y + 4}" text-anchor="end">{_t(hms(arc.ts))}</text>',
    ]
    x1 = x[arc.src]
    if arc.kind == a.EVENT_KIND:
        w = min(lane_w - 12, len(label) * 6 + 14)
        parts.append(
            f'<rect x="{x1 - w / 2:.1f}" y="{y - 9}" width="{w}" height="18" rx="3" '
            f'fill="#fff4c8" stroke="#b08a00"/>'
            f'<text x="{x1}" y="{y + 4}" text-anchor="middle">{_t(label)}</text>'
        )
    elif arc.src == arc.dst:  # to itself: a small loop on the right of its lane
        parts.append(
            f'<path d="M{x1},{y - 7} h26 v14 h-24" fill="none" {_stroke(arc, p)}/>'
            f'<text x="{x1 + 30}" y="{y + 4}" fill="{colour}">{_t(label)}</text>'
        )
    else:
        x2 = x[arc.dst]
        parts.append(
            f'<line x1="{x1}" y1="{y}" x2="{x2}" y2="{y}" {_stroke(arc, p)}/>'
            f'<text x="{(x1 + x2) / 2}" y="{y - 4}" text-anchor="middle" fill="{colour}">'
            f"{_t(label)}</text>"
        )
    return "".join(parts) + "</g>"


def render_svg(
    arc_list: Iterable[Arc],
    lane_list: Sequence[Lane] | None = None,
    title: str | None = None,
    names: dict[str, str] | None = None,
    svg_id: str | None = "msc",
) -> str:
    """The chart of C{arc_list} as an SVG document (a string).

    @param lane_list: the lanes in order (default: L{arcs.lanes} of the arcs,
        with C{names}: pid to process name); an arc's end missing from it gets
        a lane after them.
    @param title: a heading above the chart (and the document's title).
    @param svg_id: the root element's id (None: none); it also prefixes the
        markers' ids, which must be unique in a page holding several charts.
    """
    arc_list = sorted(arc_list, key=lambda arc: arc.ts)  # (stable: equal times keep their order)
    lane_list = chart_lanes(arc_list, lane_list, names)
    longest = max((len(_short(ln.name, NAME_MAX)) for ln in lane_list), default=0)
    lane_w = max(LANE_W, min(MAX_LANE_W, longest * _CHAR_W + 24))
    p = _NOT_ID.sub("_", svg_id or "msc")
    top = 30 if title else 0
    head_y = top + 26  # container labels
    life_top = head_y + 46
    first = life_top + ROW
    height = first + max(len(arc_list), 1) * ROW
    width = GUTTER + len(lane_list) * lane_w + 40  # (room for a loop on the last lane)
    x = {ln.id: GUTTER + i * lane_w + lane_w // 2 for i, ln in enumerate(lane_list)}

    out = [
        f'<svg xmlns="{SVG_NS}"' + (f" id={_q(svg_id)}" if svg_id else "")
        + f' class="msc" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="sans-serif" font-size="12">',
        f"<title>{_t(title)}</title>" if title else "",
        _markers(p),
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
    ]  # fmt: skip
    if title:
        out.append(f'<text x="8" y="20" font-size="15" font-weight="bold">{_t(title)}</text>')
    i = 0
    for cid, group in groupby(lane_list, key=lambda ln: ln.container):
        members = list(group)
        x0 = GUTTER + i * lane_w
        i += len(members)
        box_w = len(members) * lane_w - 8
        heading = cid or "names"  # addressed, no process answered for them
        fits = max(4, (box_w - 16) // _CHAR_W)
        out.append(
            f'<g class="container" data-container={_q(cid)}><title>{_t(heading)}</title>'
            f'<rect x="{x0 + 4}" y="{top + 8}" width="{box_w}" height="{height - top - 12}" '
            f'rx="6" fill="#f4f7fa" stroke="#c9d3dd"/>'
            f'<text class="msc-cname" font-size="11" font-weight="bold" fill="#456" x="{x0 + 12}" y="{head_y}">{_t(_short(heading, fits))}</text>'
        )
        for ln in members:
            cx = x[ln.id]
            out.append(
                f'<g class="lane" data-id={_q(ln.id)} data-container={_q(ln.container)}>'
                f"<title>{_t(ln.name)}\n{_t(ln.id)}</title>"
                f'<line x1="{cx}" y1="{life_top}" x2="{cx}" y2="{height - 6}" stroke="#9aa5b1" '
                'stroke-dasharray="3 3"/>'
                f'<text x="{cx}" y="{head_y + 20}" text-anchor="middle" font-weight="bold">'
                f"{_t(_short(ln.name, NAME_MAX))}</text>"
                f'<text class="msc-pid" font-size="10" fill="#777" x="{cx}" y="{head_y + 34}" text-anchor="middle">'
                f"{_t(_short(ln.id, NAME_MAX + 8))}</text></g>"
            )
        out.append("</g>")
    for n, arc in enumerate(arc_list):
        out.append(_arc(arc, first + n * ROW, x, lane_w, p))
    if not arc_list:
        out.append(f'<text x="{GUTTER}" y="{first}" fill="#777">no messages</text>')
    out.append("</svg>")
    return "\n".join(part for part in out if part)
