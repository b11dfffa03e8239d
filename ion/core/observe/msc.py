"""A placeholder for the message sequence chart renderer (the real one draws
lanes and arcs); it keeps the signature and the DOM contract: one C{g.msg} per arc."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any


def render_svg(
    arc_list: Sequence[Any],
    lane_list: Sequence[Any] | None = None,
    title: str | None = None,
    names: dict[str, str] | None = None,
    svg_id: str = "msc",
) -> str:
    """An C{<svg>} with one C{g.msg} per arc, every text escaped."""
    height = 20 * (len(arc_list) + 2)
    parts = [f'<svg id="{escape(svg_id)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="600" height="{height}">']  # fmt: skip
    if title:
        parts.append(f'<text x="4" y="14">{escape(title)}</text>')
    for i, arc in enumerate(arc_list, 2):
        label = f"{arc.src} -> {arc.dst}: {arc.op or arc.performative}"
        parts.append(
            f'<g class="msg" data-perf="{escape(arc.performative)}" '
            f'data-kind="{escape(arc.kind)}"><text x="4" y="{20 * i}">{escape(label)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
