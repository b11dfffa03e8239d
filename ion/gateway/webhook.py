"""Webhook posts over twisted.web.client, with a pool of persistent connections."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.http_headers import Headers

__all__ = ["HttpPoster"]


class _Discard(Protocol):
    """Reads a response body to its end, keeping none of it (a target may send much)."""

    def __init__(self, done: Deferred[None]) -> None:
        self.done = done

    def dataReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Any = None) -> None:
        if not self.done.called:
            self.done.callback(None)


class _QuietFactory(_HTTP11ClientFactory):
    """The pool's connection factory, without a log line for every connection
    it starts and stops (a busy gateway opens many)."""

    noisy = False


class HttpPoster:
    """Posts bodies and answers the status; redirects are not followed (a 3xx is
    a failed delivery: a target must not send the gateway elsewhere).

    @param per_host: persistent connections kept per target host.
    """

    def __init__(self, reactor: Any, per_host: int = 32) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool._factory = _QuietFactory  # (a private attribute: Twisted has no public switch)
        self.pool.maxPersistentPerHost = per_host
        self.agent = Agent(reactor, pool=self.pool)

    async def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        from io import BytesIO

        raw = Headers({k.encode(): [v.encode()] for k, v in headers.items()})
        producer: Any = FileBodyProducer(BytesIO(body))
        response: Any = await self.agent.request(b"POST", url.encode(), raw, producer)
        done: Deferred[None] = Deferred()
        response.deliverBody(_Discard(done))
        await done
        return int(response.code)

    def close(self) -> Deferred[Any]:
        """Close the pooled connections."""
        return self.pool.closeCachedConnections()
