"""Service ops over HTTP: C{POST /rpc/<service>/<op>} (L{RpcResource}).

The JSON body (none: null) is the request's content; the reply's content is
the answer, as ion-rpc prints it (bytes as base64, protobuf objects as their
JSON mapping: L{ion.core.cc.attach.to_json}). The call goes out from the
gateway process with the authenticated user as its C{user-id} (a policy,
C{security.policy}, judges that name) and the deadline of the C{Ion-Timeout}
header (seconds; default C{container.rpc_timeout}).

ion's answers as HTTP statuses (L{call_service}): 400 a bad request (the
service's own 4xx codes pass through: 401 and 403 as the policy answers, 404
its NotFound); 404 no such service or op; 413 a request over the broker's
message size; 500 the service failed (its message only); 502 a reply the
gateway cannot read; 503 the broker is unreachable; 504 no answer in time.
Only services are called: not process ids, nor container agents (C{cc.*}).
"""

from __future__ import annotations

import math
import re
from typing import Any

from twisted.logger import Logger

from ion.core import exception as exc
from ion.core.cc.attach import to_json
from ion.core.id import ProcessId, check_name
from ion.core.log import redact_text
from ion.core.messaging import message as m
from ion.gateway.web import HttpError, JsonResource, read_json

log = Logger()

TIMEOUT_HEADER = b"ion-timeout"
MIN_TIMEOUT, MAX_TIMEOUT = 0.1, 3600.0
_OP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int | str) -> dict[str, Any]:
    """OpenAPI responses: C{codes} answered with the JSON error."""
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


OPENAPI_PATHS: dict[str, Any] = {
    "/rpc/{service}/{op}": {
        "post": {
            "summary": "Call a service's operation; the reply content as JSON",
            "operationId": "rpc",
            "parameters": [
                {
                    "name": "service",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "example": "hello",
                },
                {
                    "name": "op",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                    "example": "ping",
                },
                {
                    "name": "Ion-Timeout",
                    "in": "header",
                    "required": False,
                    "description": "seconds to wait for the reply (default: the "
                    "container's rpc timeout)",
                    "schema": {"type": "number", "minimum": MIN_TIMEOUT, "maximum": MAX_TIMEOUT},
                },
            ],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {}, "example": "you"}},
            },
            "responses": {
                "200": {
                    "description": "the reply content",
                    "content": {"application/json": {"schema": {}}},
                },
                **_errors(400, 401, 403, 404, 405, 409, 413, 500, 502, 503, 504, "default"),
            },
        }
    }
}
OPENAPI_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["status", "field", "message"],
                "properties": {
                    "status": {"type": "integer"},
                    "field": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
            }
        },
    }
}


def timeout_of(request: Any) -> float | None:
    """The C{Ion-Timeout} header's seconds (None: absent).

    @raise HttpError: 400 field C{Ion-Timeout} for anything but a number in [0.1, 3600].
    """
    value = request.getHeader(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (MIN_TIMEOUT <= seconds <= MAX_TIMEOUT):  # (NaN fails this too)
        raise HttpError(
            400, "Ion-Timeout", f"expected seconds from {MIN_TIMEOUT:g} to {MAX_TIMEOUT:g}"
        )
    return seconds


def check_service(service: str) -> str:
    """C{service} if the gateway may call it.

    @raise HttpError: 404 field C{service} for a process id, an agent or a bad name.
    """
    if ProcessId.is_pid(service) or service.startswith("cc.") or service == "cc":
        raise HttpError(404, "service", "the gateway calls services only")
    try:
        return check_name(service, "service")
    except exc.IonError:
        raise HttpError(404, "service", "no such service") from None


async def call_service(
    process: Any,
    service: str,
    op: str,
    content: Any,
    user: str,
    timeout: float | None,
) -> Any:
    """Call C{service}'s C{op} from C{process} as C{user}; the reply as JSON holds it.

    @raise HttpError: ion's answer as its HTTP status (see the module).
    """
    headers = {m.USER_ID: user}
    try:
        d = process.rpc_send(service, op, content, timeout=timeout, headers=headers)
    except exc.MessageFormatError as e:
        if "max_message_size" in str(e):
            raise HttpError(413, "body", "the request is larger than the broker takes") from None
        raise HttpError(400, "body", f"the content cannot be sent: {e}") from None
    except exc.BrokerError as e:
        raise HttpError(503, None, f"broker: {redact_text(str(e))}") from None
    try:
        reply = await d
    except exc.NoSuchServiceError:
        raise HttpError(404, "service", f"no service {service!r}") from None
    except exc.TimeoutError:  # (the handler's cut-off too)
        raise HttpError(504, None, "no reply in time") from None
    except exc.ReceivedError as e:
        raise _received(e, op) from None
    except exc.MessageFormatError:
        raise HttpError(502, None, "the service's reply cannot be read") from None
    except exc.BrokerError as e:
        raise HttpError(503, None, f"broker: {redact_text(str(e))}") from None
    return to_json(reply)


def _received(e: exc.ReceivedError, op: str) -> HttpError:
    code, message = e.code, redact_text(e.message)
    if e.error_type == "UnknownOpError":
        return HttpError(404, "op", f"no operation {op!r}")
    if code in (exc.TIMEOUT_CODE, exc.ION_TIMEOUT) or e.error_type == "HandlerTimeoutError":
        return HttpError(504, None, message or "no reply in time")
    if 400 <= code < 500:
        return HttpError(code, None, message)
    log.info("gateway: {op} failed: {error}", op=op, error=e.describe())
    return HttpError(500, None, message or "the service failed")


class RpcResource(JsonResource):
    """C{POST /rpc/<service>/<op>}: calls from C{process} (the gateway's).

    @ivar max_body: the largest JSON body, bytes.
    """

    def __init__(self, process: Any, max_body: int) -> None:
        super().__init__()
        self.process = process
        self.max_body = max_body

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        if len(path) != 2:
            raise HttpError(404, None, "expected /rpc/<service>/<op>")
        if request.method != b"POST":
            raise HttpError(405, None, "use POST", {b"allow": b"POST"})
        if user is None:
            raise HttpError(401, None, "authentication required")
        service, op = check_service(path[0]), path[1]
        if not _OP.match(op):
            raise HttpError(404, "op", f"no operation {op!r}")
        timeout = timeout_of(request)
        content = read_json(request, self.max_body, empty=None)
        return 200, await call_service(self.process, service, op, content, user, timeout)
