"""The gateway's OpenAPI 3.1 document, served at C{/openapi.json}.

It merges the C{OPENAPI_PATHS} and C{OPENAPI_SCHEMAS} of every module that
serves routes (L{MODULES}; one not installed is left out) and the routes
services declare (L{ion.gateway.declared}). Every operation needs a bearer
token (or the proxy's C{Http-Remote-User}, which a document cannot say);
C{/openapi.json} itself is the one route served without.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import ion
from ion.gateway.web import HttpError, JsonResource

#: The modules whose routes the gateway serves, in the document's order.
MODULES = ("ion.gateway.rpc", "ion.gateway.eventmatch", "ion.gateway.receive")

SELF: dict[str, Any] = {
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "operationId": "openapi",
            "security": [],
            "responses": {
                "200": {
                    "description": "the OpenAPI document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "default": {
                    "description": "error",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
    }
}


def fragments(modules: tuple[str, ...] = MODULES) -> list[Any]:
    """The modules of C{modules} that are installed."""
    found = []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ModuleNotFoundError as e:
            if e.name != name:  # (a module that is there but fails to import is a bug)
                raise
    return found


def document(
    modules: list[Any] | None = None, extra_paths: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The OpenAPI document of C{modules} (default: L{fragments}) and C{extra_paths}."""
    paths: dict[str, Any] = dict(SELF)
    schemas: dict[str, Any] = {}
    for module in fragments() if modules is None else modules:
        for path, item in getattr(module, "OPENAPI_PATHS", {}).items():
            paths.setdefault(path, {}).update(item)
        schemas.update(getattr(module, "OPENAPI_SCHEMAS", {}))
    for path, item in (extra_paths or {}).items():
        merged = paths.setdefault(path, {})
        for method, operation in item.items():
            merged.setdefault(method, operation)  # (the gateway's own routes come first)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ion gateway",
            "version": ion.__version__,
            "description": "Service ops over HTTP, CloudEvents in, subscriptions and webhooks.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


class OpenApiResource(JsonResource):
    """C{GET /openapi.json}; C{extra} gives the declared routes' paths when asked."""

    public = True

    def __init__(self, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        super().__init__()
        self.extra = extra
        self.modules = fragments()

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        if path:
            raise HttpError(404, None, "no such route")
        if request.method not in (b"GET", b"HEAD"):
            raise HttpError(405, None, "use GET", {b"allow": b"GET, HEAD"})
        return 200, document(self.modules, self.extra() if self.extra else None)
