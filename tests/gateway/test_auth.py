"""Who sends a gateway request (ion.gateway.auth): bearer tokens, the proxy's
Http-Remote-User, and a generated token when neither is configured."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.web.test.requesthelper import DummyRequest

from ion.gateway.auth import Authenticator, authenticator_for, generated
from ion.gateway.config import GatewayConfig
from ion.gateway.web import HttpError
from tests.gateway.client import fetch
from tests.gateway.conftest import TOKEN


def request(**headers: str) -> DummyRequest:
    r = DummyRequest([b""])
    for name, value in headers.items():
        r.requestHeaders.setRawHeaders(name.replace("_", "-"), [value])
    return r


def test_bearer_token_maps_to_its_user() -> None:
    """A known bearer token is its user; the scheme is case-insensitive."""
    a = Authenticator({"t1": "ann", "t2": "bob"})
    assert a.user_of(request(authorization="Bearer t2")) == "bob"
    assert a.user_of(request(authorization="bearer t1")) == "ann"
    assert a.user_of(request()) is None


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer ", "Basic dDE6", "t1"])
def test_bad_credentials_are_401(header: str) -> None:
    """An unknown token, an empty one or another scheme is a 401."""
    with pytest.raises(HttpError) as info:
        Authenticator({"t1": "ann"}).user_of(request(authorization=header))
    assert info.value.status == 401


def test_remote_user_only_when_trusted() -> None:
    """Http-Remote-User names the user only with auth.remote_user on; a token wins over it."""
    assert Authenticator({}).user_of(request(http_remote_user="eve")) is None
    trusting = Authenticator({"t1": "ann"}, remote_user=True)
    assert trusting.user_of(request(http_remote_user=" dmlb2 ")) == "dmlb2"
    assert trusting.user_of(request(http_remote_user="x", authorization="Bearer t1")) == "ann"
    with pytest.raises(HttpError):
        trusting.user_of(request(http_remote_user="  "))


def test_token_generated_when_nothing_configured(tmp_path: Path) -> None:
    """No tokens and no remote user: a random token for 'local' in a 0600 file."""
    config = GatewayConfig.from_config({"gateway": {"data_dir": str(tmp_path / "d")}})
    token, path = generated(config)  # type: ignore[misc]
    assert path == str(tmp_path / "d" / "gateway.token")
    assert Path(path).read_text().strip() == token and len(token) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (
        authenticator_for(config, token).user_of(request(authorization=f"Bearer {token}"))
        == "local"
    )
    again, _ = generated(config)  # type: ignore[misc]
    assert again != token


def test_no_token_generated_when_configured(tmp_path: Path) -> None:
    """Configured tokens or a trusted proxy: nothing generated, no file."""
    for auth in ({"tokens": {"t": "ann"}}, {"remote_user": True}):
        config = GatewayConfig.from_config({"gateway": {"data_dir": str(tmp_path), "auth": auth}})
        assert generated(config) is None
    assert not (tmp_path / "gateway.token").exists()


@pytest_twisted.ensureDeferred
async def test_gateway_with_no_auth_serves_its_token_only(
    start_gateway: Any, tmp_path: Path, logs: Any
) -> None:
    """The gateway logs the token file's path, never the token; the token works,
    no credentials do not; the file is gone once the gateway stops."""
    gw = await start_gateway(auth={"tokens": {}})
    path = tmp_path / "data" / "gateway.token"
    token = path.read_text().strip()
    await logs.wait_for_text(str(path))
    assert not [t for t in logs.texts() if token in t]
    base = gw.url.rstrip("/")
    ok = await fetch(
        "POST", f"{base}/rpc/{gw.id}/ping", headers={"Authorization": f"Bearer {token}"}
    )
    assert ok.status == 404  # (authenticated: a process id is simply not a service)
    no = await fetch("POST", f"{base}/rpc/x/ping")
    assert no.status == 401
    await gw.container.terminate(gw)
    assert not path.exists()


@pytest_twisted.ensureDeferred
async def test_gateway_never_logs_a_bad_token(start_gateway: Any, logs: Any) -> None:
    """An unknown bearer token is refused and appears in no log line."""
    gw = await start_gateway()
    secret = "guess-" + TOKEN
    a = await fetch("POST", f"{gw.url}rpc/x/y", headers={"Authorization": f"Bearer {secret}"})
    assert a.status == 401
    assert not [t for t in logs.texts() if secret in t]
