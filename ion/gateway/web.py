"""JSON over twisted.web: the gateway's request and error conventions.

Every answer is JSON. A bad input is a 4xx whose body names the field:
C{{"error": {"status": 400, "field": "name", "message": "..."}}} (field may be
null); an unexpected failure is logged here and answered 500 with no detail,
never a traceback.

A L{JsonResource} is a leaf: its subclass implements C{handle(request, user,
path)}. The user comes from the site's authenticator (L{GatewaySite}, see
L{ion.gateway.auth}); request bodies are capped by the site's C{max_body}
while they arrive (L{LimitedRequest}), and L{read_json} answers 413 past it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote_to_bytes

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from ion.core.exception import IonError

if TYPE_CHECKING:
    from twisted.web.http import Request as HttpRequest

log = Logger()

JSON = b"application/json"


class HttpError(IonError):
    """An answer other than success: C{status}, the C{field} at fault (or None), a
    message, and C{headers} to send with it (C{Allow} with a 405, say)."""

    def __init__(
        self,
        status: int,
        field: str | None,
        message: str,
        headers: dict[bytes, bytes] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.field = field
        self.message = message
        self.headers = dict(headers or {})
        if status == 401:
            self.headers.setdefault(b"www-authenticate", b"Bearer")

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": {"status": self.status, "field": self.field, "message": self.message}}


INTERNAL = HttpError(500, None, "internal error")


class LimitedRequest(Request):
    """A request that keeps at most its site's C{max_body} bytes of body: past
    that it stops storing (and C{too_large} is set), so a large upload costs
    neither memory nor disk; L{read_json} answers it 413."""

    too_large = False

    def _limit(self) -> int | None:
        site = getattr(self.channel, "site", None)
        limit = getattr(site, "max_body", None)
        return limit if isinstance(limit, int) else None

    def gotLength(self, length: int | None) -> None:
        limit = self._limit()
        if length is not None and limit is not None and length > limit:
            self.too_large = True
            length = 0  # (buffer nothing)
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.too_large:
            return
        limit, content = self._limit(), self.content
        if limit is not None and content is not None and content.tell() + len(data) > limit:
            self.too_large = True
            content.seek(0)
            content.truncate()
            return
        super().handleContentChunk(data)


class GatewaySite(Site):
    """The gateway's site: L{LimitedRequest}s, its body limit and its authenticator.

    @ivar authenticator: has C{user_of(request) -> str | None} (L{ion.gateway.auth}),
        or None: every request is anonymous.
    """

    requestFactory = LimitedRequest
    displayTracebacks = False

    def __init__(
        self, resource: Resource, max_body: int, authenticator: Any = None, **kw: Any
    ) -> None:
        super().__init__(resource, **kw)
        self.max_body = max_body
        self.authenticator = authenticator

    def log(self, request: HttpRequest) -> None:
        pass  # (the access log would carry query strings; the gateway logs what it does)


def _is_json_type(value: bytes) -> bool:
    mime = value.split(b";", 1)[0].strip().lower()
    if not mime.startswith(b"application/"):
        return False
    sub = mime[len(b"application/") :]
    return sub == b"json" or sub.endswith(b"+json")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_EMPTY: Any = object()


def read_json(request: Any, limit: int, *, empty: Any = _EMPTY) -> Any:
    """The request body as JSON.

    A body without a content type is read as JSON; any other type than
    C{application/json} (or C{application/*+json}) is refused.

    @param empty: what an empty body means; by default an empty body is a 400.
    @raise HttpError: 413 over C{limit} bytes; 400 (field C{body}) for another
        content type, bytes that are not UTF-8 JSON, or an empty body.
    """
    if getattr(request, "too_large", False):
        raise HttpError(413, "body", f"the body is larger than {limit} bytes")
    content = request.content
    content.seek(0)
    data = content.read(limit + 1)
    if len(data) > limit:
        raise HttpError(413, "body", f"the body is larger than {limit} bytes")
    ctype = request.getHeader(b"content-type")
    if ctype is not None and not _is_json_type(ctype.encode() if isinstance(ctype, str) else ctype):
        raise HttpError(400, "body", "expected content type application/json")
    if not data.strip():
        if empty is not _EMPTY:
            return empty
        raise HttpError(400, "body", "expected a JSON body")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise HttpError(400, "body", "the body is not UTF-8") from None
    except RecursionError:
        raise HttpError(400, "body", "the JSON is nested too deeply") from None
    except ValueError as e:
        raise HttpError(400, "body", f"not JSON: {e}") from None


def write_json(request: Any, status: int, body: Any) -> bytes:
    """Set C{status} and the JSON headers on C{request}; the encoded C{body}.

    @raise ValueError: C{body} is not JSON-able (NaN, or a type JSON lacks).
    """
    data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON)
    request.setHeader(b"content-length", b"%d" % len(data))
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-store")
    return data


def path_segments(request: Any) -> list[str]:
    """The request's remaining path segments (C{postpath}), percent-decoded.

    A trailing slash adds no segment.
    @raise HttpError: 400 field C{path} when a segment is not UTF-8.
    """
    segments = list(request.postpath)
    if segments and segments[-1] == b"":
        segments.pop()
    try:
        return [unquote_to_bytes(s).decode("utf-8") for s in segments]
    except UnicodeDecodeError:
        raise HttpError(400, "path", "the path is not UTF-8") from None


class JsonResource(Resource):
    """A leaf resource answering JSON; subclasses implement L{handle}.

    @cvar public: served without asking the authenticator (C{user} is None).
    """

    isLeaf = True
    public: ClassVar[bool] = False

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        """Serve C{request} for C{user} (None: anonymous) at C{path} (the
        segments below this resource): the status and the JSON body.

        @raise HttpError: answered with its status and JSON error.
        """
        raise NotImplementedError

    def render(self, request: Request) -> Any:
        finished: list[Any] = []
        request.notifyFinish().addBoth(finished.append)
        d = Deferred.fromCoroutine(self._serve(request))
        d.addCallback(self._answer, request, finished)
        d.addErrback(lambda f: log.failure("answering a gateway request failed", f))
        return NOT_DONE_YET

    async def _serve(self, request: Any) -> tuple[int, Any, dict[bytes, bytes]]:
        try:
            user = None
            if not self.public:
                authenticator = getattr(getattr(request, "site", None), "authenticator", None)
                if authenticator is not None:
                    user = authenticator.user_of(request)
            status, body = await self.handle(request, user, path_segments(request))
            return status, body, {}
        except HttpError as e:
            return e.status, e.body(), e.headers
        except Exception:
            log.failure(
                "gateway: {method} {path} failed",
                Failure(),
                method=_text(request.method),
                path=_text(request.path),
            )
            return INTERNAL.status, INTERNAL.body(), {}

    def _answer(
        self, result: tuple[int, Any, dict[bytes, bytes]], request: Any, finished: list[bool]
    ) -> None:
        if finished:  # (the client went away)
            return
        status, body, extra = result
        try:
            data = write_json(request, status, body)
        except ValueError:
            log.failure("gateway: an answer is not JSON", Failure())
            data = write_json(request, 500, INTERNAL.body())
        for name, value in extra.items():
            request.setHeader(name, value)
        if request.method != b"HEAD":
            request.write(data)
        request.finish()


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)
