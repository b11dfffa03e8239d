"""CloudEvents parsed from requests: both modes, and every refusal naming its attribute."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from ion.gateway.cloudevent import event_key, parse
from ion.gateway.web import HttpError
from tests.gateway.fakes import FakeRequest

EVENT = {"specversion": "1.0", "id": "e1", "source": "/orders", "type": "order.created"}
LIMIT = 1 << 16


def structured(event: Any, content_type: str = "application/cloudevents+json") -> FakeRequest:
    return FakeRequest(json.dumps(event).encode(), {"Content-Type": content_type})


def refused(request: FakeRequest) -> HttpError:
    with pytest.raises(HttpError) as info:
        parse(request, LIMIT)
    return info.value


def test_structured_event_is_returned_whole() -> None:
    """A structured event comes back as sent, data and extensions included."""
    event = dict(EVENT, data={"n": 1}, time="2026-12-07T10:00:00.5Z", traceid="abc", size=3)
    assert parse(structured(event), LIMIT) == event


def test_time_forms_rfc3339_allows() -> None:
    """Offsets, a lower-case t and z, fractions and a leap second are RFC 3339 times."""
    for time in ("2026-12-31T23:59:60Z", "2026-01-01t00:00:00.123456789z",
                 "2026-06-01T12:00:00+05:30"):  # fmt: skip
        assert parse(structured(dict(EVENT, time=time)), LIMIT)["time"] == time


def test_plain_json_holding_a_structured_event() -> None:
    """application/json with a structured event is taken as one (Pacifica's clients send it)."""
    assert parse(structured(EVENT, "application/json; charset=utf-8"), LIMIT) == EVENT


def test_binary_mode_with_a_json_body() -> None:
    """ce-* headers are the attributes; a JSON body is the event's data as JSON."""
    request = FakeRequest(b'{"a": [1, 2]}', {
        "ce-specversion": "1.0", "ce-id": "e2", "ce-source": "/x%20y", "ce-type": "t",
        "ce-subject": "s", "Content-Type": "application/json",
    })  # fmt: skip
    assert parse(request, LIMIT) == {
        "specversion": "1.0", "id": "e2", "source": "/x y", "type": "t", "subject": "s",
        "datacontenttype": "application/json", "data": {"a": [1, 2]},
    }  # fmt: skip


def test_binary_mode_with_other_bytes() -> None:
    """A body that is not JSON is kept as data_base64."""
    request = FakeRequest(b"\x00\x01binary", {
        "ce-specversion": "1.0", "ce-id": "e3", "ce-source": "/s", "ce-type": "t",
        "Content-Type": "application/octet-stream",
    })  # fmt: skip
    event = parse(request, LIMIT)
    assert base64.b64decode(event["data_base64"]) == b"\x00\x01binary"
    assert "data" not in event


def test_binary_mode_without_a_body_has_no_data() -> None:
    """An empty body is an event without data."""
    request = FakeRequest(b"", {"ce-specversion": "1.0", "ce-id": "e", "ce-source": "/s",
                                "ce-type": "t"})  # fmt: skip
    assert parse(request, LIMIT) == {"specversion": "1.0", "id": "e", "source": "/s", "type": "t"}


@pytest.mark.parametrize("name", ["id", "source", "specversion", "type"])
def test_missing_required_attribute_is_named(name: str) -> None:
    """Each required attribute, missing, is a 400 naming it (structured and binary)."""
    event = {k: v for k, v in EVENT.items() if k != name}
    error = refused(structured(event))
    assert (error.status, error.field) == (400, name)
    headers = {f"ce-{k}": v for k, v in event.items()}
    headers["Content-Type"] = "text/plain"  # any ce-* header makes it binary mode
    assert refused(FakeRequest(b"x", headers)).field == name


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"id": ""}, "id"),
        ({"source": 5}, "source"),
        ({"time": "yesterday"}, "time"),
        ({"time": "2026-02-30T00:00:00Z"}, "time"),
        ({"subject": 1}, "subject"),
        ({"dataschema": "no-scheme"}, "dataschema"),
        ({"datacontenttype": "json"}, "datacontenttype"),
        ({"Bad_Name": "x"}, "Bad_Name"),
        ({"averyveryverylongextensionname": "x"}, "averyveryverylongextensionname"),
        ({"ext": {"nested": 1}}, "ext"),
        ({"ext": 1.5}, "ext"),
        ({"data": 1, "data_base64": "AA=="}, "data_base64"),
        ({"data_base64": "not base64!"}, "data_base64"),
    ],
)
def test_bad_attribute_is_named(changes: dict[str, Any], field: str) -> None:
    """An attribute of the wrong type or form is a 400 naming it."""
    error = refused(structured(dict(EVENT, **changes)))
    assert (error.status, error.field) == (400, field)


def test_body_that_is_not_json() -> None:
    """Malformed JSON is a 400 on the body, not a 500."""
    request = FakeRequest(b"{nope", {"Content-Type": "application/cloudevents+json"})
    assert (refused(request).status, refused(FakeRequest(b"[1]", {
        "Content-Type": "application/json"})).field) == (400, "body")  # fmt: skip


def test_binary_json_body_that_is_not_json() -> None:
    """A binary-mode body that says JSON and is not is a 400 on data."""
    request = FakeRequest(b"{nope", {"ce-specversion": "1.0", "ce-id": "e", "ce-source": "/s",
                                     "ce-type": "t", "Content-Type": "application/json"})  # fmt: skip
    assert refused(request).field == "data"


def test_body_over_the_limit() -> None:
    """A body over the limit is a 413."""
    request = FakeRequest(b"x" * 11, {"Content-Type": "application/json"})
    with pytest.raises(HttpError) as info:
        parse(request, 10)
    assert info.value.status == 413


def test_batch_and_unknown_content_types() -> None:
    """A batch is a 415; another content type without ce-* headers a 400 on content-type."""
    assert refused(structured([EVENT], "application/cloudevents-batch+json")).status == 415
    assert refused(FakeRequest(b"x", {"Content-Type": "text/plain"})).field == "content-type"


def test_event_key_tells_sources_apart() -> None:
    """The outbox key separates source and id, so ("a","bc") and ("ab","c") differ."""
    assert event_key("a", "bc") != event_key("ab", "c")
    assert len(event_key("a", "b")) == 64
