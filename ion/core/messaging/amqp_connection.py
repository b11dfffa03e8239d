"""The connection under L{ion.core.messaging.amqp}: URLs, endpoints, pika's protocol
and error mapping (channels are in L{ion.core.messaging.amqp_channel}, header
conversion in L{ion.core.messaging.headers}).

pika's Twisted adapter (C{pika.adapters.twisted_connection}) installs the default
reactor when it is imported, so it is only imported inside functions here, once a
connection is actually made.

"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pika.exceptions
import pika.spec
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger

from ion.core.exception import (
    AccessRefusedError,
    BrokerError,
    ConfigurationError,
    NoSuchExchangeError,
    NoSuchQueueError,
    PreconditionFailedError,
    ResourceLockedError,
)
from ion.core.log import shown_url

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
        if "@" in parts.path + parts.query + parts.fragment:
            raise ValueError("credentials cut short by a / ? or #")
    except ValueError:
        # urllib's reason quotes what it took for the port: maybe part of a password.
        raise ConfigurationError(
            f"bad broker URL {shown_url(url)}: expected amqp[s]://user:password@host:port/vhost "
            "with a numeric port; characters such as / # ? @ in a password must be "
            "percent-encoded (%2F %23 %3F %40)"
        ) from None
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
    return wrapClientTLS(client_tls_options(params), endpoint)


def client_tls_options(params: AmqpParameters) -> Any:
    """The TLS client options for C{amqps}: verify the broker's certificate for
    C{params.host} against C{params.ca} (default: the system's CAs) and present
    C{params.cert} (with C{params.key}) when given.

    @raise ConfigurationError: a file cannot be read or holds no usable PEM; the
        message names the setting and the file.
    """
    from twisted.internet import ssl

    trust = ssl.platformTrust()
    if params.ca:
        trust = _load_pem("ca", params.ca, ssl.Certificate.loadPEM, _read_pem("ca", params.ca))
    client = None
    if params.key and not params.cert:
        raise ConfigurationError("broker.key: a client key needs its certificate (broker.cert)")
    if params.cert:
        pem = _read_pem("cert", params.cert)
        if params.key:
            pem += b"\n" + _read_pem("key", params.key)
        client = _load_pem("cert", params.cert, ssl.PrivateCertificate.loadPEM, pem)
    return ssl.optionsForClientTLS(params.host, trustRoot=trust, clientCertificate=client)


def _read_pem(setting: str, path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigurationError(f"broker.{setting} {path}: {e.strerror}") from None


def _load_pem(setting: str, path: str, load: Callable[[bytes], Any], pem: bytes) -> Any:
    try:
        return load(pem)
    except Exception as e:  # OpenSSL's errors carry no useful text of their own
        what = "certificate and private key" if setting == "cert" else "certificate"
        raise ConfigurationError(
            f"broker.{setting} {path}: not a PEM {what} ({type(e).__name__})"
        ) from None


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
    when the TCP connection then ends cleanly, and the reason a connection could
    not be opened (a refused login, a failed TLS handshake): C{first_error} keeps it.
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
                if self.first_error is None:
                    self.first_error = self._impl._error or getattr(reason, "value", None)
                if self.on_lost is not None:
                    self.on_lost(self, reason)
                super().connectionLost(reason)

            def _on_connection_failed(self, connection: Any, error: Any = None) -> None:
                # pika hands `ready` only AMQPConnectionError(<attempts>): keep the reason
                if self.first_error is None and isinstance(error, BaseException):
                    self.first_error = error
                super()._on_connection_failed(connection, error)

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


def is_refusal(exc: BaseException | None) -> bool:
    """Whether C{exc} says the broker turned us away (login, vhost access, TLS trust),
    as opposed to being unreachable or going away."""
    if isinstance(exc, pika.exceptions.ConnectionClosed):
        if exc.reply_code == 403:  # ACCESS_REFUSED: the login
            return True
        # NOT_ALLOWED: no access to the vhost, or a connection limit reached (which clears)
        return exc.reply_code == 530 and "limit" not in str(exc.reply_text)
    try:
        from OpenSSL.SSL import Error as TLSError
        from service_identity import VerificationError  # the certificate names another host
    except ImportError:  # pragma: no cover - twisted[tls] brings both
        return False
    if isinstance(exc, VerificationError):
        return True
    if isinstance(exc, TLSError):
        # OpenSSL's reasons: only trust failures are refusals; an EOF or reset
        # mid-handshake (a broker restarting) is worth another try.
        errors = exc.args[0] if exc.args and isinstance(exc.args[0], list) else []
        reasons = " ".join(str(e[-1]) for e in errors if isinstance(e, tuple) and e)
        return any(word in reasons for word in ("certificate", "unknown ca", "verify"))
    return False


def map_error(exc: BaseException) -> BaseException:
    """The ion exception for a pika channel error (others are returned unchanged)."""
    if isinstance(exc, pika.exceptions.ChannelClosedByBroker):
        code, text = exc.reply_code, exc.reply_text
        if code == 404:
            kind = NoSuchExchangeError if "no exchange" in text else NoSuchQueueError
            return kind(text)
        if code == 403:
            return AccessRefusedError(text)
        if code == 405:
            return ResourceLockedError(text)
        if code == 406:
            return PreconditionFailedError(text)
        return BrokerError(f"{code} {text}")
    return exc
