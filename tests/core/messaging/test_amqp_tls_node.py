"""amqps against a real RabbitMQ TLS listener (the suite's C{tls_node}: a test CA's
server certificate, client certificates required): a container calls over it with
its CA, client certificate and key; without the certificate, or trusting a CA that
did not sign the node's, the connection is refused at once with the reason."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config
from ion.core.exception import BrokerRefusedError, StartupError
from ion.core.messaging.amqp import AmqpBroker
from ion.core.messaging.amqp_connection import parse_amqp_url
from tests.helpers import wait_for
from tests.rabbit_node import RabbitNode
from tests.tls import hello_over_tls

pytestmark = pytest.mark.rabbitmq


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _files(node: RabbitNode, ca: bool = True, cert: bool = True) -> dict[str, str]:
    assert node.pki is not None
    files = {"ca": str(node.pki.ca if ca else node.pki.other_ca)}
    if cert:
        files.update(cert=str(node.pki.client_cert), key=str(node.pki.client_key))
    return files


@pytest_twisted.ensureDeferred
async def test_container_calls_over_amqps_with_client_certificate(tls_node: RabbitNode) -> None:
    """broker.ca, broker.cert and broker.key: the container trusts the node, shows its
    certificate, and serves and answers calls over the TLS listener."""
    sysname = f"t-tlsnode-{uuid.uuid4().hex[:8]}"
    config = Config(DEFAULTS).merged(
        {"broker": {"url": tls_node.tls_url, **_files(tls_node)}, "container": {"rpc_timeout": 10}}
    )
    await hello_over_tls(config, sysname, "tls node", tls_node.url)


async def _connect(node: RabbitNode, **files: str) -> None:
    broker = AmqpBroker(_reactor(), parse_amqp_url(node.tls_url, **files), reconnect=False)
    try:
        await wait_for(broker.connect(), timeout=15)
    finally:
        await broker.close()


@pytest_twisted.ensureDeferred
async def test_client_certificate_required(tls_node: RabbitNode) -> None:
    """The node demands a client certificate: with none the connection is refused at
    once (no retries), with the CA's client certificate it is taken."""
    with pytest.raises(BrokerRefusedError, match="cannot connect to amqps://guest:\\*\\*\\*@"):
        await _connect(tls_node, **_files(tls_node, cert=False))
    await _connect(tls_node, **_files(tls_node))


@pytest_twisted.ensureDeferred
async def test_ca_that_does_not_match_refused(tls_node: RabbitNode) -> None:
    """Trusting a CA that did not sign the node's certificate: refused, saying so."""
    with pytest.raises(BrokerRefusedError, match="certificate verify failed"):
        await _connect(tls_node, **_files(tls_node, ca=False))


@pytest_twisted.ensureDeferred
async def test_container_with_wrong_ca_fails_to_start_clearly(tls_node: RabbitNode) -> None:
    """A container trusting the wrong CA stops at boot with a StartupError naming the
    refusal, within its first attempt (a refusal is not retried)."""
    config = Config(DEFAULTS).merged(
        {"broker": {"url": tls_node.tls_url, **_files(tls_node, ca=False), "connect_attempts": 5}}
    )
    container = Container(
        reactor=_reactor(), config=config, sysname=f"t-tlsnode-{uuid.uuid4().hex[:8]}"
    )
    try:
        with pytest.raises(StartupError, match="refused the connection.*certificate verify"):
            await wait_for(container.start(), timeout=15)
    finally:
        await container.stop()
