"""The routes services declare (L{ion.gateway.routes}), as the gateway serves them.

L{RouteTable} holds each service's answer to C{http_routes}; L{RoutesResource}
serves every path the gateway's other resources do not, calling the route's op.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from twisted.logger import Logger

from ion.gateway.routes import PARAM, WITH_BODY, Route
from ion.gateway.rpc import call_service, timeout_of
from ion.gateway.web import HttpError, JsonResource, read_json

log = Logger()

RETRY = 10.0  # seconds between asking services that have not answered yet


class RouteTable:
    """The declared routes the gateway serves, by service (kept in config order)."""

    def __init__(self, services: tuple[str, ...] = ()) -> None:
        self.services = services
        self.by_service: dict[str, list[Route]] = {}

    def set(self, service: str, routes: list[Route]) -> None:
        self.by_service[service] = routes

    @property
    def pending(self) -> list[str]:
        """The services that have not answered yet."""
        return [s for s in self.services if s not in self.by_service]

    def routes(self) -> list[Route]:
        """Every route, the first declaration of a method and path winning."""
        seen: dict[tuple[str, str], Route] = {}
        for service in self.services:
            for route in self.by_service.get(service, ()):
                key = (route.method, "/".join("<>" if PARAM.match(s) else s
                                              for s in route.segments))  # fmt: skip
                if key in seen:
                    log.warn("gateway: {method} {path} of {service} is {other}'s already",
                             method=route.method, path=route.path, service=service,
                             other=seen[key].service)  # fmt: skip
                    continue
                seen[key] = route
        return list(seen.values())

    def find(self, method: str, path: list[str]) -> tuple[Route, dict[str, str]]:
        """The route for C{method} at C{path} and its parameters.

        @raise HttpError: 404 when no route has that path, 405 when none has that method.
        """
        allowed = []
        for route in self.routes():
            params = route.match(path)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed.append(route.method)
        if allowed:
            methods = ", ".join(sorted(set(allowed)))
            raise HttpError(405, None, f"use {methods}", {b"allow": methods.encode()})
        raise HttpError(404, None, "no such route")

    def openapi_paths(self) -> dict[str, Any]:
        """The declared routes as OpenAPI path items."""
        paths: dict[str, Any] = {}
        for route in self.routes():
            template = "/" + "/".join(
                "{" + p.group(1) + "}" if (p := PARAM.match(s)) else s for s in route.segments
            )
            operation: dict[str, Any] = {
                "summary": f"{route.service}: op {route.op}",
                "operationId": f"{route.service}.{route.op}.{route.method.lower()}",
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in route.params
                ],
                "responses": {
                    "200": {
                        "description": "the reply content",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "default": {
                        "description": "error",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                },
            }
            if route.method in WITH_BODY:
                operation["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            paths.setdefault(template, {})[route.method.lower()] = operation
        return paths


def content_of(route: Route, params: dict[str, str], request: Any, max_body: int) -> Any:
    """The op's content for a request of C{route}.

    @raise HttpError: 400 for a body that is not a JSON object, or a name given twice.
    """
    if route.content is not None:
        return params[route.content]
    content: dict[str, Any] = dict(params)
    query = request.uri.partition(b"?")[2].decode("latin-1")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, "query", "the query is not UTF-8") from None
    for name, value in pairs:
        _put(content, name, value, "query")
    if route.method in WITH_BODY:
        body = read_json(request, max_body, empty={})
        if not isinstance(body, dict):
            raise HttpError(400, "body", "expected a JSON object")
        for name, value in body.items():
            _put(content, name, value, "body")
    return content


def _put(content: dict[str, Any], name: str, value: Any, where: str) -> None:
    if name in content:
        raise HttpError(400, f"{where}.{name}" if where == "body" else name,
                        f"{name!r} is given twice")  # fmt: skip
    content[name] = value


class RoutesResource(JsonResource):
    """Serves the declared routes of C{table} (whole paths), calling from C{process}."""

    def __init__(self, process: Any, table: RouteTable, max_body: int) -> None:
        super().__init__()
        self.process = process
        self.table = table
        self.max_body = max_body

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        method = request.method.decode("ascii", "replace")
        route, params = self.table.find("GET" if method == "HEAD" else method, path)
        if user is None:
            raise HttpError(401, None, "authentication required")
        timeout = timeout_of(request)
        content = content_of(route, params, request, self.max_body)
        reply = await call_service(self.process, route.service, route.op, content, user, timeout)
        return 200, reply
