"""A TCP proxy between a client and a server, to simulate network faults (tests, chaos runs).

C{cut()} drops every connection (a crashed peer: both legs are reset),
C{hold()} stops forwarding bytes while the connections stay open (a black hole:
only heartbeats can notice), C{restore()} forwards again (bytes dropped while
held stay dropped, and a connection closed at one end while held stays open at
the other until cut). New connections are accepted throughout. Given server
TLS options (C{tls}), the proxy also terminates TLS: an amqps port in front of
a plain broker.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, endpoints, protocol


class _Upstream(protocol.Protocol):
    transport: Any  # an ITCPTransport once connected (Protocol types it as optional)

    def __init__(self, down: _Downstream) -> None:
        self.down = down

    def connectionMade(self) -> None:
        self.down.proxy.upstreams.append(self)
        self.down.up = self
        for chunk in self.down.pending:
            self.transport.write(chunk)
        self.down.pending = []

    def dataReceived(self, data: bytes) -> None:
        if not self.down.proxy.held:
            self.down.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.down.proxy.upstreams:
            self.down.proxy.upstreams.remove(self)
        if not self.down.proxy.held:  # a black hole lets no FIN through either
            self.down.transport.loseConnection()


class _Downstream(protocol.Protocol):
    transport: Any

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.up: _Upstream | None = None
        self.pending: list[bytes] = []

    def connectionMade(self) -> None:
        self.proxy.connections.append(self)
        target = endpoints.TCP4ClientEndpoint(self.proxy.reactor, *self.proxy.target)
        d = endpoints.connectProtocol(target, _Upstream(self))
        d.addErrback(lambda _: self.transport.abortConnection())

    def dataReceived(self, data: bytes) -> None:
        if self.proxy.held:
            return
        if self.up is None:
            self.pending.append(data)
        else:
            self.up.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        if self in self.proxy.connections:
            self.proxy.connections.remove(self)
        if self.up is not None and not self.proxy.held:
            self.up.transport.loseConnection()

    def abort(self) -> None:
        self.transport.abortConnection()
        if self.up is not None:
            self.up.transport.abortConnection()


class Proxy(protocol.Factory):
    """Listens on 127.0.0.1 (a free port, C{port} once started) and forwards to C{target}."""

    def __init__(
        self, reactor: Any, target: tuple[str, int] = ("127.0.0.1", 5672), tls: Any = None
    ) -> None:
        self.reactor = reactor
        self.target = target
        self.tls = tls  # server TLS options: the proxy then terminates TLS for a plain target
        self.connections: list[_Downstream] = []
        self.upstreams: list[_Upstream] = []
        self.held = False
        self.port = 0
        self._listening: Any = None

    def buildProtocol(self, addr: Any) -> _Downstream:
        return _Downstream(self)

    async def start(self) -> int:
        """Start listening; returns the port."""
        ep: Any
        if self.tls is None:
            ep = endpoints.TCP4ServerEndpoint(self.reactor, 0, interface="127.0.0.1")
        else:
            ep = endpoints.SSL4ServerEndpoint(self.reactor, 0, self.tls, interface="127.0.0.1")
        self._listening = await ep.listen(self)
        self.port = self._listening.getHost().port
        return self.port

    def cut(self) -> None:
        """Reset every connection, both legs, at once."""
        for conn in list(self.connections):
            conn.abort()
        for up in list(self.upstreams):
            up.transport.abortConnection()

    def hold(self) -> None:
        """Stop forwarding bytes in both directions; connections stay open."""
        self.held = True

    def restore(self) -> None:
        """Forward bytes again."""
        self.held = False

    def stop(self) -> defer.Deferred[None]:
        """Stop listening and reset whatever is still connected."""
        self.cut()
        return defer.maybeDeferred(self._listening.stopListening)


class Mute(protocol.Protocol):
    """Takes the client's first bytes and never answers: a broker stalled mid-handshake.

    Its factory's C{connected} is called with each such connection."""

    heard = False

    def dataReceived(self, data: bytes) -> None:
        if not self.heard:
            self.heard = True
            self.factory.connected(self)


class Slammer(protocol.Protocol):
    """Accepts a connection and closes it at once: a broker that fails every handshake."""

    transport: Any

    def connectionMade(self) -> None:
        self.transport.loseConnection()


class SwitchEndpoint:
    """Connects to 127.0.0.1 at whatever port C{target["port"]} names at the time."""

    def __init__(self, reactor: Any, target: dict[str, int]) -> None:
        self.reactor, self.target = reactor, target

    def connect(self, factory: Any) -> Any:
        return endpoints.TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.target["port"]).connect(
            factory
        )
