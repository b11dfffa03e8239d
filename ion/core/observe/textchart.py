"""A message sequence chart as plain text, for the terminal.

Lane headers on top, then one line per arc, oldest first, with its time on
the left::

    time             hello       shell
                   hello.1@c1  shell.2@c1
    12:00:01.000        │<── hello ─│
    12:00:01.100        │- - - - - >│ result
    12:00:01.200        │<─── nope ─│
    12:00:01.300        │- - - - - >│ !! result ERROR

A request is C{───>}, a reply C{- - >}, another message C{···>}, an exit
signal ends in C{x}, a failure is marked C{!!} and an event is a box
C{[event op]} on its sender's lane. Lanes that do not fit the width are
left out and named under the chart; their arcs end at the right edge.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence

from ion.core.observe import arcs as a
from ion.core.observe.arcs import Arc, Lane
from ion.core.observe.msc import chart_lanes, hms, label_of

TIME_W = 14  # "HH:MM:SS.mmm  "
MIN_COL, MAX_COL = 10, 20
_FILL = {a.REQUEST: "─", a.REPLY: "- ", a.FAILURE: "- ", a.EXIT: "─", a.MESSAGE: "·"}


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def _line_between(kind: str, length: int, rightwards: bool) -> str:
    """The arc's body between two lanes (C{length} characters), its head at the far end."""
    head = "x" if kind == a.EXIT else (">" if rightwards else "<")
    pattern = _FILL.get(kind, "─")
    body = (pattern * length)[: max(0, length - 1)]
    return body + head if rightwards else head + body


def text_chart(
    arc_list: Iterable[Arc],
    lane_list: Sequence[Lane] | None = None,
    width: int | None = None,
    names: dict[str, str] | None = None,
) -> str:
    """The chart of C{arc_list} as text, at most C{width} columns wide (default:
    the terminal's) but for labels that run past the last lane."""
    arc_list = sorted(arc_list, key=lambda arc: arc.ts)
    lane_list = chart_lanes(arc_list, lane_list, names)
    if width is None:
        width = shutil.get_terminal_size((100, 24)).columns
    longest = max((max(len(ln.name), len(ln.id)) for ln in lane_list), default=0)
    col = max(MIN_COL, min(MAX_COL, longest + 2))
    shown = max(1, min(len(lane_list), (width - TIME_W - 1) // col))
    hidden = lane_list[shown:]
    hidden_ids = {ln.id for ln in hidden}
    # Lane i's lifeline is in the middle of its column; hidden lanes all sit at
    # the right edge, past the last shown lane.
    edge = TIME_W + shown * col
    x = {ln.id: TIME_W + i * col + col // 2 for i, ln in enumerate(lane_list[:shown])}
    x.update({ln.id: edge for ln in hidden})
    total = edge + (1 if hidden else 0)

    def heading(texts: list[str], first: str) -> str:
        row = first.ljust(TIME_W)
        for text in texts:
            row += _fit(text, col - 1).center(col)
        return row.rstrip()

    out = [
        heading([ln.name for ln in lane_list[:shown]], "time"),
        heading([ln.id for ln in lane_list[:shown]], ""),
    ]
    for arc in arc_list:
        cells = [" "] * total
        for lane_x in set(x.values()):
            cells[lane_x] = "┆" if hidden and lane_x == edge else "│"
        label = label_of(arc)
        if arc.kind == a.FAILURE:
            label = "!! " + label
        ends = (arc.src,) if arc.kind == a.EVENT_KIND else (arc.src, arc.dst)
        off = list(dict.fromkeys(end for end in ends if end in hidden_ids))
        if off:
            label += " (" + ", ".join(off) + " ┆)"
        x1 = x[arc.src]
        suffix = ""
        if arc.kind == a.EVENT_KIND:
            box = f"[event {label}]"
            start = max(TIME_W, x1 - len(box) // 2)
            cells = _put(cells, start, box)
        elif arc.src == arc.dst:
            cells = _put(cells, x1 + 1, "↺ " + label)
        else:
            x2 = x[arc.dst]
            lo, hi = min(x1, x2), max(x1, x2)
            body = _line_between(arc.kind, hi - lo - 1, x2 > x1)
            inner = f" {label} "
            if len(inner) + 4 <= len(body):  # the label inside the arc, after its tail
                at = 1 if x2 > x1 else len(body) - len(inner) - 1
                body = body[:at] + inner + body[at + len(inner) :]
            else:
                suffix = " " + label
            cells = _put(cells, lo + 1, body)
            if suffix:
                cells = _put(cells, hi + 1, suffix)
        out.append((hms(arc.ts).ljust(TIME_W) + "".join(cells[TIME_W:])).rstrip())
    if not arc_list:
        out.append("(no messages)")
    if hidden:
        out.append(
            f"┆ {len(hidden)} more lane(s) past the width ({width} columns), drawn at the "
            "right edge: " + ", ".join(f"{ln.name} ({ln.id})" for ln in hidden)
        )
    return "\n".join(out)


def _put(cells: list[str], at: int, text: str) -> list[str]:
    """C{cells} with C{text} written from column C{at} (longer if need be)."""
    if len(cells) < at + len(text):
        cells = cells + [" "] * (at + len(text) - len(cells))
    cells[at : at + len(text)] = list(text)
    return cells
