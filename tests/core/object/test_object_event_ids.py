"""Tests for ion.core.object.event_ids: the event id table."""

from __future__ import annotations

from ion.core.object.event_ids import PAYLOAD_FIELD, EventId
from ion.core.object.proto import events_pb2


def test_event_ids_match_the_original_table():
    """The standard event ids have the original's numbers; ion's supervision
    events take 1053 and 1054, and its container peer state 1055, unused there,
    beside process life cycle (1052); the gateway's CloudEvents take 5001."""
    assert {e.name: e.value for e in EventId} == {
        "RESOURCE_LIFECYCLE": 1001,
        "CONTAINER_LIFECYCLE": 1051,
        "PROCESS_LIFECYCLE": 1052,
        "CHILD_RESTARTED": 1053,
        "SUPERVISOR_GAVE_UP": 1054,
        "CONTAINER_PEER_STATE": 1055,
        "APP_LIFECYCLE": 1075,
        "CONTAINER_STARTUP": 1076,
        "BUSINESS_STATE_MODIFICATION": 1112,
        "NEW_SUBSCRIPTION": 1201,
        "DEL_SUBSCRIPTION": 1202,
        "SCHEDULE": 2001,
        "LOGGING_CRITICAL": 3001,
        "LOGGING_ERROR": 3002,
        "LOGGING_INFO": 3003,
        "DATABLOCK": 4001,
        "CLOUDEVENT": 5001,
    }


def test_every_event_id_names_a_payload_member():
    """Each event id maps to a real member of EventMessage's payload oneof."""
    oneof = events_pb2.EventMessage.DESCRIPTOR.oneofs_by_name["payload"]
    members = {field.name for field in oneof.fields}
    assert set(PAYLOAD_FIELD) == set(EventId)
    assert set(PAYLOAD_FIELD.values()) <= members
