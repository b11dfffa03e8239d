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


class Containers:
    """C{await made(config, start=True)}: a container of one sysname on the broker
    C{broker_of(n)} gives the C{n}th (ids C{<prefix><n>}); L{stop_all} stops all
    made, booted or not, newest first."""

    def __init__(self, sysname: str, prefix: str, broker_of: Callable[[int], Any]) -> None:
        self.sysname, self.prefix, self.broker_of = sysname, prefix, broker_of
        self.made: list[Container] = []

    async def __call__(self, cfg: Config, start: bool = True) -> Container:
        from twisted.internet import reactor

        n = len(self.made) + 1
        container = Container(
            reactor=reactor, config=cfg, container_id=f"{self.prefix}{n}",
            sysname=self.sysname, broker=self.broker_of(n),
        )  # fmt: skip
        self.made.append(container)
        if start:
            await container.start()
        return container

    async def stop_all(self) -> None:
        for container in reversed(self.made):
            await container.stop()


@pytest_twisted.async_yield_fixture
async def system() -> AsyncIterator[Callable[..., Awaitable[Container]]]:
    """Containers of sysname C{sec} (ids sec1, sec2...) on one embedded broker."""
    from twisted.internet import reactor

    broker = EmbeddedBroker(reactor)
    made = Containers("sec", "sec", lambda _n: broker.connection())
    yield made
    await made.stop_all()


class Frame:
    """A signed body taken apart: kid, sig, headers and content (unpacked);
    C{pack()} puts it together again as it is (a tamperer's work)."""

    def __init__(self, body: bytes) -> None:
        assert body[0] == 0xC1, "not a signed body"
        end = 2 + body[1]
        self.kid = body[2:end].decode()
        self.sig = body[end : end + 32]
        self.payload = body[end + 32 :]
        self.headers, self.content = msgpack.unpackb(self.payload, raw=False)

    def pack(self, repack: bool = True) -> bytes:
        """The body again: headers and content packed anew, unless not C{repack}
        (then the payload as it is, which a test may have changed)."""
        payload = _packb([self.headers, self.content]) if repack else self.payload
        kid = self.kid.encode()
        return bytes((0xC1, len(kid))) + kid + self.sig + payload


def _packb(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)
