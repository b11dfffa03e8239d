"""twistd cc --http, end to end: a real container process serving the gateway."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers import closed_port
from tests.launch import interrupt, launch, wait_for_file


def test_http_option_serves_the_gateway_with_a_generated_token(tmp_path: Path) -> None:
    """--http starts the gateway on the address given; with no authentication
    configured its token is in ion-data/gateway.token (removed at exit), and it
    serves hello's op and declared route to that token only."""
    port = closed_port()
    ready = tmp_path / "ready"
    proc = launch("gw", "-n", "--http", f"127.0.0.1:{port}", "--ready-file", str(ready),
                  "-a", "gateway.services=[hello]", "hello.rel", cwd=tmp_path)  # fmt: skip
    try:
        wait_for_file(ready, proc)
        token_file = tmp_path / "ion-data" / "gateway.token"
        token = token_file.read_text().strip()
        base = f"http://127.0.0.1:{port}"

        def call(path: str, data: bytes | None, auth: str | None) -> tuple[int, object]:
            headers = {"Content-Type": "application/json"}
            if auth:
                headers["Authorization"] = f"Bearer {auth}"
            req = urllib.request.Request(base + path, data=data, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as e:
                return e.code, json.load(e)

        assert call("/rpc/hello/hello", b'"http"', token) == (
            200, {"value": "Hello there, http"}
        )  # fmt: skip
        assert call("/hello/web", None, token) == (200, {"value": "Hello there, web"})
        assert call("/rpc/hello/hello", b'"x"', None)[0] == 401
    finally:
        output = interrupt(proc)
    assert f"gateway at http://127.0.0.1:{port}/" in output
    assert token not in output
    assert not token_file.exists()
