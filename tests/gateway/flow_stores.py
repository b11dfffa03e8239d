"""The store kinds the gateway's flow tests run on, behind one small interface.

C{fake}: the in-memory store (L{tests.gateway.fakes}); C{sqlite} and
C{postgresql}: the real ones (L{tests.gateway.stores}: SQLite in the test's
directory, PostgreSQL in a schema of the test's own, dropped afterwards). Every
gateway of a test opens the same database, as gateway instances of one system do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_twisted

from ion.gateway import process as gateway_process
from tests.gateway.fakes import FakeStore
from tests.helpers import Collector


class StoreKind:
    """Makes the gateways of a test open this kind of store; subscribes, retries."""

    def __init__(self, kind: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.kind = kind
        self.errors: Collector[str] = Collector()
        self.stores: list[Any] = []
        self.maker: Any = None
        if kind == "fake":
            shared = FakeStore()
        else:
            from tests.gateway.stores import StoreMaker

            self.maker = StoreMaker(kind, tmp_path)

        async def open_store(config: Any, reactor: Any) -> Any:
            store = shared if kind == "fake" else await self.maker(reactor)
            self._watch(store)
            self.stores.append(store)
            return store

        monkeypatch.setattr(gateway_process, "open_store", open_store)

    def _watch(self, store: Any) -> None:
        """Tell C{errors} of each delivery parked (the subscription's error set)."""
        failed = store.failed
        if getattr(failed, "watched", False):
            return

        async def failed_and_told(delivery_id: str, worker: str, error: str,
                                  retry_at: float | None) -> None:  # fmt: skip
            await failed(delivery_id, worker, error, retry_at)
            if retry_at is None:
                self.errors(error)

        failed_and_told.watched = True  # type: ignore[attr-defined]
        store.failed = failed_and_told

    async def subscribe(self, gateway: Any, jsonpath: str, url: str) -> str:
        store = gateway.store
        if self.kind == "fake":
            return store.add_subscription(jsonpath, url).uuid
        record = await store.create_subscription(
            "ann", {"name": "flow", "jsonpath": jsonpath, "target_url": url}
        )
        return record.uuid

    async def wait_for_error(self, gateway: Any, sub: str) -> str:
        await self.errors.wait(1, timeout=20)
        store = gateway.store
        if self.kind == "fake":
            error = store.subscriptions[sub].error
        else:
            error = (await store.get_subscription(sub)).error
        assert error is not None
        return error

    async def retry(self, gateway: Any, sub: str) -> None:
        await gateway.store.retry_parked(sub)
        gateway.flow.worker.poke()

    async def cleanup(self) -> None:
        if self.maker is not None:
            self.maker.opened.clear()  # the gateways closed theirs
            await self.maker.cleanup()


KINDS = ["fake", "sqlite", "postgresql"]


@pytest_twisted.async_yield_fixture(params=KINDS)
async def gateway_store(
    request: pytest.FixtureRequest,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[StoreKind]:
    """The store the test's gateways open (the same database for all of them).
    The containers' fixture takes it, so it is dropped after they stopped."""
    kind = StoreKind(request.param, tmp_path, monkeypatch)
    yield kind
    await kind.cleanup()
