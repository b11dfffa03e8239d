"""The message tap: a ring of the last messages a container sent and took.

Each row holds what a message was, never its content: the time, the
direction, sender and receiver, conversation, protocol, performative, op,
status, size, content type and user id. A message sent and taken in the same
container is one row (its C{send}); a container records a C{recv} only for a
message from another container, so the rows of all containers, merged
(L{ion.core.observe.arcs}), hold each message once as a send, once as a receive
or as both. Events published are rows of direction C{event}.

Not recorded: membership chatter (protocol C{cc}: a heartbeat a second from
each peer would push everything else out) and the observer's own reads
(L{QUIET_OPS}), so looking does not change what is seen.

Row numbers (C{seq}) keep rising past eviction; a read from a number already
evicted says so with a gap. A container with the tap off has no tap at all
(C{exchange.tap is None}): the hooks cost one attribute test.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ion.core.messaging import message as m

SEND, RECV, EVENT = "send", "recv", "event"

#: The fields of a row, in order (L{TraceSlice.rows} are dicts of these).
FIELDS = (
    "seq", "ts", "dir", "container", "sender", "sender_name", "to", "receiver",
    "receiver_name", "conv_id", "conv_seq", "protocol", "performative", "op", "status", "size",
    "content_type", "user_id",
)  # fmt: skip

DEFAULT_SIZE = 2000
#: Operations not recorded: what the observer itself asks the agents.
QUIET_OPS = frozenset({"get_trace", "get_info"})
_QUIET_PROTOCOLS = frozenset({"cc"})
_QUIET_KEPT = 256
# The headers a row shows; a received message's others are not kept, and long
# or odd values of these are kept short (another system's sender may send 1 MB).
_ROW_HEADERS = (m.SENDER, m.SENDER_NAME, m.RECEIVER, m.CONV_ID, m.CONV_SEQ, m.PROTOCOL,
                m.PERFORMATIVE, m.OP, m.STATUS, m.ENCODING, m.USER_ID)  # fmt: skip
_KEPT_LENGTH = 256


@dataclass
class TraceSlice:
    """The rows after a given C{seq}.

    @ivar rows: row dicts (L{FIELDS}), oldest first.
    @ivar last: the seq of the newest row the tap ever wrote (0: none yet).
    @ivar gap: (first, last) seqs asked for but already evicted, or None.
    @ivar container: the container whose tap it is.
    @ivar now: that container's clock when it answered (for clock skew).
    """

    rows: list[dict[str, Any]]
    last: int
    gap: tuple[int, int] | None = None
    container: str = ""
    now: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (the agent's C{get_trace} answer)."""
        return {
            "container": self.container,
            "now": self.now,
            "last": self.last,
            "gap": list(self.gap) if self.gap else None,
            "rows": self.rows,
        }


class MessageTap:
    """The ring of one container's message rows.

    @param container: the container id, stamped on every row.
    @param size: how many rows are kept (the oldest go first).
    @param now: the clock rows are stamped with (seconds since the epoch).
    """

    def __init__(
        self, container: str, size: int = DEFAULT_SIZE, now: Callable[[], float] = time.time
    ) -> None:
        if size < 1:
            raise ValueError("the tap keeps at least one row")
        self.container = container
        self.size = size
        self.now = now
        self._rows: deque[tuple[Any, ...]] = deque(maxlen=size)
        self._seq = 0
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self._suffix = "@" + container
        self._quiet_convs: dict[Any, None] = {}  # conversations of QUIET_OPS, answer not seen

    @property
    def last(self) -> int:
        """The seq of the newest row (0: none yet)."""
        return self._seq

    def sent(self, headers: dict[str, Any], size: int, content: Any = None) -> None:
        """Record a message this container sends."""
        self._add(SEND, headers, size, None, None, content)

    def received(
        self, headers: dict[str, Any], size: int, pid: str, name: str, content: Any = None
    ) -> None:
        """Record a message process C{pid} (named C{name}) took, when another
        container sent it (a send from here is already a row)."""
        sender = headers.get(m.SENDER)
        if isinstance(sender, str) and sender.endswith(self._suffix):
            return
        self._add(RECV, _kept(headers), size, pid, name, content)

    def event(self, headers: dict[str, Any], size: int, key: str) -> None:
        """Record an event published (C{key}: its routing key)."""
        self._add(EVENT, {**headers, m.RECEIVER: key}, size, None, None, None)

    def _add(
        self,
        direction: str,
        h: dict[str, Any],
        size: int,
        pid: str | None,
        name: str | None,
        content: Any,
    ) -> None:
        if h.get(m.PROTOCOL) in _QUIET_PROTOCOLS or self._quiet(h):
            return
        self._seq += 1
        # The cheap part only: a copy of the headers (a handler may change its
        # message's) and the content's type name; the row is made when read.
        kind = type(content).__name__
        row = (self._seq, self.now(), direction, h.copy(), size, pid, name, kind)
        self._rows.append(row)
        if self._listeners:  # (none, as a rule: the web view listens)
            for listener in list(self._listeners):
                listener(self._row(row))

    def _row(self, r: tuple[Any, ...]) -> dict[str, Any]:
        seq, ts, direction, h, size, pid, name, kind = r
        to = h.get(m.RECEIVER)
        encoding = h.get(m.ENCODING)
        if isinstance(encoding, str) and encoding.startswith(m.ENCODING_OBJECT):
            ctype = encoding
        else:
            ctype = kind
        return {
            "seq": seq, "ts": ts, "dir": direction, "container": self.container,
            "sender": h.get(m.SENDER), "sender_name": h.get(m.SENDER_NAME), "to": to,
            "receiver": pid or to, "receiver_name": name, "conv_id": h.get(m.CONV_ID),
            "conv_seq": h.get(m.CONV_SEQ), "protocol": h.get(m.PROTOCOL),
            "performative": h.get(m.PERFORMATIVE), "op": h.get(m.OP), "status": h.get(m.STATUS),
            "size": size, "content_type": ctype, "user_id": h.get(m.USER_ID),
        }  # fmt: skip

    def _quiet(self, h: dict[str, Any]) -> bool:
        """Whether a message is the observer's own: a request of L{QUIET_OPS},
        or an answer in such a conversation."""
        conv, quiet = h.get(m.CONV_ID), self._quiet_convs
        op = h.get(m.OP)
        if isinstance(op, str) and op in QUIET_OPS and h.get(m.PERFORMATIVE) == "request":
            quiet[conv] = None
            if len(quiet) > _QUIET_KEPT:  # answers that never came
                del quiet[next(iter(quiet))]
            return True
        if conv in quiet:  # its answer: the conversation ends with it
            del quiet[conv]
            return True
        return False

    def listen(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call C{listener} with each new row (a dict); returns the call that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def read(self, since: int = 0, limit: int | None = None) -> TraceSlice:
        """The rows after seq C{since} (the newest C{limit} of them, if given)."""
        rows = self._rows
        first = rows[0][0] if rows else self._seq + 1
        gap = (since + 1, first - 1) if since + 1 < first and since < self._seq else None
        start = max(0, since + 1 - first)
        if limit is not None:
            start = max(start, len(rows) - max(limit, 0))
        picked = [self._row(r) for r in itertools.islice(rows, start, None)]
        return TraceSlice(picked, self._seq, gap, self.container, self.now())


def _kept(h: dict[str, Any]) -> dict[str, Any]:
    """The headers of a received message a row needs, each short: a tap of
    2,000 rows must not hold 2,000 huge headers."""
    kept: dict[str, Any] = {}
    for name in _ROW_HEADERS:
        value = h.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            kept[name] = value if len(value) <= _KEPT_LENGTH else m.shown(value)
        elif isinstance(value, int | float):
            kept[name] = value
        else:
            kept[name] = m.shown(value)
    return kept
