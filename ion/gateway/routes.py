"""Routes that services declare on their ops, nameko-style (L{http}).

    class HelloService(ServiceProcess):
        @http("GET", "/hello/<name>", content="name")
        def op_hello(self, content, headers, msg): ...

A route's path parameters (C{<name>}, one path segment each) and query
parameters, and for POST, PUT and PATCH the JSON object of its body, make the
op's content: a map of them (C{content=NAME}: that one value alone). The
gateway calls the op as C{POST /rpc} does (L{ion.gateway.rpc}): as the
authenticated user, with the C{Ion-Timeout} deadline, statuses mapped alike.

How the gateway learns them: every service answers the built-in op
C{http_routes} (L{ion.core.process.service.ServiceProcess}) with its declared
routes (L{routes_of}); the gateway asks each service named in the config key
C{gateway.services} when it starts, and asks again those that did not answer
yet (not running, say) every L{RETRY} seconds until they do. Two services
declaring one method and path: the first listed wins, and the other is logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from twisted.logger import Logger

log = Logger()

ATTRIBUTE = "__ion_http__"
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
PARAM = re.compile(r"^<([A-Za-z_][A-Za-z0-9_]*)>$")
_SEGMENT = re.compile(r"^[A-Za-z0-9._~-]+$")

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Route:
    """One declared route: C{method} C{path} calls C{op} of C{service}."""

    method: str
    path: str
    op: str
    content: str | None = None
    service: str = ""

    @property
    def segments(self) -> list[str]:
        return self.path.strip("/").split("/")

    @property
    def params(self) -> list[str]:
        return [p.group(1) for s in self.segments if (p := PARAM.match(s))]

    def match(self, path: list[str]) -> dict[str, str] | None:
        """The path parameters if C{path} (decoded segments) is this route's, else None."""
        mine = self.segments
        if len(mine) != len(path):
            return None
        found = {}
        for want, got in zip(mine, path, strict=True):
            param = PARAM.match(want)
            if param:
                found[param.group(1)] = got
            elif want != got:
                return None
        return found

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "op": self.op, "content": self.content}


def check_route(method: str, path: str, content: str | None = None) -> tuple[str, str]:
    """The method (upper case) and path of a route declaration.

    @raise ValueError: an unknown method, a path not of segments and C{<params>},
        a repeated param, or C{content} naming no param.
    """
    method = method.upper()
    if method not in METHODS:
        raise ValueError(f"route {path!r}: method {method!r} is not one of {sorted(METHODS)}")
    if not isinstance(path, str) or not path.startswith("/") or path == "/":
        raise ValueError(f"route {path!r}: expected a path like /name/<param>")
    segments = path.strip("/").split("/")
    params = []
    for s in segments:
        if p := PARAM.match(s):
            params.append(p.group(1))
        elif not _SEGMENT.match(s):
            raise ValueError(f"route {path!r}: segment {s!r} is neither a name nor <param>")
    if len(set(params)) != len(params):
        raise ValueError(f"route {path!r}: a parameter is repeated")
    if content is not None and content not in params:
        raise ValueError(f"route {path!r}: content={content!r} names no parameter of it")
    return method, "/" + "/".join(segments)


def http(method: str, path: str, content: str | None = None) -> Callable[[F], F]:
    """Declare an HTTP route to the decorated C{op_<name>} (stackable).

    @param content: the one path parameter that is the op's whole content
        (default: a map of every parameter, query parameter and body field).
    """
    method, path = check_route(method, path, content)

    def mark(f: F) -> F:
        if not f.__name__.startswith("op_"):
            raise ValueError(f"@http marks op_<name> methods, not {f.__name__}")
        routes = list(getattr(f, ATTRIBUTE, ()))
        routes.append(Route(method, path, f.__name__[3:], content))
        setattr(f, ATTRIBUTE, routes)
        return f

    return mark


def routes_of(cls: type) -> list[dict[str, Any]]:
    """The routes declared on C{cls}'s ops, as the op C{http_routes} answers them."""
    found = []
    for name in sorted(dir(cls)):
        if name.startswith("op_"):
            for route in getattr(getattr(cls, name, None), ATTRIBUTE, ()):
                found.append(route.as_dict())
    return found


def parse_routes(service: str, answer: Any) -> list[Route]:
    """The routes in a service's C{http_routes} answer (malformed ones are logged and left out)."""
    routes = []
    for item in answer if isinstance(answer, list) else []:
        try:
            method, path = check_route(item["method"], item["path"], item.get("content"))
            op = item["op"]
            if not isinstance(op, str) or not op.isidentifier():
                raise ValueError(f"bad op {op!r}")
        except (KeyError, TypeError, ValueError) as e:
            log.warn("gateway: {service} declares a bad route: {e}", service=service, e=e)
            continue
        routes.append(Route(method, path, op, item.get("content"), service))
    return routes
