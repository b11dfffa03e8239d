"""The observer's live events: what changed in the container, numbered, kept
in a ring for a reconnecting reader, and pushed to those listening.

Types: C{proc} (a process's life cycle state), C{msg} (a tap row), C{sup} (a
supervisor restarted a child or gave up), C{cc} (a container's membership
state) and C{q} (a queue depth sample). The web view's C{/events} stream
(server-sent events) is one reader; its C{id} is an event's C{id}.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ion.core.object.event_ids import EventId

PROC, MSG, SUP, CC, Q = "proc", "msg", "sup", "cc", "q"
TYPES = (PROC, MSG, SUP, CC, Q)
DEFAULT_SIZE = 2000


@dataclass(frozen=True)
class Event:
    """One live event: its number, type and JSON-able data."""

    id: int
    type: str
    data: dict[str, Any]


class EventHub:
    """Numbers and keeps the last C{size} events; tells each listener of each new one."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        self._ring: deque[Event] = deque(maxlen=max(1, size))
        self._last = 0
        self._listeners: list[Callable[[Event], None]] = []

    @property
    def last(self) -> int:
        """The id of the newest event (0: none yet)."""
        return self._last

    def publish(self, type: str, data: dict[str, Any]) -> Event:
        """Number, keep and push an event of C{type} (one of L{TYPES})."""
        if type not in TYPES:
            raise ValueError(f"unknown event type {type!r}")
        self._last += 1
        event = Event(self._last, type, data)
        self._ring.append(event)
        for listener in list(self._listeners):
            listener(event)
        return event

    def announced(self, event_id: int, origin: str, fields: dict[str, Any]) -> Event | None:
        """Publish what a standard event (L{EventId}) of this container tells:
        processes' states, supervisors' restarts and give-ups, containers' states."""
        kind = _KIND_OF.get(int(event_id))
        if kind is None:
            return None
        data = {k: v for k, v in fields.items() if isinstance(v, _PLAIN)}
        data["origin"] = origin
        data["event"] = int(event_id)
        if int(event_id) == EventId.CHILD_RESTARTED:
            data["action"] = "restart"
        elif int(event_id) == EventId.SUPERVISOR_GAVE_UP:
            data["action"] = "give_up"
        return self.publish(kind, data)

    def since(self, last_id: int) -> tuple[list[Event], bool]:
        """The events after C{last_id}, and whether some of them were evicted."""
        ring = self._ring
        if not ring or last_id >= self._last:
            return [], False
        first = ring[0].id
        missed = last_id + 1 < first
        return [e for e in ring if e.id > last_id], missed

    def listen(self, listener: Callable[[Event], None]) -> Callable[[], None]:
        """Push each new event to C{listener}; returns the call that stops it."""
        self._listeners.append(listener)

        def stop() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return stop


_KIND_OF = {
    int(EventId.PROCESS_LIFECYCLE): PROC,
    int(EventId.CHILD_RESTARTED): SUP,
    int(EventId.SUPERVISOR_GAVE_UP): SUP,
    int(EventId.CONTAINER_LIFECYCLE): CC,
    int(EventId.CONTAINER_PEER_STATE): CC,
}
_PLAIN = (str, int, float, bool, type(None))
