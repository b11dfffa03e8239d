"""Webhook posts over twisted.web.client, with a pool of persistent connections.

A connection goes only to an address the target check allows, resolved for
that connection (L{PinnedEndpoints}): not to whatever a second lookup by the
HTTP client might answer, which a target's DNS could change between the check
and the post (DNS rebinding).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Protocol
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    FileBodyProducer,
    HTTPConnectionPool,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from ion.gateway.targets import Networks, allowed_addresses

__all__ = ["HttpPoster", "PinnedEndpoints"]


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


@implementer(IAgentEndpointFactory)
class PinnedEndpoints:
    """The Agent's endpoints: TCP (TLS for https, verified against the URL's
    host) to the addresses the URL's host resolves to, in turn until one
    answers, once every one of them is allowed (L{allowed_addresses}); else
    the connection fails with the reason, and the delivery with it.

    @param resolve: C{getaddrinfo}'s signature (None: C{socket.getaddrinfo}).
    """

    def __init__(self, reactor: Any, allow: Networks, resolve: Any = None) -> None:
        self.reactor = reactor
        self.allow = tuple(allow)
        self.resolve = resolve
        self.tls = BrowserLikePolicyForHTTPS()

    def endpointForURI(self, uri: URI) -> _PinnedEndpoint:
        return _PinnedEndpoint(self, uri)


class _PinnedEndpoint:
    def __init__(self, endpoints: PinnedEndpoints, uri: URI) -> None:
        self.endpoints, self.uri = endpoints, uri

    def connect(self, factory: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._connect(factory))

    async def _connect(self, factory: Any) -> Any:
        e, uri = self.endpoints, self.uri
        host = uri.host.decode("ascii")
        addresses = await allowed_addresses(host, e.allow, e.reactor, e.resolve)
        for n, address in enumerate(addresses):  # each in turn, as HostnameEndpoint does
            tcp = TCP6ClientEndpoint if address.version == 6 else TCP4ClientEndpoint
            endpoint: Any = tcp(e.reactor, str(address), uri.port)
            if uri.scheme == b"https":
                endpoint = wrapClientTLS(e.tls.creatorForNetloc(uri.host, uri.port), endpoint)
            try:
                return await endpoint.connect(factory)
            except ConnectError:
                if n == len(addresses) - 1:
                    raise
        raise AssertionError("allowed_addresses answers at least one address")


class HttpPoster:
    """Posts bodies and answers the status; redirects are not followed (a 3xx is
    a failed delivery: a target must not send the gateway elsewhere).

    @param per_host: persistent connections kept per target host.
    @param allow: C{gateway.allow_targets} (see L{PinnedEndpoints}).
    """

    def __init__(
        self, reactor: Any, per_host: int = 32, allow: Networks = (), resolve: Any = None
    ) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool._factory = _QuietFactory  # (a private attribute: Twisted has no public switch)
        self.pool.maxPersistentPerHost = per_host
        endpoints = PinnedEndpoints(reactor, allow, resolve)
        self.agent = Agent.usingEndpointFactory(reactor, endpoints, pool=self.pool)

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
