"""The store kinds the gateway's flow tests run on, behind one small interface."""

from __future__ import annotations

from typing import Any

import pytest

from ion.gateway import process as gateway_process
from tests.gateway.fakes import FakeStore
from tests.helpers import Collector


class FakeKind:
    """The in-memory store, shared by every gateway of the test (as one database is)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = FakeStore()
        self.errors: Collector[str] = Collector()
        failed = self.store.failed

        async def failed_and_told(delivery_id: str, worker: str, error: str,
                                  retry_at: float | None) -> None:  # fmt: skip
            await failed(delivery_id, worker, error, retry_at)
            if retry_at is None:
                self.errors(error)

        self.store.failed = failed_and_told  # type: ignore[method-assign]
        real_optional = gateway_process.optional

        async def open_store(config: Any, reactor: Any) -> FakeStore:
            return self.store

        def optional(module: str, name: str) -> Any:
            if module == "ion.gateway.store":
                return open_store
            if module == "ion.gateway.eventmatch":
                return None
            return real_optional(module, name)

        monkeypatch.setattr(gateway_process, "optional", optional)

    async def subscribe(self, gateway: Any, jsonpath: str, url: str) -> str:
        return self.store.add_subscription(jsonpath, url).uuid

    async def wait_for_error(self, gateway: Any, sub: str) -> str:
        await self.errors.wait(1, timeout=20)
        error = self.store.subscriptions[sub].error
        assert error is not None
        return error

    async def retry(self, gateway: Any, sub: str) -> None:
        await self.store.retry_parked(sub)
        gateway.flow.worker.poke()


@pytest.fixture(params=["fake"])
def gateway_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The store the test's gateways open."""
    return FakeKind(monkeypatch)
