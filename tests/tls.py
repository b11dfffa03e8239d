"""Throwaway certificates for TLS tests: a CA, a server certificate for 127.0.0.1
and localhost, a client certificate, and a second CA that signed neither."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer


@dataclass(frozen=True)
class Pki:
    """PEM file paths."""

    ca: Path
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_options(self, require_client: bool = False) -> Any:
        """A server TLS context factory for the server certificate; with
        C{require_client}, the client must present a certificate signed by C{ca}.
        (Built on pyOpenSSL's files API: Twisted's own certificate objects trip
        pyOpenSSL's deprecation warnings.)"""
        from OpenSSL import SSL

        ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
        ctx.use_certificate_file(str(self.server_cert))
        ctx.use_privatekey_file(str(self.server_key))
        if require_client:
            ctx.load_verify_locations(str(self.ca))

            def verdict(_conn: Any, _cert: Any, _errno: int, _depth: int, ok: int) -> bool:
                return bool(ok)  # OpenSSL's own verification decides

            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, verdict)
        return _ContextFactory(ctx)


@implementer(IOpenSSLContextFactory)
class _ContextFactory:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    def getContext(self) -> Any:
        return self.ctx


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    subject: str, key: Any, issuer: tuple[x509.Name, Any] | None, *, ca: bool, sans: list[Any]
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate | None = None, key: Any = None) -> Path:
    if cert is not None:
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


async def hello_over_tls(config: Any, sysname: str, text: str, cleanup_url: str) -> None:
    """Start a container with C{config} (an amqps:// broker.url), check it talks
    TLS, call its hello service with C{text}, stop it and delete its system's
    exchanges from the broker at C{cleanup_url}."""
    from twisted.internet import reactor

    from ion.core.cc.container import Container
    from ion.core.process.process import Process
    from ion.services.hello import HelloService
    from tests.helpers import wait_for
    from tests.rabbit import delete_systems

    container = Container(reactor=reactor, config=config, sysname=sysname)
    assert container.exchange.broker.params.tls  # type: ignore[attr-defined]
    await wait_for(container.start(), timeout=30)
    try:
        await container.spawn(HelloService)
        client = await container.spawn(Process, name="client")
        reply = await wait_for(client.rpc_send("hello", "hello", text))
        assert reply == {"value": "Hello there, " + text}
    finally:
        await container.stop()
        await delete_systems({sysname}, url=cleanup_url)


def make_pki(directory: Path) -> Pki:
    """Write a fresh set of certificates and keys into C{directory}."""
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("ca", "other", "srv", "cli")}
    ca = _issue("ion test CA", keys["ca"], None, ca=True, sans=[])
    other = _issue("ion other CA", keys["other"], None, ca=True, sans=[])
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _issue("localhost", keys["srv"], (ca.subject, keys["ca"]), ca=False, sans=sans)
    client = _issue("ion test client", keys["cli"], (ca.subject, keys["ca"]), ca=False, sans=[])
    return Pki(
        ca=_write(directory / "ca.pem", ca),
        other_ca=_write(directory / "other-ca.pem", other),
        server_cert=_write(directory / "server.pem", server),
        server_key=_write(directory / "server.key", key=keys["srv"]),
        client_cert=_write(directory / "client.pem", client),
        client_key=_write(directory / "client.key", key=keys["cli"]),
    )
