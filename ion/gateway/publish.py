"""CloudEvents as ion events: published confirmed on the events exchange, read back whole.

An accepted CloudEvent becomes an C{EventMessage} of event id
C{CLOUDEVENT} (5001) whose C{cloudevent} payload keeps the event's structured
JSON whole (plus its source, id and type for routing). Its routing key is
C{5001.<origin>}, the origin a single safe word made from the source (see
L{origin_of}), so a subscriber may bind to the events of one source.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any

from ion.core import events
from ion.core.object.event_ids import EventId

if TYPE_CHECKING:
    from ion.core.process.process import Process

__all__ = ["CloudEventPublisher", "cloudevent_of", "origin_of"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def origin_of(source: str) -> str:
    """A routing-key word for a CloudEvent's C{source}: its letters, digits, C{_}
    and C{-} (runs of anything else become one C{_}), at most 48 of them, then
    C{-} and 8 hex digits of its sha256, so two sources never share a word by
    accident. No dots: an origin is one word of the key, matched by C{*}."""
    word = _UNSAFE.sub("_", source).strip("_")[:48] or "source"
    return f"{word}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"


def cloudevent_of(event: Any) -> dict[str, Any]:
    """The CloudEvent (structured JSON, a dict) an ion C{CLOUDEVENT} event carries."""
    return json.loads(event.cloudevent.json)


class CloudEventPublisher:
    """Publishes accepted CloudEvents for C{process}, each confirmed by the broker.

    Called with the event (a validated structured CloudEvent); the Deferred it
    returns fires once the broker has taken the event (RabbitMQ: a publisher
    confirm; the message is persistent), or fails.
    """

    def __init__(self, process: Process) -> None:
        self.process = process

    def __call__(self, cloudevent: dict[str, Any]) -> Any:
        container = self.process.container
        assert container is not None, "process is not spawned"
        event = events.create_event(
            EventId.CLOUDEVENT,
            origin=origin_of(cloudevent["source"]),
            source=cloudevent["source"],
            id=cloudevent["id"],
            type=cloudevent["type"],
            json=json.dumps(cloudevent, separators=(",", ":")),
        )
        return events.publish(
            container.exchange, str(self.process.id), event, None, container.id, confirm=True
        )
