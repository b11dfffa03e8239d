"""C{POST /receive}: CloudEvents in, each accepted once and published confirmed.

An event is answered 202 only after the broker confirmed its publish: from
then on the matcher's shared queue holds it until the matches are in the
outbox. A (source, id) pair seen before is answered 200 as a duplicate and not
published again. The sighting is recorded only once the publish is confirmed,
so a container that dies between the two has the sender's retry published
again, never answered "duplicate" for an event it lost (two publishes of one
event match once: the outbox takes one delivery per event and subscription).
A publish that fails is answered 503, and the sender may try again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.logger import Logger

from ion.gateway.cloudevent import parse
from ion.gateway.web import HttpError, JsonResource

__all__ = ["OPENAPI_PATHS", "OPENAPI_SCHEMAS", "ReceiveResource"]

log = Logger()

Publisher = Callable[[dict[str, Any]], Awaitable[None]]


class ReceiveResource(JsonResource):
    """The C{/receive} resource.

    @param store: the gateway's store (C{seen}, C{first_sighting}).
    @param publisher: publishes an event; its awaitable ends once the broker
        confirmed it (L{ion.gateway.publish.CloudEventPublisher}).
    @param config: the gateway's config (C{max_body}).
    """

    def __init__(self, store: Any, publisher: Publisher, config: Any) -> None:
        super().__init__()
        self.store = store
        self.publisher = publisher
        self.config = config

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        if path and path != [""]:
            raise HttpError(404, None, "no such resource")
        if request.method != b"POST":
            raise HttpError(405, None, "POST a CloudEvent to /receive", {b"allow": b"POST"})
        if user is None:
            raise HttpError(401, None, "authentication required")
        event = parse(request, self.config.max_body)
        source, event_id = event["source"], event["id"]
        duplicate = {"accepted": False, "duplicate": True, "source": source, "id": event_id}
        if await self.store.seen(source, event_id):
            return 200, duplicate
        try:
            await self.publisher(event)
        except Exception as e:
            log.warn("event {id} of {source} not published: {e}", id=event_id, source=source, e=e)
            raise HttpError(503, None, "the event could not be published; try again") from None
        if not await self.store.first_sighting(source, event_id):
            return 200, duplicate  # (a twin post of it was published meanwhile)
        return 202, {"accepted": True, "duplicate": False, "source": source, "id": event_id}


_ERROR = {"$ref": "#/components/schemas/Error"}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


OPENAPI_SCHEMAS: dict[str, Any] = {
    "CloudEvent": {
        "type": "object",
        "description": "A CloudEvents 1.0 event in structured JSON form.",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"type": "string", "const": "1.0"},
            "id": {"type": "string", "minLength": 1},
            "source": {"type": "string", "minLength": 1},
            "type": {"type": "string", "minLength": 1},
            "subject": {"type": "string"},
            "time": {"type": "string", "format": "date-time"},
            "dataschema": {"type": "string", "format": "uri"},
            "datacontenttype": {"type": "string", "pattern": "/"},
            "data": {},
            "data_base64": {
                "type": "string",
                "contentEncoding": "base64",
                "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$",
            },
        },
        # Extension attributes: names of 1-20 lower-case letters and digits.
        "propertyNames": {"pattern": "^([a-z0-9]{1,20}|data_base64)$"},
        "additionalProperties": {"type": ["string", "integer", "boolean"]},
        "not": {"required": ["data", "data_base64"]},
    },
    "ReceiveResult": {
        "type": "object",
        "required": ["accepted", "duplicate", "source", "id"],
        "properties": {
            "accepted": {"type": "boolean"},
            "duplicate": {"type": "boolean"},
            "source": {"type": "string"},
            "id": {"type": "string"},
        },
    },
}

_RESULT = {"application/json": {"schema": {"$ref": "#/components/schemas/ReceiveResult"}}}

OPENAPI_PATHS: dict[str, Any] = {
    "/receive": {
        "post": {
            "summary": "Accept a CloudEvent (structured JSON or binary mode with ce-* headers)",
            "operationId": "receive",
            "requestBody": {
                "required": True,
                "content": {
                    "application/cloudevents+json": {
                        "schema": {"$ref": "#/components/schemas/CloudEvent"}
                    },
                    "application/json": {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
                },
            },
            "responses": {
                "202": {"description": "accepted and published", "content": _RESULT},
                "200": {
                    "description": "a duplicate (source, id): not published",
                    "content": _RESULT,
                },
                "400": _error_response("a bad event; field names the attribute"),
                "401": _error_response("authentication required"),
                "413": _error_response("the body is too large"),
                "415": _error_response("batched CloudEvents are not accepted"),
                "503": _error_response("the event could not be published"),
            },
        }
    }
}
