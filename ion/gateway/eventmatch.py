"""C{/eventmatch}: each user's subscriptions, in Pacifica Notifications' API.

  POST   /eventmatch              create (200 and the subscription, as Pacifica)
  GET    /eventmatch              the user's live subscriptions
  GET    /eventmatch/<uuid>       one
  PUT    /eventmatch/<uuid>       change some fields (200 and the subscription)
  DELETE /eventmatch/<uuid>       mark it deleted (200 and the subscription)
  POST   /eventmatch/<uuid>/retry resume its parked deliveries and clear its error

The fields and JSON shapes are Pacifica's, so a Pacifica client works
unchanged; so is the 403 for a uuid that is unknown, deleted or another
user's (one answer for all three: a uuid's existence is not disclosed).
Where Pacifica answers 500 (malformed JSON, a filter or uuid that does not
parse, a body that breaks its schema) this answers 400 naming the field.
Pacifica answers an empty list with 403; this answers 200 and C{[]}.
A PUT that sets C{error} to null also resumes the parked deliveries (the
Pacifica way to re-enable a subscription: C{{"disabled": null, "error": null}}).

The read-only fields (uuid, user, created, updated, deleted) may be sent back
as they are (a client may PUT what it read); a different value is a 400.
"""

from __future__ import annotations

import ipaddress
import json
import uuid as uuidlib
from datetime import UTC, datetime
from typing import Any

from ion.gateway.config import GatewayConfig
from ion.gateway.eventmatch_openapi import OPENAPI_PATHS, OPENAPI_SCHEMAS
from ion.gateway.jsonpath import compile_filter
from ion.gateway.store import Store, SubscriptionRecord, iso
from ion.gateway.targets import check_target, check_target_resolved
from ion.gateway.web import HttpError, JsonResource, read_json

__all__ = ["OPENAPI_PATHS", "OPENAPI_SCHEMAS", "EventMatchResource", "validate"]

READ_ONLY = ("uuid", "user", "created", "updated", "deleted")
WRITABLE = ("name", "jsonpath", "target_url", "auth", "extensions", "version", "disabled", "error")
REQUIRED = ("name", "jsonpath", "target_url")
MAX_NAME = 255
MAX_VERSION = 64
MAX_ERROR = 4096
MAX_CREDENTIAL = 4096
_ANYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


class EventMatchResource(JsonResource):
    """The C{/eventmatch} routes over a L{Store}."""

    def __init__(self, store: Store, config: GatewayConfig, reactor: Any = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor
        self.store = store
        self.config = config
        self.reactor = reactor

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        if user is None:
            raise HttpError(401, None, "authentication required")
        method = request.method
        if method == b"HEAD":
            method = b"GET"
        if not path:
            if method == b"GET":
                return 200, [r.to_json() for r in await self.store.list_subscriptions(user)]
            if method == b"POST":
                return 200, await self._create(request, user)
            raise _not_allowed(b"GET, HEAD, POST")
        uuid = _uuid(path[0])
        if len(path) == 2 and path[1] == "retry":
            if method != b"POST":
                raise _not_allowed(b"POST")
            await self._owned(uuid, user)
            return 200, {"uuid": uuid, "retried": await self.store.retry_parked(uuid)}
        if len(path) > 1:
            raise HttpError(404, None, "no such route")
        if method == b"GET":
            return 200, (await self._owned(uuid, user)).to_json()
        if method == b"PUT":
            return 200, await self._update(request, uuid, user)
        if method == b"DELETE":
            await self._owned(uuid, user)
            await self.store.delete_subscription(uuid)
            gone = await self.store.get_subscription(uuid)
            assert gone is not None
            return 200, gone.to_json()
        raise _not_allowed(b"GET, HEAD, PUT, DELETE")

    async def _owned(self, uuid: str, user: str) -> SubscriptionRecord:
        record = await self.store.get_subscription(uuid)
        if record is None or record.user != user or record.deleted is not None:
            raise HttpError(403, None, "Forbidden")
        return record

    async def _create(self, request: Any, user: str) -> dict[str, Any]:
        body = read_json(request, self.config.max_body)
        fields = await self._checked(body, user, None)
        for name in REQUIRED:
            if name not in fields:
                raise HttpError(400, name, "required")
        return (await self.store.create_subscription(user, fields)).to_json()

    async def _update(self, request: Any, uuid: str, user: str) -> dict[str, Any]:
        current = await self._owned(uuid, user)
        body = read_json(request, self.config.max_body)
        changes = await self._checked(body, user, current)
        record = await self.store.update_subscription(uuid, changes)
        if record is None:  # (deleted meanwhile)
            raise HttpError(403, None, "Forbidden")
        return record.to_json()

    async def _checked(
        self, body: Any, user: str, current: SubscriptionRecord | None
    ) -> dict[str, Any]:
        fields = validate(body, user, current)
        if "target_url" in fields:
            await check_target_resolved(
                fields["target_url"],
                self.config.allow_targets,
                self.reactor,
                allow_unresolved=True,
            )
        return fields


def _not_allowed(allow: bytes) -> HttpError:
    return HttpError(405, None, "method not allowed", {b"allow": allow})


def _uuid(text: str) -> str:
    try:
        return str(uuidlib.UUID(text))
    except ValueError:
        raise HttpError(400, "uuid", "not a UUID") from None


def validate(body: Any, user: str, current: SubscriptionRecord | None) -> dict[str, Any]:
    """The writable fields of C{body}, checked (all but the target's addresses).

    @param current: the subscription a PUT changes; None for a POST.
    @raise HttpError: 400 naming the first bad field.
    """
    if not isinstance(body, dict):
        raise HttpError(400, "body", "expected a JSON object")
    fields: dict[str, Any] = {}
    for name, value in body.items():
        if name in READ_ONLY:
            _read_only(name, value, user, current)
        elif name in WRITABLE:
            fields[name] = _CHECKS[name](value)
        else:
            raise HttpError(400, name, "unknown field")
    return fields


def _read_only(name: str, value: Any, user: str, current: SubscriptionRecord | None) -> None:
    if current is None:
        same = name == "user" and value == user
    else:
        same = value == current.to_json()[name]
    if not same:
        raise HttpError(400, name, "read-only")


def _text(name: str, limit: int, *, empty: bool = False) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise HttpError(400, name, "expected a string")
        if not empty and not value.strip():
            raise HttpError(400, name, "expected a non-empty string")
        if len(value) > limit:
            raise HttpError(400, name, f"longer than {limit} characters")
        return _storable(name, value)

    return check


def _storable(name: str, value: str) -> str:
    """C{value}, if a database can keep it (UTF-8, no NUL)."""
    if "\x00" in value:
        raise HttpError(400, name, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise HttpError(400, name, "not valid Unicode (a lone surrogate)") from None
    return value


def _jsonpath(value: Any) -> str:
    compile_filter(value)
    return _storable("jsonpath", value)


def _target_url(value: Any) -> str:
    check_target(value, _ANYWHERE)  # (the shape; addresses are judged with the allow list after)
    return _storable("target_url", value)


def _header_safe(field: str, value: Any, *, colon: bool = True) -> str:
    if not isinstance(value, str):
        raise HttpError(400, field, "expected a string")
    if len(value) > MAX_CREDENTIAL:
        raise HttpError(400, field, f"longer than {MAX_CREDENTIAL} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise HttpError(400, field, "contains a control character")
    if not colon and ":" in value:
        raise HttpError(400, field, "a basic username cannot contain ':'")
    return value


def _auth(value: Any) -> dict[str, Any]:
    """C{{}}, or Pacifica's basic or header form."""
    if not isinstance(value, dict):
        raise HttpError(400, "auth", "expected an object")
    if not value:
        return {}
    kind = value.get("type")
    if kind not in ("basic", "header"):
        raise HttpError(400, "auth.type", 'expected "basic" or "header"')
    extra = set(value) - {"type", kind}
    if extra:
        raise HttpError(400, f"auth.{sorted(extra)[0]}", "unknown field")
    inner = value.get(kind)
    if not isinstance(inner, dict):
        raise HttpError(400, f"auth.{kind}", "expected an object")
    names = ("username", "password") if kind == "basic" else ("type", "credentials")
    for key in inner:
        if key not in names:
            raise HttpError(400, f"auth.{kind}.{key}", "unknown field")
    for key in names:
        if key not in inner:
            raise HttpError(400, f"auth.{kind}.{key}", "required")
        _header_safe(f"auth.{kind}.{key}", inner[key], colon=(kind, key) != ("basic", "username"))
    if kind == "header" and (not inner["type"] or any(c in inner["type"] for c in " \t,;=")):
        raise HttpError(400, "auth.header.type", "expected a scheme name (like Bearer)")
    return {"type": kind, kind: {k: inner[k] for k in names}}


def _extensions(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise HttpError(400, "extensions", "expected an object")
    try:
        json.dumps(value)  # (what the store will do: nesting it cannot write is a 400 here)
    except (RecursionError, ValueError):
        raise HttpError(400, "extensions", "nested too deeply") from None
    return value


def _disabled(value: Any) -> float | None:
    """Null, or a date-time (ISO 8601; without an offset: UTC) as seconds."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise HttpError(400, "disabled", "expected null or a date-time")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HttpError(400, "disabled", "expected null or a date-time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        seconds = when.timestamp()
        iso(seconds)  # (the answer must be able to show it)
    except (OverflowError, OSError, ValueError):
        raise HttpError(400, "disabled", "a date-time out of range") from None
    return seconds


def _error(value: Any) -> str | None:
    return None if value is None else _text("error", MAX_ERROR, empty=True)(value)


_CHECKS = {
    "name": _text("name", MAX_NAME),
    "jsonpath": _jsonpath,
    "target_url": _target_url,
    "auth": _auth,
    "extensions": _extensions,
    "version": _text("version", MAX_VERSION),
    "disabled": _disabled,
    "error": _error,
}
