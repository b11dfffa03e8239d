"""The plumbing under L{ion.core.messaging.amqp}: URLs, endpoints, pika's protocol, channels,
deliveries, consumers and the confirming publisher.

pika's Twisted adapter (C{pika.adapters.twisted_connection}) installs the default
reactor when it is imported, so it is only imported inside functions here, once a
connection is actually made.

Header values (see L{to_wire_headers} and L{from_wire_headers}): pika can encode
str, bytes, bool, int, C{Decimal}, C{datetime}, None, lists and dicts, but not
floats, and it truncates received floats to ints (pika issue #599). ion keeps its
own headers in the msgpack body, so transport headers are rarely used; a float
header is refused with C{TypeError} rather than silently changed.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pika.exceptions
import pika.spec
from twisted.internet import defer
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from zope.interface import implementer

from ion.core.exception import (
    BrokerError,
    ConfigurationError,
    NoSuchExchangeError,
    NoSuchQueueError,
    PreconditionFailedError,
    ResourceLockedError,
    UnroutableError,
)
from ion.core.messaging.broker import IDelivery

_log = Logger()

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


@dataclass(frozen=True)
class AmqpParameters:
    """Where and how to connect; build one with L{parse_amqp_url}.

    C{ca}, C{cert} and C{key} are PEM file paths for C{amqps}: the CA to trust
    (default: the system's), and a client certificate and its key.
    """

    host: str = "127.0.0.1"
    port: int = 5672
    vhost: str = "/"
    username: str = "guest"
    password: str = field(default="guest", repr=False)
    tls: bool = False
    ca: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def url(self) -> str:
        """The URL these parameters stand for, password masked (safe to log)."""
        scheme = "amqps" if self.tls else "amqp"
        vhost = "" if self.vhost == "/" else self.vhost.replace("/", "%2F")
        return f"{scheme}://{self.username}:***@{self.host}:{self.port}/{vhost}"


def parse_amqp_url(url: str, **tls_options: str) -> AmqpParameters:
    """Parse C{amqp://user:pass@host:port/vhost} or C{amqps://...} into L{AmqpParameters}.

    The vhost is the path without its leading slash, percent-decoded
    (C{%2F} is C{/}); an empty path is the default vhost C{/}. TLS files come
    from the query (C{?ca=...&cert=...&key=...}) or from C{tls_options}.
    Raises L{ConfigurationError} on anything else.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ConfigurationError(f"bad broker URL: {e}") from None
    if parts.scheme not in ("amqp", "amqps"):
        raise ConfigurationError(f"broker URL must start amqp:// or amqps://, not {parts.scheme!r}")
    tls = parts.scheme == "amqps"
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    options = {k: query.get(k) for k in ("ca", "cert", "key")}
    unknown = set(query) - set(options) | set(tls_options) - set(options)
    if unknown:
        raise ConfigurationError(f"unknown broker URL options: {', '.join(sorted(unknown))}")
    options.update(tls_options)
    if not tls and any(options.values()):
        raise ConfigurationError("ca, cert and key need an amqps:// URL")
    return AmqpParameters(
        host=parts.hostname or "127.0.0.1",
        port=port or (5671 if tls else 5672),
        vhost=unquote(path) if path else "/",
        username=unquote(parts.username) if parts.username is not None else "guest",
        password=unquote(parts.password) if parts.password is not None else "guest",
        tls=tls,
        **options,
    )


def default_endpoint(reactor: Any, params: AmqpParameters) -> IStreamClientEndpoint:
    """A TCP (or TLS, for C{amqps}) client endpoint to the broker C{params} name."""
    endpoint = HostnameEndpoint(reactor, params.host, params.port, timeout=10)
    if not params.tls:
        return endpoint
    from twisted.internet import ssl

    trust = None
    if params.ca:
        with open(params.ca, "rb") as f:
            trust = ssl.Certificate.loadPEM(f.read())
    client = None
    if params.cert:
        with open(params.cert, "rb") as f:
            pem = f.read()
        if params.key:
            with open(params.key, "rb") as f:
                pem += b"\n" + f.read()
        client = ssl.PrivateCertificate.loadPEM(pem)
    options = ssl.optionsForClientTLS(
        params.host,
        trustRoot=trust if trust is not None else ssl.platformTrust(),
        clientCertificate=client,
    )
    return wrapClientTLS(options, endpoint)


def connection_parameters(params: AmqpParameters, heartbeat: int, name: str) -> Any:
    """The pika C{ConnectionParameters} (host and port there are ignored: the endpoint decides)."""
    return pika.ConnectionParameters(
        virtual_host=params.vhost,
        credentials=pika.PlainCredentials(params.username, params.password),
        heartbeat=heartbeat,
        client_properties={"connection_name": name, "product": "ion"},
    )


_protocol_class: type | None = None


def protocol_class() -> type:
    """pika's C{TwistedProtocolConnection}, extended to keep the first error.

    pika loses the reason of a heartbeat timeout (or of a close by the broker)
    when the TCP connection then ends cleanly: C{first_error} keeps it.
    C{on_lost(protocol, reason)} is called before pika tears its channels down,
    so the owner can decide what their pending calls fail with.
    """
    global _protocol_class
    if _protocol_class is None:
        from pika.adapters.twisted_connection import TwistedProtocolConnection

        class _Protocol(TwistedProtocolConnection):
            on_lost: Callable[[Any, Any], None] | None = None
            first_error: BaseException | None = None

            def connectionMade(self) -> None:
                super().connectionMade()
                nodelay = getattr(self.transport, "setTcpNoDelay", None)
                if nodelay is not None:
                    nodelay(True)

            def connectionLost(self, reason: Any = None) -> None:
                self.first_error = self._impl._error or getattr(reason, "value", None)
                if self.on_lost is not None:
                    self.on_lost(self, reason)
                super().connectionLost(reason)

        _protocol_class = _Protocol
    return _protocol_class


def describe(exc: BaseException | None) -> str:
    """A short, readable reason for a pika or Twisted error."""
    if exc is None:
        return "unknown reason"
    if isinstance(exc, pika.exceptions.AMQPHeartbeatTimeout):
        return f"missed heartbeats ({exc})"
    if isinstance(exc, pika.exceptions.ConnectionClosed):
        return f"{exc.reply_code} {exc.reply_text}"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def map_error(exc: BaseException) -> BaseException:
    """The ion exception for a pika channel error (others are returned unchanged)."""
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        code, text = exc.reply_code, exc.reply_text
        if code == 404:
            kind = NoSuchExchangeError if "no exchange" in text else NoSuchQueueError
            return kind(text)
        if code == 405:
            return ResourceLockedError(text)
        if code == 406:
            return PreconditionFailedError(text)
        return BrokerError(f"{code} {text}")
    return exc


class Channel:
    """One pika channel, with Deferred-returning RPCs that fail if the channel closes.

    C{closed} fires (never fails) with the pika reason once the channel is
    closed, whoever closed it.
    """

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.reason: BaseException | None = None
        self.closed: defer.Deferred[BaseException] = defer.Deferred()
        self._pending: set[defer.Deferred[Any]] = set()
        self.fail_with: Callable[[BaseException], BaseException] = map_error
        raw.add_on_close_callback(self._on_close)

    @classmethod
    def open(cls, protocol: Any) -> defer.Deferred[Channel]:
        """Open a new channel on C{protocol}'s connection."""
        d: defer.Deferred[Channel] = defer.Deferred()
        protocol._impl.channel(on_open_callback=lambda raw: d.callback(cls(raw)))
        # If the connection dies first, pika errbacks nothing: tie d to it.
        closed = protocol.closed
        if closed is not None:
            closed.addBoth(lambda r: (None if d.called else d.errback(BrokerError(f"{r}")), r)[1])
        return d

    @property
    def is_open(self) -> bool:
        return self.raw.is_open

    def rpc(self, method: str, **kwargs: Any) -> defer.Deferred[Any]:
        """Call C{raw.<method>(callback=..., **kwargs)}; the Deferred fires with the reply frame."""
        if not self.raw.is_open:
            return defer.fail(self.fail_with(self.reason or BrokerError("channel is closed")))
        d: defer.Deferred[Any] = defer.Deferred()
        self._pending.add(d)

        def reply(frame: Any = None) -> None:
            self._pending.discard(d)
            d.callback(frame)

        try:
            getattr(self.raw, method)(callback=reply, **kwargs)
        except Exception:
            self._pending.discard(d)
            return defer.fail()
        return d

    def close(self) -> defer.Deferred[BaseException]:
        """Close the channel; the Deferred fires once it is closed."""
        if self.raw.is_open:
            self.raw.close()
        return self.closed

    def _on_close(self, _raw: Any, reason: BaseException) -> None:
        self.reason = reason
        pending, self._pending = self._pending, set()
        error = self.fail_with(reason)
        for d in pending:
            d.errback(error)
        self.closed.callback(reason)


@implementer(IDelivery)
class Delivery:
    """One message handed to a consumer, settled on the channel it came on."""

    __slots__ = ("body", "exchange", "routing_key", "headers", "redelivered",
                 "_broker", "_chan", "_tag", "_settled")  # fmt: skip

    def __init__(self, broker, chan, tag, body, exchange, routing_key, headers, redelivered):
        self.body = body
        self.exchange = exchange
        self.routing_key = routing_key
        self.headers = headers
        self.redelivered = redelivered
        self._broker = broker
        self._chan = chan
        self._tag = tag
        self._settled = False

    def __repr__(self) -> str:
        return f"<Delivery {self.exchange}:{self.routing_key} {len(self.body)}B tag={self._tag}>"

    def ack(self) -> None:
        """Acknowledge: the broker forgets the message (nothing to do when auto-acked)."""
        if self._tag is not None:
            self._settle()
            self._chan.raw.basic_ack(self._tag)

    def reject(self, requeue: bool = False) -> None:
        """Drop the message, or put it back at the head of its queue if C{requeue}."""
        if self._tag is not None:
            self._settle()
            self._chan.raw.basic_reject(self._tag, requeue=requeue)

    def _settle(self) -> None:
        if self._settled:
            raise PreconditionFailedError(
                f"PRECONDITION_FAILED - delivery {self._tag} settled twice"
            )
        if not self._chan.is_open:
            raise self._broker._gone("the channel it came on is gone; it went back to its queue")
        self._settled = True


class Consumer:
    """A consumer: its tag, queue, callback, prefetch and the channel it is on."""

    __slots__ = ("tag", "queue", "callback", "prefetch", "auto_ack", "chan")

    def __init__(
        self, tag: str, queue: str, callback: Callable, prefetch: int, auto_ack: bool = False
    ) -> None:
        self.tag = tag
        self.queue = queue
        self.callback = callback
        self.prefetch = 0 if auto_ack else prefetch
        self.auto_ack = auto_ack
        self.chan: Channel | None = None


class Publisher:
    """A publish channel. In confirm mode it keeps one pending entry per publish,
    by sequence number; a plain one keeps nothing."""

    def __init__(self, chan: Channel, confirming: bool = True) -> None:
        self.chan = chan
        self.confirming = confirming
        self.seq = 0
        self.unconfirmed: dict[int, tuple[defer.Deferred[None], str, str] | None] = {}
        self.returned: set[int] = set()

    def publish(self, exchange, key, body, headers, mandatory, confirm) -> defer.Deferred[None]:
        seq = self.seq + 1
        props = pika.spec.BasicProperties(
            headers=headers, message_id=str(seq) if mandatory else None
        )
        self.chan.raw.basic_publish(exchange, key, body, props, mandatory)
        if not self.confirming:
            return defer.succeed(None)
        self.seq = seq
        if mandatory or confirm:
            d: defer.Deferred[None] = defer.Deferred()
            self.unconfirmed[seq] = (d, exchange, key)
            return d
        self.unconfirmed[seq] = None
        return defer.succeed(None)

    def on_return(self, _raw: Any, _method: Any, props: Any, _body: bytes) -> None:
        try:
            self.returned.add(int(props.message_id))
        except (TypeError, ValueError):
            pass

    def on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = method.delivery_tag
        nack = isinstance(method, pika.spec.Basic.Nack)
        pending = self.unconfirmed
        if method.multiple:
            while pending:
                seq = next(iter(pending))
                if seq > tag:
                    break
                self._resolve(seq, pending.pop(seq), nack)
        elif tag in pending:
            self._resolve(tag, pending.pop(tag), nack)

    def _resolve(self, seq: int, entry: Any, nack: bool) -> None:
        returned = seq in self.returned
        if returned:
            self.returned.discard(seq)
        if entry is None:
            return
        d, exchange, key = entry
        if returned:
            d.errback(UnroutableError(f"NO_ROUTE - {exchange!r} has no queue for {key!r}"))
        elif nack:
            d.errback(BrokerError(f"the broker refused (nacked) a message to {exchange!r}"))
        else:
            d.callback(None)

    def fail_all(self, error: BaseException) -> None:
        pending, self.unconfirmed = self.unconfirmed, {}
        for entry in pending.values():
            if entry is not None:
                entry[0].errback(error)


# --- headers ---------------------------------------------------------------------------------

_PLAIN = (str, bytes, bool, type(None), decimal.Decimal, datetime.datetime)


def to_wire_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """A copy of C{headers} pika can encode; C{TypeError} for values it cannot carry faithfully."""
    return {str(k): _to_wire(v, k) for k, v in headers.items()}


def _to_wire(value: Any, key: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise TypeError(f"header {key!r}: int out of 64-bit range")
        return int(value)
    if isinstance(value, dict):
        return {str(k): _to_wire(v, key) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(v, key) for v in value]
    if isinstance(value, float):
        raise TypeError(
            f"header {key!r}: AMQP headers cannot carry floats faithfully; put numbers in the body"
        )
    raise TypeError(f"header {key!r}: {type(value).__name__} cannot travel in AMQP headers")


def from_wire_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """Received headers as plain Python values (pika's C{long} becomes C{int})."""
    if not headers:
        return {}
    return {k: _from_wire(v) for k, v in headers.items()}


def _from_wire(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or kind is int or kind is bytes or value is None:
        return value
    if isinstance(value, int):  # pika.compat.long and friends
        return int(value)
    if isinstance(value, dict):
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    return value
