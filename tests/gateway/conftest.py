"""A container with the gateway on a free loopback port (embedded broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_twisted

from ion.core.cc.container import Container
from ion.gateway.process import Gateway

# A gateway store on SQLite, then on PostgreSQL (tests/gateway/stores.py).
from tests.gateway.stores import make_store  # noqa: F401

TOKEN = "test-token-ann-0123456789"
OTHER = "test-token-bob-0123456789"


def gateway_config(tmp_path: Path, **gateway: Any) -> dict[str, Any]:
    """The config of a test gateway: port 0, two users' tokens, files under tmp_path."""
    settings: dict[str, Any] = {
        "http": 0,
        "data_dir": str(tmp_path / "data"),
        "auth": {"tokens": {TOKEN: "ann", OTHER: "bob"}},
    }
    settings.update(gateway)
    return {"gateway": settings}


@pytest_twisted.async_yield_fixture
async def start_gateway(
    make_container: Callable[..., Awaitable[Container]], tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """C{await start_gateway(container=None, **gateway_keys)}: a Gateway process, active."""

    async def start(container: Container | None = None, **gateway: Any) -> Gateway:
        if container is None:
            container = await make_container()
        proc = await container.spawn(Gateway, config=gateway_config(tmp_path, **gateway))
        assert isinstance(proc, Gateway) and proc.url is not None
        return proc

    yield start
