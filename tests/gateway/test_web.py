"""The gateway's JSON conventions (ion.gateway.web) over a real loopback site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.web.resource import Resource

from ion.gateway.web import GatewaySite, HttpError, JsonResource, read_json
from tests.gateway.client import fetch

LIMIT = 64


class Echo(JsonResource):
    """Answers what it read: the user, the path and the JSON body (POST)."""

    async def handle(self, request: Any, user: str | None, path: list[str]) -> tuple[int, Any]:
        body = read_json(request, LIMIT) if request.method == b"POST" else None
        if path[:1] == ["fail"]:
            raise RuntimeError("secret detail")
        if path[:1] == ["teapot"]:
            raise HttpError(418, "name", "short and stout")
        if path[:1] == ["nan"]:
            return 200, float("nan")
        return 200, {"user": user, "path": path, "body": body}


class Named:
    """An authenticator: the user is the X-Who header; 'bad' is refused."""

    def user_of(self, request: Any) -> str | None:
        who = request.getHeader(b"x-who")
        if who == b"bad":
            raise HttpError(401, None, "unknown token")
        return who.decode() if who else None


@pytest_twisted.async_yield_fixture
async def base() -> AsyncIterator[str]:
    root = Resource()
    root.putChild(b"echo", Echo())
    site = GatewaySite(root, max_body=LIMIT, authenticator=Named())
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}"
    await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_json_answer_with_decoded_path_and_user(base: str) -> None:
    """A handler's answer is JSON; the path below the resource is percent-decoded."""
    a = await fetch("POST", f"{base}/echo/a%20b/%C3%A9/", {"x": [1]}, headers={"X-Who": "ann"})
    assert a.status == 200
    assert a.header("content-type") == "application/json"
    assert a.json == {"user": "ann", "path": ["a b", "é"], "body": {"x": [1]}}


@pytest_twisted.ensureDeferred
async def test_http_error_is_its_json_error(base: str) -> None:
    """An HttpError is answered with its status and the field it names."""
    a = await fetch("GET", f"{base}/echo/teapot")
    assert a.status == 418
    assert a.json == {"error": {"status": 418, "field": "name", "message": "short and stout"}}


@pytest_twisted.ensureDeferred
async def test_other_exception_is_500_without_detail(base: str) -> None:
    """Any other failure is a bare 500: no traceback, no message of its own."""
    a = await fetch("GET", f"{base}/echo/fail")
    assert a.status == 500
    assert a.json == {"error": {"status": 500, "field": None, "message": "internal error"}}
    assert b"secret" not in a.body and b"Traceback" not in a.body


@pytest_twisted.ensureDeferred
async def test_answer_that_is_not_json_is_500(base: str) -> None:
    """A handler returning something JSON cannot say (NaN) gets a 500, not broken JSON."""
    a = await fetch("GET", f"{base}/echo/nan")
    assert a.status == 500
    assert a.json["error"]["message"] == "internal error"


@pytest_twisted.ensureDeferred
async def test_authenticator_refusal_is_401_with_challenge(base: str) -> None:
    """The site's authenticator refusing is a 401 with a Bearer challenge."""
    a = await fetch("GET", f"{base}/echo/x", headers={"X-Who": "bad"})
    assert a.status == 401
    assert a.header("www-authenticate") == "Bearer"


@pytest.mark.parametrize(
    ("raw", "ctype", "message"),
    [
        (b"{", "application/json", "not JSON"),
        (b"NaN", "application/json", "not JSON"),
        (b"\xff\xfe", "application/json", "not UTF-8"),
        (b"", "application/json", "expected a JSON body"),
        (b"[[]]", "text/plain", "content type"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_body_is_400_field_body(base: str, raw: bytes, ctype: str, message: str) -> None:
    """Bad JSON, bad encoding, an empty body or a foreign content type: 400 naming 'body'."""
    a = await fetch("POST", f"{base}/echo", raw=raw, headers={"Content-Type": ctype})
    assert a.status == 400
    assert a.json["error"]["field"] == "body"
    assert message in a.json["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_json_suffix_types_and_no_type_are_json(base: str) -> None:
    """application/cloudevents+json and a body without a content type are read as JSON."""
    a = await fetch("POST", f"{base}/echo", raw=b"[1]",
                    headers={"Content-Type": "application/cloudevents+json; charset=utf-8"})  # fmt: skip
    b = await fetch("POST", f"{base}/echo", raw=b"[2]")
    assert (a.status, a.json["body"]) == (200, [1])
    assert (b.status, b.json["body"]) == (200, [2])


@pytest_twisted.ensureDeferred
async def test_body_over_the_limit_is_413(base: str) -> None:
    """A body past max_body is 413 naming 'body', whether or not its length was announced."""
    big = b"[" + b"1," * LIMIT + b"1]"
    a = await fetch("POST", f"{base}/echo", raw=big)
    assert a.status == 413
    assert a.json["error"]["field"] == "body"
    chunked = await fetch("POST", f"{base}/echo", raw=big, chunked=True)
    assert (chunked.status, chunked.json["error"]["field"]) == (413, "body")
    exact = b'"' + b"x" * (LIMIT - 2) + b'"'
    assert (await fetch("POST", f"{base}/echo", raw=exact)).status == 200
    assert (await fetch("POST", f"{base}/echo", raw=exact, chunked=True)).status == 200
