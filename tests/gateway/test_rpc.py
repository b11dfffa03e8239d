"""POST /rpc/<service>/<op> against services on the embedded broker: each status mapping."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from ion.core import exception as exc
from ion.core.exception import BadRequest, NotFound
from ion.core.messaging import message as m
from ion.core.process.service import ServiceProcess
from ion.gateway.rpc import call_service
from ion.gateway.web import HttpError
from ion.services.hello.service import HelloService
from tests.core.security.test_policy import policy_config
from tests.gateway.client import fetch
from tests.gateway.conftest import OTHER, TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Probe(ServiceProcess):
    """Answers in every way the gateway maps."""

    service_name = "probe"

    def op_whoami(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return {"user": headers.get(m.USER_ID), "content": content}

    def op_raw(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return b"\x00\x01"

    def op_bad(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        raise BadRequest("no good")

    def op_missing(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        raise NotFound("no such thing")

    def op_crash(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        raise RuntimeError("it broke")

    def op_hang(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return Deferred()  # never answers


async def served(start_gateway: Any, make_container: Any, **kw: Any) -> str:
    container = await make_container(**kw)
    await container.spawn(Probe)
    await container.spawn(HelloService)
    gw = await start_gateway(container)
    return gw.url.rstrip("/")


@pytest_twisted.ensureDeferred
async def test_reply_as_json_and_user_carried(start_gateway: Any, make_container: Any) -> None:
    """The body is the content; the reply is JSON; the token's user is the user-id."""
    base = await served(start_gateway, make_container)
    a = await fetch("POST", f"{base}/rpc/probe/whoami", {"x": [1, "y"]}, AUTH)
    assert (a.status, a.json) == (200, {"user": "ann", "content": {"x": [1, "y"]}})
    b = await fetch(
        "POST", f"{base}/rpc/probe/whoami", headers={"Authorization": f"Bearer {OTHER}"}
    )
    assert (b.status, b.json) == (200, {"user": "bob", "content": None})
    h = await fetch("POST", f"{base}/rpc/hello/hello", "you", AUTH)
    assert (h.status, h.json) == (200, {"value": "Hello there, you"})


@pytest_twisted.ensureDeferred
async def test_bytes_reply_is_base64(start_gateway: Any, make_container: Any) -> None:
    """Bytes in a reply come back as base64, as ion-rpc prints them."""
    base = await served(start_gateway, make_container)
    a = await fetch("POST", f"{base}/rpc/probe/raw", headers=AUTH)
    assert a.status == 200 and base64.b64decode(a.json) == b"\x00\x01"


@pytest_twisted.ensureDeferred
async def test_error_statuses(start_gateway: Any, make_container: Any) -> None:
    """ion's answers map to 400, 404 (service, op, NotFound), 500 (message only)."""
    base = await served(start_gateway, make_container)

    async def err(path: str, body: Any = None) -> tuple[int, Any, str]:
        a = await fetch("POST", f"{base}/rpc/{path}", body, AUTH)
        e = a.json["error"]
        return a.status, e["field"], e["message"]

    assert await err("probe/bad") == (400, None, "no good")
    assert await err("hello/hello", 5) == (400, None, "hello takes a string, not int")
    assert (await err("probe/missing"))[:1] == (404,)
    assert (await err("nobody/hello"))[:2] == (404, "service")
    assert (await err("probe/nosuchop"))[:2] == (404, "op")
    assert (await err("probe/not-an-op"))[:2] == (404, "op")
    assert (await err("cc.test1/ping"))[:2] == (404, "service")
    status, field, message = await err("probe/crash")
    assert (status, field) == (500, None) and "it broke" in message
    assert "Traceback" not in message


@pytest_twisted.ensureDeferred
async def test_deadline_from_header(start_gateway: Any, make_container: Any) -> None:
    """Ion-Timeout bounds the wait: no reply in time is 504; a bad value is 400 naming it."""
    base = await served(start_gateway, make_container)
    a = await fetch("POST", f"{base}/rpc/probe/hang", headers={**AUTH, "Ion-Timeout": "0.2"})
    assert a.status == 504
    for bad in ("soon", "0", "0.05", "-1", "3601", "nan", "inf"):
        b = await fetch("POST", f"{base}/rpc/probe/whoami", headers={**AUTH, "Ion-Timeout": bad})
        assert (b.status, b.json["error"]["field"]) == (400, "Ion-Timeout"), bad


@pytest_twisted.ensureDeferred
async def test_authentication_required(start_gateway: Any, make_container: Any) -> None:
    """No credentials or an unknown token: 401, and the service is not called."""
    base = await served(start_gateway, make_container)
    a = await fetch("POST", f"{base}/rpc/probe/whoami")
    b = await fetch("POST", f"{base}/rpc/probe/whoami", headers={"Authorization": "Bearer nope"})
    c = await fetch("POST", f"{base}/rpc/probe/whoami", headers={"Authorization": "Basic eDp5"})
    assert (a.status, b.status, c.status) == (401, 401, 401)


@pytest_twisted.ensureDeferred
async def test_policy_answers_401_and_403(
    start_gateway: Any, make_container: Any, tmp_path: Path
) -> None:
    """The container's policy judges the gateway's user: 403 without the role."""
    policy = """
default: deny
users: {ann: [operator]}
services:
  hello: {hello: [operator]}
"""
    base = await served(start_gateway, make_container, config=policy_config(tmp_path, policy))
    ok = await fetch("POST", f"{base}/rpc/hello/hello", "ann", AUTH)
    assert ok.status == 200
    no = await fetch("POST", f"{base}/rpc/hello/hello", "bob",
                     {"Authorization": f"Bearer {OTHER}"})  # fmt: skip
    assert no.status == 403 and "operator" in no.json["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_too_large(start_gateway: Any, make_container: Any) -> None:
    """Over gateway.max_body, or over what the broker takes: 413."""
    container = await make_container()
    await container.spawn(Probe)
    gw = await start_gateway(container, max_body=2000)
    base = gw.url.rstrip("/")
    a = await fetch("POST", f"{base}/rpc/probe/whoami", "x" * 3000, AUTH)
    assert (a.status, a.json["error"]["field"]) == (413, "body")
    gw.runtime.max_message_size = 1000
    b = await fetch("POST", f"{base}/rpc/probe/whoami", "x" * 1500, AUTH)
    assert (b.status, b.json["error"]["field"]) == (413, "body")


@pytest_twisted.ensureDeferred
async def test_method_and_shape(start_gateway: Any, make_container: Any) -> None:
    """GET is 405; a path that is not /rpc/<service>/<op> is 404."""
    base = await served(start_gateway, make_container)
    assert (await fetch("GET", f"{base}/rpc/probe/whoami", headers=AUTH)).status == 405
    assert (await fetch("POST", f"{base}/rpc/probe", headers=AUTH)).status == 404


class Raising:
    """A stand-in process whose rpc_send fails with C{error}, at once or later."""

    def __init__(self, error: Exception, at_once: bool = False) -> None:
        self.error = error
        self.at_once = at_once

    def rpc_send(self, *args: Any, **kwargs: Any) -> Any:
        from twisted.internet.defer import fail

        if self.at_once:
            raise self.error
        return fail(self.error)


def _received(code: int, error_type: str, message: str = "m") -> exc.ReceivedError:
    return exc.received_error({}, {"code": code, "type": error_type, "message": message})


@pytest.mark.parametrize(
    ("error", "at_once", "status", "field"),
    [
        (exc.NoSuchServiceError("x"), False, 404, "service"),
        (exc.TimeoutError("x"), False, 504, None),
        (_received(408, "TimeoutError"), False, 504, None),
        (_received(3002, "HandlerTimeoutError"), False, 504, None),
        (_received(400, "UnknownOpError"), False, 404, "op"),
        (_received(409, "Conflict"), False, 409, None),
        (_received(500, "RuntimeError"), False, 500, None),
        (_received(503, "ProcessError"), False, 500, None),
        (exc.MessageFormatError("over broker.max_message_size (9)"), True, 413, "body"),
        (exc.MessageFormatError("cannot encode"), True, 400, "body"),
        (exc.MessageFormatError("unknown type"), False, 502, None),
        (exc.ConnectionLostError("gone"), False, 503, None),
        (exc.ConnectionClosedError("closed"), True, 503, None),
    ],
)
@pytest_twisted.ensureDeferred
async def test_each_error_maps_to_its_status(
    error: Exception, at_once: bool, status: int, field: str | None
) -> None:
    """Every way a call can fail is one HTTP status (and field), never an exception."""
    with pytest.raises(HttpError) as info:
        await call_service(Raising(error, at_once), "svc", "op", None, "ann", None)
    assert (info.value.status, info.value.field) == (status, field)
