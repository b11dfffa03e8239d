"""Arcs as mscgen text, and a reader of that text.

The export draws with the mscgen tool (C{mscgen -T png chart.msc}) or the
editors that read its language. Each lane is an entity named by its id (a
pid, quoted) and labelled with its process name; each arc is one statement:
C{=>} a request, C{>>} a reply, C{->} another message, C{-x} an exit signal,
C{a box a} an event, and a failure is red (C{linecolor="red"}).

The reader (L{parse_mscgen}) is a small one of our own for the subset the
export writes (options, one entity list, arcs and boxes, attribute lists,
comments; the reverse arrows too): mscgen itself is an external C program,
and the JavaScript reader is GPL. In a quoted string a backslash escapes the
next character, and C{\\n} is a line break (as mscgen shows it in a label).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ion.core.exception import IonError
from ion.core.observe import arcs as a
from ion.core.observe.arcs import Arc, Lane
from ion.core.observe.msc import chart_lanes, hms, label_of

#: The arrow each kind of arc is written with.
ARROW = {
    a.REQUEST: "=>", a.REPLY: ">>", a.FAILURE: ">>", a.EXIT: "-x",
    a.MESSAGE: "->", a.EVENT_KIND: "box",
}  # fmt: skip
_KIND_OF = {"=>": a.REQUEST, ">>": a.REPLY, "->": a.MESSAGE, "-x": a.EXIT,
            "=>>": a.MESSAGE, ":>": a.MESSAGE}  # fmt: skip
_REVERSED = {"<=": "=>", "<<": ">>", "<-": "->", "<<=": "=>>", "<:": ":>"}
_BOXES = frozenset({"box", "rbox", "abox", "note"})
_RED = ' [label={label}, linecolor="red", textcolor="red"]'
_TOKEN = re.compile(
    r"""(?P<skip>\s+|\#[^\n]*|//[^\n]*|/\*.*?\*/)
      |(?P<str>"(?:\\.|[^"\\])*")
      |(?P<arrow><<=|=>>|=>|<=|>>|<<|->|<-|-x|:>|<:)
      |(?P<punct>[{}\[\],;=])
      |(?P<word>[A-Za-z0-9_.]+)""",
    re.X | re.S,
)
_OPTIONS = frozenset({"hscale", "width", "arcgradient", "wordwraparcs"})


class MscgenError(IonError):
    """The text is not mscgen this reader knows (the message says where)."""


@dataclass
class Chart:
    """A parsed chart: C{options} (name to value), C{entities} (dicts: name,
    label, attrs) and C{arcs} (dicts: src, dst, arrow, label, attrs, kind),
    in the order written. An arc's C{arrow} is the forward one (C{b<=a} reads
    as C{a=>b}); a box's C{dst} is its C{src}."""

    options: dict[str, str] = field(default_factory=dict)
    entities: list[dict[str, Any]] = field(default_factory=list)
    arcs: list[dict[str, Any]] = field(default_factory=list)


def quote(text: str) -> str:
    """C{text} as an mscgen quoted string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def unquote(token: str) -> str:
    """The text of a quoted string (the reverse of L{quote})."""
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], token[1:-1], flags=re.S)


def to_mscgen(
    arc_list: Iterable[Arc], lane_list: Sequence[Lane] | None = None,
    names: dict[str, str] | None = None,
) -> str:  # fmt: skip
    """The chart of C{arc_list} in mscgen's language (lanes as L{msc.render_svg} has them)."""
    arc_list = sorted(arc_list, key=lambda arc: arc.ts)
    lane_list = chart_lanes(arc_list, lane_list, names)
    span = f", {hms(arc_list[0].ts)} to {hms(arc_list[-1].ts)}" if arc_list else ""
    lines = [
        f"# {len(arc_list)} messages{span}",
        "msc {",
        f'  hscale="{max(1.0, len(lane_list) / 4):g}";',
    ]
    if lane_list:
        entities = ",\n  ".join(f"{quote(ln.id)} [label={quote(ln.name)}]" for ln in lane_list)
        lines.append(f"  {entities};")
    for arc in arc_list:
        label = quote(label_of(arc))
        src = quote(arc.src)
        if arc.kind == a.EVENT_KIND:
            lines.append(f"  {src} box {src} [label={label}];")
            continue
        arrow = ARROW.get(arc.kind, "->")
        if arc.kind == a.FAILURE and arc.performative == "request":
            arrow = "=>"  # a request that failed on its way (status ERROR)
        attrs = _RED.format(label=label) if arc.kind == a.FAILURE else f" [label={label}]"
        lines.append(f"  {src} {arrow} {quote(arc.dst)}{attrs};")
    lines.append("}")
    return "\n".join(lines) + "\n"


class _Reader:
    """Tokens of the text, read in order."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str, int]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise MscgenError(f"line {_line(text, pos)}: unexpected {text[pos : pos + 10]!r}")
            if m.lastgroup != "skip":
                value = unquote(m[0]) if m.lastgroup == "str" else m[0]
                self.tokens.append((m.lastgroup or "", value, _line(text, pos)))
            pos = m.end()
        self.i = 0

    def peek(self, ahead: int = 0) -> tuple[str, str, int]:
        i = self.i + ahead
        return self.tokens[i] if i < len(self.tokens) else ("end", "", -1)

    def take(self, *values: str) -> tuple[str, str, int]:
        tok = self.peek()
        if values and (tok[0] not in ("punct", "word") or tok[1] not in values):
            self.fail(" or ".join(repr(v) for v in values))
        self.i += 1
        return tok

    def name(self) -> str:
        kind, value, _ = self.peek()
        if kind not in ("word", "str"):
            self.fail("a name")
        self.i += 1
        return value

    def fail(self, wanted: str) -> None:
        kind, value, line = self.peek()
        where = "the end" if kind == "end" else f"line {line}: {value!r}"
        raise MscgenError(f"expected {wanted} at {where}")


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _attrs(r: _Reader) -> dict[str, str]:
    out: dict[str, str] = {}
    if r.peek()[:2] != ("punct", "["):
        return out
    r.take("[")
    while True:
        key = r.name().lower()
        r.take("=")
        out[key] = r.name()
        if r.take(",", "]")[1] == "]":
            return out


def parse_mscgen(text: str) -> Chart:
    """Read a chart written by L{to_mscgen} (or by hand, in the same subset).

    @raise MscgenError: it is not that subset, or an arc names an entity not declared.
    """
    r = _Reader(text)
    chart = Chart()
    r.take("msc")
    r.take("{")
    declared: set[str] = set()
    while r.peek()[:2] != ("punct", "}"):
        if r.peek()[0] == "end":
            r.fail("'}'")
        while True:  # one statement: items separated by commas
            first = r.name()
            nxt = r.peek()
            if nxt[:2] == ("punct", "=") and first.lower() in _OPTIONS:
                r.take("=")
                chart.options[first.lower()] = r.name()
            elif nxt[0] == "arrow" or (nxt[0] == "word" and nxt[1].lower() in _BOXES):
                chart.arcs.append(_arc(r, first, declared))
            else:
                attrs = _attrs(r)
                declared.add(first)
                chart.entities.append(
                    {"name": first, "label": attrs.get("label", first), "attrs": attrs}
                )
            if r.take(",", ";")[1] == ";":
                break
    r.take("}")
    if r.peek()[0] != "end":
        r.fail("nothing after '}'")
    return chart


def _arc(r: _Reader, src: str, declared: set[str]) -> dict[str, Any]:
    _, arrow, line = r.take()
    arrow = arrow.lower()
    dst = r.name()
    for end in (src, dst):
        if end not in declared:
            raise MscgenError(f"line {line}: entity {end!r} is not declared")
    if arrow in _REVERSED:
        arrow, src, dst = _REVERSED[arrow], dst, src
    attrs = _attrs(r)
    if arrow in _BOXES:
        kind = a.EVENT_KIND
    elif attrs.get("linecolor", attrs.get("linecolour", "")).lower() == "red":
        kind = a.FAILURE
    else:
        kind = _KIND_OF[arrow]
    label = attrs.get("label", "")
    return {"src": src, "dst": dst, "arrow": arrow, "label": label, "attrs": attrs, "kind": kind}
