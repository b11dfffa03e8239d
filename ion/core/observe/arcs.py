"""From tap rows to the arcs and lanes of a message sequence chart.

One arc per message. The rows of several containers are merged first
(L{merge}): each container's times are moved onto the asking clock by the
offset its answer showed (Cristian's estimate: the middle of the round trip
against the clock it reported), and a message seen twice, sent in one
container and taken in another, becomes one arc from its send to the process
that took it. A request addressed to a service name is drawn to the process
that answered its conversation, when its answer is among the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ion.core.object.event_ids import EventId
from ion.core.observe.tap import EVENT, RECV, SEND
from ion.core.process.outbox import REPLY_KEY_SUFFIX

REQUEST, REPLY, FAILURE, EVENT_KIND, EXIT, MESSAGE = (
    "request", "reply", "failure", "event", "exit", "message",
)  # fmt: skip
_REPLIES = frozenset({"inform_result", "agree"})
_FAILURES = frozenset({"failure", "refuse"})
_EXITS = frozenset({"sys_exit", "sys_down"})


@dataclass
class Lane:
    """A lifeline: a process (by pid), or a name no process answered for."""

    id: str
    name: str
    container: str


@dataclass
class Arc:
    """One message of the chart.

    @ivar kind: L{REQUEST} (solid), L{REPLY} (dashed), L{FAILURE} (red),
        L{EVENT_KIND} (a box on C{src}), L{EXIT} (an exit signal: a cross) or
        L{MESSAGE} (any other one-way message).
    @ivar src: the sender's lane id; C{dst}: the receiver's (for an event, its
        routing key).
    """

    ts: float
    src: str
    dst: str
    kind: str
    performative: str
    op: str
    conv_id: str
    protocol: str
    status: str | None = None
    size: int = 0
    to: str = ""  # the address it was sent to (a service name, a pid)
    container: str = ""  # the container whose row it came from
    seq: int = 0  # that row's seq

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def kind_of(row: dict[str, Any]) -> str:
    """The kind of arc a row draws."""
    if row.get("dir") == EVENT:
        return EVENT_KIND
    perf = row.get("performative")
    if perf in _FAILURES or row.get("status") == "ERROR":
        return FAILURE
    if row.get("protocol") == "signal" and row.get("op") in _EXITS:
        return EXIT
    if perf in _REPLIES:
        return REPLY
    if perf == "request":
        return REQUEST
    return MESSAGE


def offset(asked: float, answered: float, remote_now: float) -> float:
    """Seconds to add to a remote clock's times to put them on the asking clock,
    from one exchange: asked and answered on this clock, C{remote_now} on its.

    The estimate is good to half the round trip; a skew within that cannot be
    told from none (clocks of one host, say), and is taken as none: shifting by
    noise would reorder messages a few milliseconds apart."""
    shift = (asked + answered) / 2 - remote_now
    return 0.0 if abs(shift) <= (answered - asked) / 2 else shift


def _key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row.get("sender"), row.get("conv_id"), row.get("conv_seq"),
            row.get("performative"), row.get("op"))  # fmt: skip


def merge(
    slices: Iterable[dict[str, Any]], offsets: dict[str, float] | None = None
) -> list[dict[str, Any]]:
    """The rows of several containers' C{get_trace} answers, on one clock,
    one per message, by time.

    C{offsets} (container id to seconds) moves each container's times; a
    send and its receive in another container become the send's row, with
    the receiving process as C{receiver} (and C{taken} the receive's time).
    """
    offsets = offsets or {}
    sends: dict[tuple[Any, ...], dict[str, Any]] = {}
    recvs: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for s in slices:
        shift = offsets.get(s.get("container", ""), 0.0)
        for row in s.get("rows", ()):
            row = {**row, "ts": row["ts"] + shift}
            if row["dir"] == RECV:
                recvs.append(row)
                continue
            if row["dir"] == SEND:
                sends.setdefault(_key(row), row)
            out.append(row)
    for row in recvs:
        sent = sends.get(_key(row))
        if sent is None or "taken" in sent:
            out.append(row)
            continue
        sent["receiver"], sent["receiver_name"] = row["receiver"], row["receiver_name"]
        sent["taken"] = max(row["ts"], sent["ts"])  # (a receive never precedes its send)
    out.sort(key=lambda r: r["ts"])
    return out


def _lane_of(key: str | None) -> str:
    key = key or "?"
    return key.removesuffix(REPLY_KEY_SUFFIX)


def arcs(rows: Iterable[dict[str, Any]]) -> list[Arc]:
    """One arc per row (rows as L{merge} or a single tap gives them)."""
    rows = list(rows)
    answered_by: dict[str, str] = {}  # conv-id -> the pid that answered it
    for row in rows:
        if row.get("performative") != "request" and row.get("conv_id") and row.get("sender"):
            answered_by.setdefault(row["conv_id"], row["sender"])
    out = []
    for row in rows:
        kind = kind_of(row)
        op = row.get("op") or ""
        if kind == EVENT_KIND and op == "event":
            op = event_name(row.get("to"))
        dst = _lane_of(row.get("receiver"))
        if kind == REQUEST and "@" not in dst and row.get("conv_id") in answered_by:
            dst = answered_by[row["conv_id"]]  # the service's process that answered
        out.append(
            Arc(
                ts=row["ts"], src=_lane_of(row.get("sender")), dst=dst, kind=kind,
                performative=row.get("performative") or "", op=op,
                conv_id=row.get("conv_id") or "", protocol=row.get("protocol") or "",
                status=row.get("status"), size=row.get("size") or 0, to=row.get("to") or "",
                container=row.get("container", ""), seq=row.get("seq", 0),
            )
        )  # fmt: skip
    return out


def event_name(key: str | None) -> str:
    """What an event's routing key (C{<event id>.<origin>}) says it is."""
    head = (key or "").partition(".")[0]
    try:
        return EventId(int(head)).name.lower()
    except ValueError:
        return head or "event"


def lanes(arc_list: Iterable[Arc], names: dict[str, str] | None = None) -> list[Lane]:
    """The lanes the arcs touch, sorted by container, then name, then id.

    C{names} maps a pid to its process name (else the name is the pid's first
    part); a lane's container is that of its pid, or empty (a service name).
    """
    names = names or {}
    seen: dict[str, Lane] = {}
    for arc in arc_list:
        ends = (arc.src,) if arc.kind == EVENT_KIND else (arc.src, arc.dst)
        for lane_id in ends:
            if lane_id in seen:
                continue
            head, at, cid = lane_id.partition("@")
            name = names.get(lane_id) or (head.rsplit(".", 1)[0] if at else lane_id)
            seen[lane_id] = Lane(lane_id, name, cid)
    return sorted(seen.values(), key=lambda ln: (ln.container, ln.name, ln.id))


def lane_names(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Process names the rows tell (pid to name)."""
    names: dict[str, str] = {}
    for row in rows:
        if row.get("sender") and row.get("sender_name"):
            names[_lane_of(row["sender"])] = row["sender_name"]
        if row.get("receiver_name") and row.get("receiver"):
            names[_lane_of(row["receiver"])] = row["receiver_name"]
    return names


def select(
    arc_list: Iterable[Arc],
    pid: str | None = None,
    service: str | None = None,
    op: str | None = None,
    conv_id: str | None = None,
) -> list[Arc]:
    """The arcs that match every filter given: C{pid} at either end, C{service}
    (a name addressed, or the conversations one opened), C{op}, C{conv_id}."""
    out = list(arc_list)
    if pid:
        out = [a for a in out if pid in (a.src, a.dst)]
    if op:
        out = [a for a in out if a.op == op]
    if conv_id:
        out = [a for a in out if a.conv_id == conv_id]
    if service:
        convs = {a.conv_id for a in out if a.to == service}
        out = [a for a in out if a.to == service or (a.conv_id and a.conv_id in convs)]
    return out


def last_arcs(
    rows: list[dict[str, Any]],
    n: int,
    pid: str | None = None,
    service: str | None = None,
    op: str | None = None,
    conv_id: str | None = None,
    since: float | None = None,
) -> tuple[list[Arc], dict[str, str]]:
    """The last C{n} arcs of C{rows} that match every filter given (L{select};
    C{since}: a time), and the process names the rows tell (L{lane_names})."""
    found = select(arcs(rows), pid=pid, service=service, op=op, conv_id=conv_id)
    if since is not None:
        found = [a for a in found if a.ts >= since]
    return found[-n:], lane_names(rows)
