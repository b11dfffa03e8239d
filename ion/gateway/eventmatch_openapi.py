"""The OpenAPI 3.1 description of C{/eventmatch} (re-exported by L{ion.gateway.eventmatch})."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}


def _errors(*codes: int | str) -> dict[str, Any]:
    return {
        str(c): {"description": "error", "content": {"application/json": {"schema": _ERROR}}}
        for c in codes
    }


def _ok(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "200": {"description": description, "content": {"application/json": {"schema": schema}}}
    }


_MATCH = {"$ref": "#/components/schemas/EventMatch"}
_UUID = {
    "name": "uuid",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

_WRITABLE: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"\S"},
    "jsonpath": {
        "type": "string",
        "minLength": 1,
        "maxLength": 1024,
        "description": "RFC 9535 JSONPath, or Pacifica's jsonpath2 form; matches when it "
        "finds anything in the event",
        "example": "$.data",
    },
    "target_url": {
        "type": "string",
        "maxLength": 2048,
        "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\s/?#@:]+(:[1-9][0-9]{0,3})?([/?#][!-~]*)?$",
        "description": "http or https; loopback, private and other internal addresses "
        "(or names resolving to them) only inside gateway.allow_targets",
        "example": "https://example.com/hook",
    },
    "auth": {"$ref": "#/components/schemas/EventMatchAuth"},
    "extensions": {"type": "object", "description": "merged into the event's extensions"},
    "version": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": r"\S"},
    "disabled": _NULLABLE_TIME,
    "error": {"type": ["string", "null"], "maxLength": 4096},
}
_READ_ONLY: dict[str, Any] = {
    "uuid": {"type": "string", "format": "uuid"},
    "user": {"type": "string"},
    "created": {"type": "string", "format": "date-time"},
    "updated": {"type": "string", "format": "date-time"},
    "deleted": _NULLABLE_TIME,
}
_BODY_ERRORS = _errors(400, 401, 403, 413, "default")

OPENAPI_PATHS: dict[str, Any] = {
    "/eventmatch": {
        "get": {
            "summary": "The user's subscriptions (not deleted)",
            "operationId": "eventmatchList",
            "responses": {
                **_ok({"type": "array", "items": _MATCH}, "the subscriptions"),
                **_errors(401, "default"),
            },
        },
        "post": {
            "summary": "Subscribe: a name, a JSONPath filter and a target URL",
            "operationId": "eventmatchCreate",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/EventMatchCreate"}
                    }
                },
            },
            "responses": {**_ok(_MATCH, "the new subscription"), **_BODY_ERRORS},
        },
    },
    "/eventmatch/{uuid}": {
        "parameters": [_UUID],
        "get": {
            "summary": "One subscription (403: unknown, deleted or another user's)",
            "operationId": "eventmatchRead",
            "responses": {**_ok(_MATCH, "the subscription"), **_errors(400, 401, 403, "default")},
        },
        "put": {
            "summary": "Change some of a subscription's fields",
            "operationId": "eventmatchUpdate",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": "#/components/schemas/EventMatchUpdate"}
                    }
                },
            },
            "responses": {**_ok(_MATCH, "the subscription as changed"), **_BODY_ERRORS},
        },
        "delete": {
            "summary": "Delete a subscription",
            "operationId": "eventmatchDelete",
            "responses": {
                **_ok(_MATCH, "the subscription, deleted"),
                **_errors(400, 401, 403, "default"),
            },
        },
    },
    "/eventmatch/{uuid}/retry": {
        "parameters": [_UUID],
        "post": {
            "summary": "Resume a subscription's parked deliveries and clear its error",
            "operationId": "eventmatchRetry",
            "responses": {
                **_ok({"$ref": "#/components/schemas/EventMatchRetry"}, "how many resumed"),
                **_errors(400, 401, 403, "default"),
            },
        },
    },
}

OPENAPI_SCHEMAS: dict[str, Any] = {
    "EventMatch": {
        "type": "object",
        "required": [*_READ_ONLY, *_WRITABLE],
        "additionalProperties": False,
        "properties": {
            **_READ_ONLY,
            **_WRITABLE,
            "name": {"type": "string"},
            "jsonpath": {"type": "string"},
            "target_url": {"type": "string"},
            "version": {"type": "string"},
            "error": {"type": ["string", "null"]},
        },
    },
    "EventMatchCreate": {
        "type": "object",
        "required": ["name", "jsonpath", "target_url"],
        "additionalProperties": False,
        "properties": _WRITABLE,
    },
    "EventMatchUpdate": {
        "type": "object",
        "additionalProperties": False,
        "properties": _WRITABLE,
    },
    "EventMatchAuth": {
        "description": "how the gateway authenticates to the target: none ({}), basic, or "
        "an Authorization header of the given scheme",
        "oneOf": [
            {"type": "object", "maxProperties": 0},
            {
                "type": "object",
                "required": ["type", "basic"],
                "additionalProperties": False,
                "properties": {
                    "type": {"const": "basic"},
                    "basic": {
                        "type": "object",
                        "required": ["username", "password"],
                        "additionalProperties": False,
                        "properties": {
                            "username": {"type": "string", "pattern": "^[^:\\x00-\\x1f\\x7f]*$"},
                            "password": {"type": "string", "pattern": "^[^\\x00-\\x1f\\x7f]*$"},
                        },
                    },
                },
            },
            {
                "type": "object",
                "required": ["type", "header"],
                "additionalProperties": False,
                "properties": {
                    "type": {"const": "header"},
                    "header": {
                        "type": "object",
                        "required": ["type", "credentials"],
                        "additionalProperties": False,
                        "properties": {
                            "type": {"type": "string", "pattern": "^[^\\s,;=\\x00-\\x1f\\x7f]+$"},
                            "credentials": {
                                "type": "string",
                                "pattern": "^[^\\x00-\\x1f\\x7f]*$",
                            },
                        },
                    },
                },
            },
        ],
    },
    "EventMatchRetry": {
        "type": "object",
        "required": ["uuid", "retried"],
        "additionalProperties": False,
        "properties": {
            "uuid": {"type": "string", "format": "uuid"},
            "retried": {"type": "integer", "minimum": 0},
        },
    },
}
