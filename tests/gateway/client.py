"""A small HTTP client for the gateway tests (twisted.web.client Agent)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer


@implementer(IBodyProducer)
class _Bytes:
    def __init__(self, data: bytes, chunked: bool = False) -> None:
        self.data = data
        self.length = UNKNOWN_LENGTH if chunked else len(data)

    def startProducing(self, consumer: Any) -> Any:
        from twisted.internet.defer import succeed

        consumer.write(self.data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Collect(Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self.done = done
        self.parts: list[bytes] = []

    def dataReceived(self, data: bytes) -> None:
        self.parts.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(b"".join(self.parts))


@dataclass
class Answer:
    status: int
    headers: Headers
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None


async def fetch(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    chunked: bool = False,
) -> Answer:
    """C{method} C{url} with C{body} as JSON (or C{raw} bytes; C{chunked}: without
    announcing its length); the answer, read whole."""
    hdrs = Headers({k: [v] for k, v in (headers or {}).items()})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        if not hdrs.hasHeader("content-type"):
            hdrs.setRawHeaders("content-type", ["application/json"])
    producer = _Bytes(data, chunked) if data is not None else None
    response = await Agent(reactor).request(method.encode(), url.encode(), hdrs, producer)
    done: Deferred[bytes] = Deferred()
    response.deliverBody(_Collect(done))
    return Answer(response.code, response.headers, await done)
