"""Signing keys and containers of one system on one embedded broker, signing or not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config, merge
from ion.core.messaging.embedded import EmbeddedBroker
from ion.core.security.keys import new_key_line


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """A key file: a current key k2 and the previous key k1."""
    path = tmp_path / "ion.key"
    path.write_text(f"{new_key_line('k2')}\n{new_key_line('k1')}\n")
    return path


def config(key_file: Path | None, **sections: Any) -> Config:
    """The defaults, signing on with C{key_file} (None: off), no boot check unless given."""
    extra: dict[str, Any] = dict(sections)
    if key_file is not None:
        security = {"signing": True, "key_file": str(key_file), "join_check": 0}
        extra["security"] = {**security, **sections.get("security", {})}
    return Config(merge(DEFAULTS, extra))


@pytest_twisted.async_yield_fixture
async def system() -> AsyncIterator[Callable[..., Awaitable[Container]]]:
    """C{await system(config, start=True)}: a container of sysname C{sec}; all made
    (booted or not) are stopped at teardown."""
    from twisted.internet import reactor

    broker = EmbeddedBroker(reactor)
    made: list[Container] = []

    async def make(cfg: Config, start: bool = True) -> Container:
        container = Container(
            reactor=reactor, config=cfg, container_id=f"sec{len(made) + 1}",
            sysname="sec", broker=broker.connection(),
        )  # fmt: skip
        made.append(container)
        if start:
            await container.start()
        return container

    yield make
    for container in reversed(made):
        await container.stop()


class Frame:
    """A signed message's frame, taken apart: kid, headers (unpacked), packed
    content, sig; C{pack()} puts it together again as it is (a tamperer's work)."""

    def __init__(self, body: bytes) -> None:
        self.kid, headers, self.content, self.sig = msgpack.unpackb(body, raw=False)
        self.packed_headers = headers
        self.headers = msgpack.unpackb(headers, raw=False)

    def pack(self, repack_headers: bool = True) -> bytes:
        headers = _packb(self.headers) if repack_headers else self.packed_headers
        return _packb([self.kid, headers, self.content, self.sig])


def _packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)
