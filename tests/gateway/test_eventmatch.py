"""/eventmatch (ion.gateway.eventmatch) over a real loopback site, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.resource import Resource

from ion.gateway.auth import Authenticator
from ion.gateway.config import GatewayConfig
from ion.gateway.eventmatch import EventMatchResource
from ion.gateway.web import GatewaySite
from tests.gateway.client import Answer, fetch

LIMIT = 4096
BASIC = {"type": "basic", "basic": {"username": "myusername", "password": "password"}}
HEADER = {"type": "header", "header": {"type": "Bearer", "credentials": "abc"}}


class Api:
    """The site's base URL and a request helper acting as a user (Pacifica's header)."""

    def __init__(self, base: str, store: Any) -> None:
        self.base = base
        self.store = store

    async def __call__(
        self,
        method: str,
        path: str = "",
        body: Any = None,
        user: str | None = "dmlb2001",
        **kw: Any,
    ) -> Answer:
        headers = dict(kw.pop("headers", {}))
        if user is not None:
            headers["Http-Remote-User"] = user
        return await fetch(method, f"{self.base}/eventmatch{path}", body, headers=headers, **kw)


@pytest_twisted.async_yield_fixture
async def api(make_store: Any) -> AsyncIterator[Api]:
    store = await make_store()
    config = GatewayConfig(max_body=LIMIT, allow_targets=(ipaddress.ip_network("127.0.0.0/8"),))
    root = Resource()
    root.putChild(b"eventmatch", EventMatchResource(store, config, reactor))
    site = GatewaySite(root, max_body=LIMIT, authenticator=Authenticator({}, remote_user=True))
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield Api(f"http://127.0.0.1:{port.getHost().port}", store)
    await port.stopListening()


CREATE = {"name": "My Event Match", "jsonpath": "data", "target_url": "http://example.com/recieve"}


def error_of(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, answer.body
    assert answer.header("content-type") == "application/json"
    err: dict[str, Any] = answer.json["error"]
    assert err["status"] == status
    assert "Traceback" not in answer.body.decode()
    return err


@pytest_twisted.ensureDeferred
async def test_pacifica_client_sequence(api: Api) -> None:
    """Pacifica's documented requests, in order, get Pacifica's answers."""
    made = await api("POST", "", {**CREATE, "auth": BASIC})
    assert made.status == 200 and made.header("content-type") == "application/json"
    body = made.json
    assert set(body) == {
        *("user", "updated", "uuid", "deleted", "version", "jsonpath", "disabled"),
        *("created", "name", "extensions", "auth", "target_url", "error"),
    }
    assert body["user"] == "dmlb2001" and body["version"] == "v0.1"
    assert body["auth"] == BASIC and body["extensions"] == {}
    assert body["deleted"] is None and body["disabled"] is None and body["error"] is None
    uuid = body["uuid"]
    got = await api("GET", f"/{uuid}")
    assert got.status == 200 and got.json == body
    listed = await api("GET")
    assert listed.status == 200 and [m["uuid"] for m in listed.json] == [uuid]
    put = await api("PUT", f"/{uuid}", {"target_url": "http://api.example.com/receive"})
    assert put.status == 200
    assert put.json["target_url"] == "http://api.example.com/receive"
    assert put.json["uuid"] == uuid and put.json["created"] == body["created"]
    gone = await api("DELETE", f"/{uuid}")
    assert gone.status == 200 and gone.json["deleted"] is not None
    error_of(await api("GET", f"/{uuid}"), 403)
    assert (await api("GET")).json == []


@pytest_twisted.ensureDeferred
async def test_a_user_sees_only_their_own(api: Api) -> None:
    """Another user's uuid is a 403 for read, update, delete and retry, as an unknown one."""
    uuid = (await api("POST", "", CREATE)).json["uuid"]
    unknown = "6cf47199-5abf-4ae3-a40d-9d6283d0ee21"
    for target in (uuid, unknown):
        for method, body in [("GET", None), ("PUT", {"name": "x"}), ("DELETE", None)]:
            error_of(await api(method, f"/{target}", body, user="bjohn"), 403)
        error_of(await api("POST", f"/{target}/retry", user="bjohn"), 403)
    assert (await api("GET", user="bjohn")).json == []
    assert (await api("GET", f"/{uuid}")).json["name"] == "My Event Match"


@pytest_twisted.ensureDeferred
async def test_no_user_is_401(api: Api) -> None:
    """Without a user every route is a 401 (Pacifica would use a default user)."""
    for method, path in [("GET", ""), ("POST", ""), ("GET", "/x"), ("DELETE", "/x")]:
        error_of(await api(method, path, CREATE if method == "POST" else None, user=None), 401)


@pytest_twisted.ensureDeferred
async def test_auth_header_form_and_extensions(api: Api) -> None:
    """Pacifica's header auth form and extensions are kept as given."""
    made = await api("POST", "", {**CREATE, "auth": HEADER, "extensions": {"a": [1, "b"]}})
    assert made.status == 200
    assert made.json["auth"] == HEADER and made.json["extensions"] == {"a": [1, "b"]}


@pytest_twisted.ensureDeferred
async def test_reenable_and_retry(api: Api) -> None:
    """A parked subscription: POST .../retry and Pacifica's PUT error=null both resume it."""
    uuid = (await api("POST", "", CREATE)).json["uuid"]
    store = api.store
    k = hashlib.sha256(b"/s\x001").hexdigest()
    await store.enqueue(k, {"id": "1"}, [uuid])
    (d,) = await store.claim("w", 0.0, 30, 5)
    await store.failed(d.id, "w", "target said 500", None)
    assert (await api("GET", f"/{uuid}")).json["error"] == "target said 500"
    retried = await api("POST", f"/{uuid}/retry")
    assert retried.status == 200 and retried.json == {"uuid": uuid, "retried": 1}
    assert (await api("GET", f"/{uuid}")).json["error"] is None
    (d,) = await store.claim("w", 0.0, 30, 5)
    await store.failed(d.id, "w", "again", None)
    put = await api("PUT", f"/{uuid}", {"disabled": None, "error": None})
    assert put.status == 200 and put.json["error"] is None
    assert [x.id for x in await store.claim("w", 0.0, 30, 5)] == [d.id]


@pytest_twisted.ensureDeferred
async def test_disable_with_a_time(api: Api) -> None:
    """C{disabled} takes a date-time (Pacifica's naive form is read as UTC) or null."""
    uuid = (await api("POST", "", CREATE)).json["uuid"]
    put = await api("PUT", f"/{uuid}", {"disabled": "2018-08-02T13:53:05.838827"})
    assert put.json["disabled"] == "2018-08-02T13:53:05.838827+00:00"
    assert [s.uuid for s in await api.store.active_subscriptions()] == []
    put = await api("PUT", f"/{uuid}", {"disabled": None})
    assert put.json["disabled"] is None


@pytest_twisted.ensureDeferred
async def test_read_only_fields_may_be_sent_back_unchanged(api: Api) -> None:
    """A client may PUT back what it read; changing a read-only field is a 400 naming it."""
    body = (await api("POST", "", CREATE)).json
    again = await api("PUT", f"/{body['uuid']}", {**body, "name": "renamed"})
    assert again.status == 200 and again.json["name"] == "renamed"
    for name, value in [("user", "bjohn"), ("uuid", "x"), ("created", "2000-01-01T00:00:00")]:
        err = error_of(await api("PUT", f"/{body['uuid']}", {name: value}), 400)
        assert err["field"] == name
    error_of(await api("POST", "", {**CREATE, "uuid": body["uuid"]}), 400)
    assert (await api("POST", "", {**CREATE, "user": "dmlb2001"})).status == 200


BAD_CREATES = [
    ({"jsonpath": "data", "target_url": "http://example.com/"}, "name"),
    ({**CREATE, "name": ""}, "name"),
    ({**CREATE, "name": 5}, "name"),
    ({**CREATE, "name": "x" * 256}, "name"),
    ({**CREATE, "name": "a\u0000b"}, "name"),
    ({"name": "n", "target_url": "http://example.com/"}, "jsonpath"),
    ({**CREATE, "jsonpath": "$["}, "jsonpath"),
    ({**CREATE, "jsonpath": '$.data[?(@.value="Blah"'}, "jsonpath"),
    ({**CREATE, "jsonpath": None}, "jsonpath"),
    ({"name": "n", "jsonpath": "data"}, "target_url"),
    ({**CREATE, "target_url": "ftp://example.com/"}, "target_url"),
    ({**CREATE, "target_url": "http://10.0.0.1/"}, "target_url"),
    ({**CREATE, "target_url": "http://[::1]:80/"}, "target_url"),
    ({**CREATE, "auth": "basic"}, "auth"),
    ({**CREATE, "auth": {"type": "digest"}}, "auth.type"),
    ({**CREATE, "auth": {"type": "basic"}}, "auth.basic"),
    ({**CREATE, "auth": {"type": "basic", "basic": {"username": "u"}}}, "auth.basic.password"),
    (
        {**CREATE, "auth": {"type": "basic", "basic": {"username": "u:x", "password": "p"}}},
        "auth.basic.username",
    ),
    (
        {**CREATE, "auth": {"type": "header", "header": {"type": "B", "credentials": "a\r\nX: y"}}},
        "auth.header.credentials",
    ),
    ({**CREATE, "auth": {**BASIC, "extra": 1}}, "auth.extra"),
    ({**CREATE, "extensions": []}, "extensions"),
    ({**CREATE, "extensions": "x"}, "extensions"),
    ({**CREATE, "version": 1}, "version"),
    ({**CREATE, "disabled": "yesterday"}, "disabled"),
    ({**CREATE, "error": 3}, "error"),
    ({**CREATE, "colour": "red"}, "colour"),
    ([CREATE], "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATES)
@pytest_twisted.ensureDeferred
async def test_bad_input_is_400_naming_the_field(api: Api, body: Any, field: str) -> None:
    """Every bad field of a create is a 400 naming it (Pacifica: a 500 with a traceback)."""
    err = error_of(await api("POST", "", body), 400)
    assert err["field"] == field
    assert (await api("GET")).json == []


@pytest_twisted.ensureDeferred
async def test_bad_bodies_uuids_and_methods(api: Api) -> None:
    """Malformed JSON, a wrong type, an oversize body, a bad uuid, a wrong method: 4xx."""
    assert error_of(await api("POST", "", raw=b"{nope"), 400)["field"] == "body"
    err = error_of(await api("POST", "", raw=b"{}", headers={"content-type": "text/plain"}), 400)
    assert err["field"] == "body"
    big = {**CREATE, "extensions": {"x": "y" * LIMIT}}
    assert error_of(await api("POST", "", big), 413)["field"] == "body"
    assert error_of(await api("GET", "/1234"), 400)["field"] == "uuid"
    uuid = (await api("POST", "", CREATE)).json["uuid"]
    error_of(await api("PATCH", f"/{uuid}"), 405)
    error_of(await api("PUT", ""), 405)
    error_of(await api("GET", f"/{uuid}/retry"), 405)
    error_of(await api("GET", f"/{uuid}/other"), 404)
    assert error_of(await api("PUT", f"/{uuid}", raw=b"[1"), 400)["field"] == "body"
    assert error_of(await api("PUT", f"/{uuid}", {"jsonpath": "$$"}), 400)["field"] == "jsonpath"


@pytest_twisted.ensureDeferred
async def test_allowed_internal_target(api: Api) -> None:
    """A loopback target passes when gateway.allow_targets lists it."""
    made = await api("POST", "", {**CREATE, "target_url": "http://127.0.0.1:9999/hook"})
    assert made.status == 200
