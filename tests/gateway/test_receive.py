"""POST /receive: accepted once, answered only after the broker's confirm, 503 on failure."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail

from ion.core.exception import BrokerNackError
from ion.gateway.receive import OPENAPI_PATHS, ReceiveResource
from ion.gateway.web import HttpError
from tests.gateway.fakes import FakeRequest, FakeStore

EVENT = {"specversion": "1.0", "id": "e1", "source": "/orders", "type": "order.created"}


def request(event: dict[str, Any] = EVENT) -> FakeRequest:
    return FakeRequest(json.dumps(event).encode(), {"Content-Type": "application/json"})


class Publisher:
    """Records events; each publish is a Deferred the test fires as the broker's confirm."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []
        self.pending: list[Deferred[None]] = []

    def __call__(self, event: dict[str, Any]) -> Deferred[None]:
        self.published.append(event)
        self.pending.append(Deferred())
        return self.pending[-1]


def make() -> tuple[ReceiveResource, FakeStore, Publisher]:
    store, publisher = FakeStore(), Publisher()
    return ReceiveResource(store, publisher, SimpleNamespace(max_body=1 << 20)), store, publisher


def handle(resource: ReceiveResource, req: FakeRequest, user: str | None = "alice") -> Deferred:
    return Deferred.fromCoroutine(resource.handle(req, user, []))


def result(d: Deferred) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "not answered yet"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def test_accepted_only_after_the_confirm() -> None:
    """The 202 waits for the broker's confirm of the publish."""
    resource, _, publisher = make()
    d = handle(resource, request())
    assert publisher.published == [EVENT]
    assert not d.called
    publisher.pending[0].callback(None)
    assert result(d) == (202, {"accepted": True, "duplicate": False, "source": "/orders",
                               "id": "e1"})  # fmt: skip


def test_duplicate_is_accepted_once() -> None:
    """The same (source, id) again is a 200 duplicate and is not published."""
    resource, _, publisher = make()
    first = handle(resource, request())
    publisher.pending[0].callback(None)
    result(first)
    status, body = result(handle(resource, request(dict(EVENT, data=1))))
    assert (status, body["duplicate"], body["accepted"]) == (200, True, False)
    assert len(publisher.published) == 1
    other = handle(resource, request(dict(EVENT, source="/other")))
    assert len(publisher.published) == 2 and not other.called


def test_a_sighting_is_recorded_only_once_the_publish_is_confirmed() -> None:
    """Until the broker confirms, the event is not a sighting (a gateway that
    died now would publish the sender's retry, not call it a duplicate); of two
    posts of one event in flight together, the second confirmed is the duplicate."""
    resource, store, publisher = make()
    first = handle(resource, request())
    twin = handle(resource, request())
    assert store.sightings == set() and len(publisher.published) == 2
    publisher.pending[0].callback(None)
    assert result(first)[0] == 202 and store.sightings == {("/orders", "e1")}
    publisher.pending[1].callback(None)
    status, body = result(twin)
    assert status == 200 and body["duplicate"]


def test_publish_failure_is_503_and_not_a_sighting() -> None:
    """A failed publish answers 503 and records no sighting: the sender may retry."""
    resource, store, publisher = make()
    d = handle(resource, request())
    publisher.pending[0].errback(BrokerNackError("nacked"))
    with pytest.raises(HttpError) as info:
        result(d)
    assert info.value.status == 503
    assert store.sightings == set()
    again = handle(resource, request())
    publisher.pending[1].callback(None)
    assert result(again)[0] == 202


def test_user_required() -> None:
    """Without a user the answer is 401 and nothing is recorded."""
    resource, store, publisher = make()
    with pytest.raises(HttpError) as info:
        result(handle(resource, request(), user=None))
    assert info.value.status == 401 and not publisher.published and not store.sightings


def test_bad_event_is_400_naming_the_attribute() -> None:
    """A bad event is refused before anything is recorded."""
    resource, store, _ = make()
    with pytest.raises(HttpError) as info:
        result(handle(resource, request({"specversion": "1.0", "id": "x", "source": "/s"})))
    assert (info.value.status, info.value.field) == (400, "type") and not store.sightings


def test_only_post() -> None:
    """GET /receive is a 405."""
    resource, _, _ = make()
    req = request()
    req.method = b"GET"
    with pytest.raises(HttpError) as info:
        result(handle(resource, req))
    assert info.value.status == 405 and info.value.headers == {b"allow": b"POST"}


def test_publisher_that_raises_at_once() -> None:
    """A publisher that fails synchronously is a 503 too."""
    store = FakeStore()
    resource = ReceiveResource(store, lambda e: fail(RuntimeError("closed")),
                               SimpleNamespace(max_body=100))  # fmt: skip
    with pytest.raises(HttpError) as info:
        result(handle(resource, request()))
    assert info.value.status == 503


def test_openapi_documents_every_status() -> None:
    """The OpenAPI fragment names each status the resource answers."""
    responses = OPENAPI_PATHS["/receive"]["post"]["responses"]
    assert set(responses) >= {"200", "202", "400", "401", "413", "415", "503"}
