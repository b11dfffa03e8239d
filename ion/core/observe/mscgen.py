"""A placeholder for the mscgen text writer: one line per arc, same signature."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def to_mscgen(arc_list: Sequence[Any], lane_list: Sequence[Any] | None = None) -> str:
    """The arcs as mscgen text."""
    lanes = [lane.id for lane in lane_list or ()]
    lines = ["msc {", "  " + ", ".join(f'"{lane}"' for lane in lanes) + ";"]
    for arc in arc_list:
        lines.append(f'  "{arc.src}" -> "{arc.dst}" [label="{arc.op or arc.performative}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"
