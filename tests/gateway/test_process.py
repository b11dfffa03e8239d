"""The gateway process: started by its app, listening where configured, serving
/openapi.json, and no longer listening once terminated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError

from ion.core.exception import SpawnError
from ion.gateway.openapi import document
from ion.gateway.process import Gateway
from ion.test.waiting import wait_for
from tests.gateway.client import fetch
from tests.gateway.conftest import TOKEN, gateway_config
from tests.helpers import closed_port


@pytest_twisted.ensureDeferred
async def test_started_by_its_app_logs_its_url_and_stops_listening(
    make_container: Any, tmp_path: Path, logs: Any
) -> None:
    """gateway.app spawns the gateway on gateway.http; stopping the app closes the port."""
    port = closed_port()
    container = await make_container()
    await container.start_app("gateway", config=gateway_config(tmp_path, http=f"127.0.0.1:{port}"))
    await logs.wait_for_text(f"gateway at http://127.0.0.1:{port}/")
    gw = next(p for p in container.proc_manager.processes.values() if isinstance(p, Gateway))
    assert gw.port == port
    a = await fetch("GET", f"http://127.0.0.1:{port}/openapi.json")
    assert a.status == 200 and a.json["openapi"] == "3.1.0"
    await container.stop_app("gateway")
    with pytest.raises(ConnectionRefusedError):
        await fetch("GET", f"http://127.0.0.1:{port}/openapi.json")


@pytest_twisted.ensureDeferred
async def test_openapi_document(start_gateway: Any) -> None:
    """The document is public, 3.1, has the rpc route, the error schema and a bearer scheme."""
    gw = await start_gateway()
    doc = (await fetch("GET", f"{gw.url}openapi.json")).json
    assert doc["openapi"] == "3.1.0"
    assert "post" in doc["paths"]["/rpc/{service}/{op}"]
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert "Error" in doc["components"]["schemas"]
    assert doc["security"] == [{"bearer": []}]
    assert (await fetch("POST", f"{gw.url}openapi.json")).status == 405


def test_document_merges_module_fragments() -> None:
    """Each module's OPENAPI_PATHS and OPENAPI_SCHEMAS are merged in."""

    class Fragment:
        OPENAPI_PATHS = {"/x": {"get": {"responses": {}}}}
        OPENAPI_SCHEMAS = {"X": {"type": "object"}}

    doc = document([Fragment], {"/y": {"get": {"responses": {}}}})
    assert {"/x", "/y", "/openapi.json"} <= set(doc["paths"])
    assert doc["components"]["schemas"] == {"X": {"type": "object"}}


@pytest_twisted.ensureDeferred
async def test_unknown_paths_are_json_404(start_gateway: Any) -> None:
    """The root and unknown paths answer a JSON 404, never an HTML page."""
    gw = await start_gateway()
    for path in ("", "nothing", "a/b/c"):
        a = await fetch("GET", f"{gw.url}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert a.status == 404 and a.json["error"]["status"] == 404


@pytest_twisted.ensureDeferred
async def test_port_taken_fails_the_spawn(start_gateway: Any, tmp_path: Path) -> None:
    """A gateway that cannot listen fails to start, saying where, leaving no token file."""
    first = await start_gateway()
    with pytest.raises(SpawnError) as info:
        await start_gateway(first.container, http=first.port, auth={"tokens": {}})
    assert f"gateway: cannot listen on 127.0.0.1:{first.port}" in str(info.value)
    assert not (tmp_path / "data" / "gateway.token").exists()  # (its token went with it)


@pytest_twisted.ensureDeferred
async def test_store_forgets_what_is_older_than_the_retention(
    start_gateway: Any, logs: Any
) -> None:
    """Delivered deliveries and seen event ids go once gateway.retention has passed,
    on the gateway's own schedule: the store does not grow for ever."""
    gw = await start_gateway(retention=0.2)
    assert await gw.store.first_sighting("/t", "seen-once")
    assert not await gw.store.first_sighting("/t", "seen-once")
    await logs.wait_for_text("forgot 1 delivered or seen event row(s) older than 0.2 s")
    assert await gw.store.first_sighting("/t", "seen-once")  # forgotten: first again


@pytest_twisted.ensureDeferred
async def test_a_failed_prune_is_logged_and_tried_again(start_gateway: Any, logs: Any) -> None:
    """A prune the database fails is a warning, and the next one runs."""
    gw = await start_gateway(retention=0.2)
    real, cuts = gw.store.prune, []
    again: Deferred[None] = Deferred()

    async def failing_once(before: float) -> int:
        cuts.append(before)
        if len(cuts) == 1:
            raise OSError("database away")
        if not again.called:
            again.callback(None)
        return int(await real(before))

    gw.store.prune = failing_once
    await logs.wait_for_text("pruning the store failed (tried again in 0.2 s): database away")
    await wait_for(again)
    assert cuts[1] > cuts[0] and gw.state == "ACTIVE"
