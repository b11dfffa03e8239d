"""Event ids, after the original's table; the first part of an event's routing key.

These name kinds of events (routing key C{"<event id>.<origin>"}); they are not
object type ids. L{PAYLOAD_FIELD} names the C{EventMessage.payload} member each
kind of event carries.
"""

from __future__ import annotations

from enum import IntEnum


class EventId(IntEnum):
    """The standard event ids of ion."""

    RESOURCE_LIFECYCLE = 1001
    CONTAINER_LIFECYCLE = 1051
    PROCESS_LIFECYCLE = 1052
    CHILD_RESTARTED = 1053
    SUPERVISOR_GAVE_UP = 1054
    CONTAINER_PEER_STATE = 1055
    APP_LIFECYCLE = 1075
    CONTAINER_STARTUP = 1076
    BUSINESS_STATE_MODIFICATION = 1112
    NEW_SUBSCRIPTION = 1201
    DEL_SUBSCRIPTION = 1202
    SCHEDULE = 2001
    LOGGING_CRITICAL = 3001
    LOGGING_ERROR = 3002
    LOGGING_INFO = 3003
    DATABLOCK = 4001
    # A CloudEvent the HTTP gateway accepted (ion.gateway.receive); origin: its source.
    CLOUDEVENT = 5001


PAYLOAD_FIELD: dict[EventId, str] = {
    EventId.RESOURCE_LIFECYCLE: "resource_lifecycle",
    EventId.CONTAINER_LIFECYCLE: "container_lifecycle",
    EventId.PROCESS_LIFECYCLE: "process_lifecycle",
    EventId.CHILD_RESTARTED: "supervision",
    EventId.SUPERVISOR_GAVE_UP: "supervision",
    EventId.CONTAINER_PEER_STATE: "peer_state",
    EventId.APP_LIFECYCLE: "app_lifecycle",
    EventId.CONTAINER_STARTUP: "container_startup",
    EventId.BUSINESS_STATE_MODIFICATION: "resource_modification",
    EventId.NEW_SUBSCRIPTION: "subscription",
    EventId.DEL_SUBSCRIPTION: "subscription",
    EventId.SCHEDULE: "schedule",
    EventId.LOGGING_CRITICAL: "logging",
    EventId.LOGGING_ERROR: "logging",
    EventId.LOGGING_INFO: "logging",
    EventId.DATABLOCK: "data_block",
    EventId.CLOUDEVENT: "cloudevent",
}
