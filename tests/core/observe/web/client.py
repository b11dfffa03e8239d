"""HTTP for the web view's tests: requests with Twisted's own client, and a
reader of the server-sent event stream."""

from __future__ import annotations

import json
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from tests.helpers import Collector
from tests.launch import REPO


@dataclass
class Reply:
    code: int
    headers: Headers
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


async def request(
    url: str,
    method: bytes = b"GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """One request; the whole reply."""
    agent = Agent(_reactor(), pool=HTTPConnectionPool(_reactor(), persistent=False))
    h = Headers({k: [v] for k, v in (headers or {}).items()})
    producer: IBodyProducer | None = FileBodyProducer(BytesIO(body)) if body is not None else None
    response = await agent.request(method, url.encode(), h, producer)
    reader = _Body()
    response.deliverBody(reader)
    data = await reader.done
    return Reply(response.code, response.headers, data)


async def get_json(base: str, path: str) -> Any:
    reply = await request(base + path.lstrip("/"))
    assert reply.code == 200, (path, reply.code, reply.body[:300])
    return reply.json()


class _Body(Protocol):
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        if reason is None or reason.check(ResponseDone):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


@dataclass
class Sse:
    type: str
    id: int | None
    data: Any


class EventReader(Protocol):
    """Parses an event stream as it arrives into C{events} (comments into C{comments})."""

    def __init__(self) -> None:
        self.events: Collector[Sse] = Collector()
        self.comments: list[str] = []
        self.retry: int | None = None
        self._buffer = b""
        self.finished: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n\n" in self._buffer:
            block, self._buffer = self._buffer.split(b"\n\n", 1)
            fields: dict[str, str] = {}
            for line in block.decode().split("\n"):
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(": ")
                fields[name] = value
            if "retry" in fields:
                self.retry = int(fields["retry"])
            if "event" in fields:
                ident = int(fields["id"]) if "id" in fields else None
                self.events(Sse(fields["event"], ident, json.loads(fields["data"])))

    def connectionLost(self, reason: Any = None) -> None:
        if not self.finished.called:
            self.finished.callback(None)

    def close(self) -> None:
        self.transport.stopProducing()  # type: ignore[union-attr]


async def open_events(
    base: str, headers: dict[str, str] | None = None, path: str = "events"
) -> tuple[Reply, EventReader]:
    """Open C{/events}; the reply's head, and the reader its frames go to."""
    agent = Agent(_reactor())
    h = Headers({k: [v] for k, v in (headers or {}).items()})
    response = await agent.request(b"GET", (base + path).encode(), h)
    reader = EventReader()
    response.deliverBody(reader)
    return Reply(response.code, response.headers, b""), reader


def web_config(**web: Any) -> Config:
    """A config with the web view on 127.0.0.1, a free port, and C{web} over that."""
    return Config(DEFAULTS).merged(
        {"web": {"listen": "127.0.0.1:0", **web}, "pack": {"root": str(REPO)}}
    )


def base_url(container: Container) -> str:
    assert container.web is not None and container.web.url is not None
    return container.web.url
