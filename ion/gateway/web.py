"""JSON over twisted.web: errors, bodies and the resource base of the gateway.

(The shared interface the gateway's modules build on; the full module is
helper-independent and replaces this one.)
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ion.core.exception import IonError

log = Logger()


class HttpError(IonError):
    """An HTTP error answer: its status, the field at fault (or None) and a message."""

    def __init__(self, status: int, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message


def write_json(request: Any, status: int, body: Any) -> bytes:
    """Set the status and content type of C{request}; C{body} as JSON bytes."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(body).encode()


def read_json(request: Any, limit: int) -> Any:
    """The request's JSON body (413 over C{limit} bytes, 400 field body if not JSON)."""
    raw = request.content.read(limit + 1)
    if len(raw) > limit:
        raise HttpError(413, "body", f"the body is over {limit} bytes")
    try:
        return json.loads(raw)
    except ValueError as e:
        raise HttpError(400, "body", f"not JSON: {e}") from None


class JsonResource(Resource):
    """A leaf resource answering JSON; subclasses implement C{handle}."""

    isLeaf = True

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        raise NotImplementedError

    def render(self, request: Any) -> Any:
        path = [p.decode() for p in request.postpath]
        user = getattr(request, "ion_user", None)
        d = Deferred.fromCoroutine(self.handle(request, user, path))

        def done(result: tuple[int, Any]) -> None:
            request.write(write_json(request, *result))
            request.finish()

        def failed(f: Any) -> None:
            if f.check(HttpError):
                e = f.value
                err = {"status": e.status, "field": e.field, "message": e.message}
            else:
                log.failure("gateway request failed", f)
                err = {"status": 500, "field": None, "message": "internal error"}
            request.write(write_json(request, err["status"], {"error": err}))
            request.finish()

        d.addCallbacks(done, failed)
        return NOT_DONE_YET
