"""The resource tree of the web view: C{/static/...}, C{/events} (L{sse}),
C{/api/...} (JSON, L{api}, and the actions, L{actions}) and the pages
(L{pages}) with C{/msc.svg} and C{/msc.txt}.

Every response carries C{Content-Security-Policy: default-src 'self'} (no
inline script runs, nothing loads from elsewhere) and C{nosniff}; a request
whose C{Host} does not name this server is refused with 421 (a page of another
name, DNS rebinding, must not read the system).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources as pkg
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Site

from ion.core import exception as exc
from ion.core.observe.web import api, pages
from ion.core.observe.web.actions import Action
from ion.core.observe.web.api import to_json
from ion.core.observe.web.leaf import ViewLeaf
from ion.core.observe.web.sse import EventStream

if TYPE_CHECKING:
    from twisted.web.server import Request

    from ion.core.observe.web.service import WebView

log = Logger()

HEADERS = {
    b"content-security-policy": b"default-src 'self'",
    b"x-content-type-options": b"nosniff",
    b"cache-control": b"no-store",
    b"referrer-policy": b"no-referrer",
    b"x-frame-options": b"DENY",
}
JSON, HTML = b"application/json; charset=utf-8", b"text/html; charset=utf-8"
STATIC = {
    "observer.js": b"text/javascript; charset=utf-8",
    "observer.css": b"text/css; charset=utf-8",
}


class ObserverSite(Site):
    """The site: common headers on every response, and the C{Host} check."""

    def __init__(self, view: WebView, root: Resource) -> None:
        super().__init__(root)
        self.view = view
        self.displayTracebacks = False
        self.noisy = False

    def getResourceFor(self, request: Request) -> Any:
        for name, value in HEADERS.items():
            request.setHeader(name, value)
        if not self.view.host_allowed(request.getHeader(b"host")):
            return Refused(421, "misdirected request: this server is not that host")
        return super().getResourceFor(request)


def make_site(view: WebView) -> ObserverSite:
    root = Root(view)
    root.putChild(b"static", cast(IResource, Static()))
    root.putChild(b"events", cast(IResource, EventStream(view)))
    root.putChild(b"api", cast(IResource, Api(view)))
    return ObserverSite(view, root)


class Refused(Resource):
    """A plain text error for every method."""

    isLeaf = True

    def __init__(self, code: int, text: str) -> None:
        super().__init__()
        self.code, self.text = code, text

    def render(self, request: Request) -> bytes:
        request.setResponseCode(self.code)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return self.text.encode() + b"\n"


def segments(request: Request, skip: int) -> list[str]:
    """The path's segments after the first C{skip} (UTF-8).

    @raise BadRequest: not UTF-8.
    """
    try:
        parts = [
            p.decode("utf-8") for p in ((request.prepath or []) + (request.postpath or []))[skip:]
        ]
    except UnicodeDecodeError:
        raise exc.BadRequest("the path is not UTF-8") from None
    return parts[:-1] if len(parts) > 1 and parts[-1] == "" else parts  # a trailing slash


def query(request: Request) -> dict[str, str]:
    """The query's first value of each argument (UTF-8, or left out)."""
    out = {}
    args: dict[bytes, list[bytes]] = request.args or {}
    for key, values in args.items():
        try:
            out[key.decode()] = values[0].decode()
        except UnicodeDecodeError:
            continue
    return out


ERROR_CODES = ((exc.NotFound, 404), (exc.BadRequest, 400), (exc.NotAllowed, 403))


def error_code(error: BaseException) -> int:
    for kind, code in ERROR_CODES:
        if isinstance(error, kind):
            return code
    return 502 if isinstance(error, exc.IonError) else 500


Answer = tuple[int, bytes, bytes]  # code, content type, body


def respond(request: Request, work: Callable[[], Awaitable[Answer]], as_json: bool) -> Any:
    """Answer C{request} once C{work} has; an error becomes a JSON or HTML error
    page (a bug's details go to the log, not to the page)."""
    gone: list[bool] = []
    request.notifyFinish().addBoth(lambda _: gone.append(True))

    def done(answer: Answer) -> None:
        if gone:
            return
        code, kind, body = answer
        request.setResponseCode(code)
        request.setHeader(b"content-type", kind)
        request.write(body)
        request.finish()

    def failed(failure: Failure) -> None:
        code = error_code(failure.value)
        if code == 500:
            log.failure("web view: {path} failed", failure, path=request.path)
            text = "internal error (see the container's log)"
        else:
            text = str(failure.value) or type(failure.value).__name__
        if as_json:
            done((code, JSON, to_json({"error": text, "status": code})))
        else:
            done((code, HTML, pages.error_page(code, text).encode()))

    d: Deferred[Answer] = Deferred.fromCoroutine(_run(work))
    d.addCallbacks(done, failed)
    return NOT_DONE_YET


async def _run(work: Callable[[], Awaitable[Answer]]) -> Answer:
    return await work()


class Static(Resource):
    """The view's two files, from the package (no listing, nothing else)."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        post = request.postpath or []
        name = post[0].decode("latin-1") if len(post) == 1 else ""
        if name not in STATIC:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        request.setHeader(b"content-type", STATIC[name])
        request.setHeader(b"cache-control", b"no-cache")
        return pkg.files("ion.core.observe.web").joinpath("static", name).read_bytes()


class Api(ViewLeaf):
    """C{/api/...}: each page's data as JSON, and the actions (POST)."""

    def __init__(self, view: WebView) -> None:
        super().__init__(view)
        self.action = Action(view)

    def render(self, request: Request) -> Any:
        try:
            path = segments(request, 1)
        except exc.BadRequest as e:
            return Refused(400, str(e)).render(request)
        if len(path) == 3 and path[0] == "c" and path[2] in ("kill", "restart"):
            return self.action.render(request)
        if request.method not in (b"GET", b"HEAD"):
            return Refused(405, "only GET here").render(request)
        view, q = self.view, query(request)

        async def work() -> Answer:
            data = await api.route(view, path, q)
            return 200, JSON, to_json(data)

        return respond(request, work, as_json=True)


class Root(Resource):
    """The pages: C{/}, C{/c/<cid>}, C{/c/<cid>/tree}, C{/conversations}, C{/msc}
    (with C{/msc.svg} and C{/msc.txt}) and C{/queues}."""

    def __init__(self, view: WebView) -> None:
        super().__init__()
        self.view = view

    def getChild(self, path: bytes, request: Request) -> Resource:
        return Page(self.view)

    def render(self, request: Request) -> Any:
        return Page(self.view).render(request)


class Page(ViewLeaf):
    def render(self, request: Request) -> Any:
        if request.method not in (b"GET", b"HEAD"):
            return Refused(405, "only GET here").render(request)
        view, q = self.view, query(request)

        async def work() -> Answer:
            path = segments(request, 0)
            if path in (["msc.svg"], ["msc.txt"]):
                svg = path == ["msc.svg"]
                text = await pages.msc_file(view, q, svg)
                kind = b"image/svg+xml; charset=utf-8" if svg else b"text/plain; charset=utf-8"
                return 200, kind, text.encode()
            return 200, HTML, (await pages.render(view, path, q)).encode()

        return respond(request, work, as_json=False)
