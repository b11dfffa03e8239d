"""Routes services declare (ion.gateway.routes, ion.gateway.declared)."""

from __future__ import annotations

import io
from typing import Any

import pytest
import pytest_twisted
from twisted.web.test.requesthelper import DummyRequest

from ion.core.messaging import message as m
from ion.core.process.service import ServiceProcess
from ion.gateway.declared import RouteTable, content_of
from ion.gateway.routes import Route, http, parse_routes, routes_of
from ion.gateway.web import HttpError
from ion.services.hello.service import HelloService
from tests.gateway.client import fetch
from tests.gateway.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Shop(ServiceProcess):
    service_name = "shop"

    @http("GET", "/items/<kind>/<item>")
    @http("POST", "/items/<kind>")
    def op_item(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return {"content": content, "user": headers.get(m.USER_ID)}

    def op_plain(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return None


def test_declarations_are_listed() -> None:
    """routes_of lists each declared route of each op, stacked ones too."""
    assert routes_of(HelloService) == [
        {"method": "GET", "path": "/hello/<name>", "op": "hello", "content": "name"}
    ]
    assert sorted(r["method"] for r in routes_of(Shop)) == ["GET", "POST"]


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("BREW", "/x", None),
        ("GET", "x", None),
        ("GET", "/", None),
        ("GET", "/a/<b>/<b>", None),
        ("GET", "/a/<b>", "c"),
        ("GET", "/a b", None),
        ("GET", "/a/<1x>", None),
    ],
)
def test_bad_declarations_refused(method: str, path: str, content: str | None) -> None:
    """An unknown method, a malformed path or a content naming no parameter: ValueError."""
    with pytest.raises(ValueError):
        http(method, path, content)


def test_only_ops_are_marked() -> None:
    """@http on a method that is not op_<name> is an error at class definition."""
    with pytest.raises(ValueError):
        http("GET", "/x")(lambda self: None)


def test_table_finds_and_refuses() -> None:
    """Params from the path; 405 for another method, 404 for no path; first service wins."""
    table = RouteTable(("a", "b"))
    table.set("a", [Route("GET", "/x/<id>", "get", None, "a")])
    table.set(
        "b", [Route("GET", "/x/<key>", "other", None, "b"), Route("POST", "/y", "y", None, "b")]
    )
    route, params = table.find("GET", ["x", "7"])
    assert (route.service, route.op, params) == ("a", "get", {"id": "7"})
    with pytest.raises(HttpError) as info:
        table.find("GET", ["y"])
    assert info.value.status == 405
    with pytest.raises(HttpError) as info:
        table.find("GET", ["z"])
    assert info.value.status == 404
    assert set(table.openapi_paths()) == {"/x/{id}", "/y"}


def test_parse_routes_drops_malformed() -> None:
    """A service's answer is checked: malformed entries are left out."""
    answer = [
        {"method": "GET", "path": "/ok/<a>", "op": "ok", "content": None},
        {"method": "GET", "path": "nope", "op": "x"},
        {"method": "GET", "path": "/p", "op": "not an op"},
        "junk",
    ]
    assert [r.path for r in parse_routes("s", answer)] == ["/ok/<a>"]
    assert parse_routes("s", "not a list") == []


def _request(uri: bytes, body: bytes = b"") -> DummyRequest:
    r = DummyRequest([b""])
    r.uri = uri
    r.content = io.BytesIO(body)  # type: ignore[attr-defined]
    return r


def test_content_from_params_query_and_body() -> None:
    """Path params, query params and a POST body's fields make one map; a name twice is 400."""
    get = Route("GET", "/i/<kind>", "item")
    assert content_of(get, {"kind": "k"}, _request(b"/i/k?n=1&q=%C3%A9"), 100) == {
        "kind": "k", "n": "1", "q": "é"
    }  # fmt: skip
    post = Route("POST", "/i/<kind>", "item")
    assert content_of(post, {"kind": "k"}, _request(b"/i/k", b'{"a": [1]}'), 100) == {
        "kind": "k", "a": [1]
    }  # fmt: skip
    with pytest.raises(HttpError) as info:
        content_of(post, {"kind": "k"}, _request(b"/i/k", b'{"kind": 1}'), 100)
    assert (info.value.status, info.value.field) == (400, "body.kind")
    with pytest.raises(HttpError) as info:
        content_of(post, {"kind": "k"}, _request(b"/i/k", b"[1]"), 100)
    assert (info.value.status, info.value.field) == (400, "body")


@pytest_twisted.ensureDeferred
async def test_declared_routes_served(start_gateway: Any, make_container: Any, logs: Any) -> None:
    """With gateway.services, GET /hello/<name> calls hello's op as the user; others too."""
    container = await make_container()
    await container.spawn(HelloService)
    await container.spawn(Shop)
    gw = await start_gateway(container, services=["hello", "shop"])
    await logs.wait_for_text("route(s) of shop")
    base = gw.url.rstrip("/")
    a = await fetch("GET", f"{base}/hello/world", headers=AUTH)
    assert (a.status, a.json) == (200, {"value": "Hello there, world"})
    b = await fetch("GET", f"{base}/items/tea/green?size=2", headers=AUTH)
    assert b.json == {"content": {"kind": "tea", "item": "green", "size": "2"}, "user": "ann"}
    c = await fetch("POST", f"{base}/items/tea", {"n": 3}, AUTH)
    assert c.json["content"] == {"kind": "tea", "n": 3}
    assert (await fetch("GET", f"{base}/hello/world")).status == 401
    assert (await fetch("DELETE", f"{base}/hello/world", headers=AUTH)).status == 405
    assert (await fetch("GET", f"{base}/nothing/here", headers=AUTH)).status == 404
    doc = (await fetch("GET", f"{base}/openapi.json")).json
    assert "get" in doc["paths"]["/hello/{name}"]


@pytest_twisted.ensureDeferred
async def test_service_started_later_is_asked_again(
    start_gateway: Any, make_container: Any, logs: Any
) -> None:
    """A listed service not running at start is asked again until it answers."""
    from twisted.internet import reactor

    import ion.gateway.process as gp

    container = await make_container()
    old, gp.RETRY = gp.RETRY, 0.05  # (a short retry on the real reactor: this test's clock)
    try:
        gw = await start_gateway(container, services=["hello"])
        await logs.wait_for_text("no routes from hello yet")
        await container.spawn(HelloService)
        await logs.wait_for_text("route(s) of hello")
    finally:
        gp.RETRY = old
    assert gw.routes.pending == [] and reactor.running
