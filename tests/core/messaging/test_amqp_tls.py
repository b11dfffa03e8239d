"""amqps: the container talks TLS to the broker, verifies it, and can present a
client certificate. A TLS-terminating proxy the test owns stands in for the
broker's TLS port (the shared RabbitMQ listens in plain AMQP only); bad TLS
settings are configuration errors that name the setting and the file."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS
from twisted.python import usage

from ion.core.cc.tap import Options
from ion.core.config import DEFAULTS, Config
from ion.core.exception import BrokerRefusedError, ConfigurationError
from ion.core.messaging.amqp import AmqpBroker
from ion.core.messaging.amqp_connection import client_tls_options, parse_amqp_url
from ion.core.messaging.connect import amqp_parameters
from ion.test.proxy import Proxy
from tests.helpers import wait_for
from tests.rabbit import HOST, PORT, URL, require_rabbitmq
from tests.tls import Pki, hello_over_tls, make_pki


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest_twisted.async_yield_fixture
async def tls_port(pki: Pki) -> AsyncIterator[Callable[..., Any]]:
    """C{await tls_port(require_client=False)}: the port of a TLS proxy to RabbitMQ."""
    require_rabbitmq()
    proxies: list[Proxy] = []

    async def start(require_client: bool = False) -> int:
        proxy = Proxy(_reactor(), (HOST, PORT), tls=pki.server_options(require_client))
        proxies.append(proxy)
        return await proxy.start()

    yield start
    for proxy in proxies:
        await proxy.stop()


def _url(port: int) -> str:
    return f"amqps://guest:guest@127.0.0.1:{port}/"


async def _connects(url: str, **files: Any) -> None:
    """Connect to C{url} with TLS files C{files}, check the link with a declare, close."""
    params = parse_amqp_url(url, **{k: str(v) for k, v in files.items()})
    broker = AmqpBroker(_reactor(), params, reconnect=False)
    await wait_for(broker.connect(), timeout=10)
    try:
        queue = await broker.declare_queue("", exclusive=True, auto_delete=True)
        assert queue.startswith("amq.gen-")
    finally:
        await broker.close()


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_container_calls_over_amqps(pki: Pki, tls_port) -> None:
    """A container configured with an amqps:// URL and a CA serves and answers calls over TLS."""
    port = await tls_port()
    sysname = f"t-tls-{uuid.uuid4().hex[:8]}"
    config = Config(DEFAULTS).merged(
        {"broker": {"url": _url(port), "ca": str(pki.ca)}, "container": {"rpc_timeout": 10}}
    )
    await hello_over_tls(config, sysname, "tls", URL)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_client_certificate_presented(pki: Pki, tls_port) -> None:
    """A broker that demands a client certificate accepts the one given by cert and key."""
    port = await tls_port(require_client=True)
    await _connects(_url(port), ca=pki.ca, cert=pki.client_cert, key=pki.client_key)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_missing_client_certificate_fails_clearly(pki: Pki, tls_port) -> None:
    """Without the client certificate a broker demands, connecting fails at once: refused."""
    port = await tls_port(require_client=True)
    with pytest.raises(BrokerRefusedError, match="cannot connect to amqps://guest:\\*\\*\\*@"):
        await _connects(_url(port), ca=pki.ca)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_untrusted_broker_refused(pki: Pki, tls_port) -> None:
    """A broker whose certificate the given CA did not sign is refused: no AMQP is spoken."""
    port = await tls_port()
    with pytest.raises(BrokerRefusedError, match="certificate verify failed"):
        await _connects(_url(port), ca=pki.other_ca)


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_broker_of_another_name_refused(pki: Pki, tls_port) -> None:
    """The certificate must name the host the URL names, even when a trusted CA signed it."""
    port = await tls_port()
    params = parse_amqp_url(_url(port), ca=str(pki.ca))
    elsewhere = dataclasses.replace(params, host="broker.ion.invalid")
    broker = AmqpBroker(
        _reactor(),
        params,
        reconnect=False,
        endpoint_factory=lambda reactor, _p: wrapClientTLS(
            client_tls_options(elsewhere), TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        ),
    )
    with pytest.raises(BrokerRefusedError, match="cannot connect"):
        await wait_for(broker.connect(), timeout=10)


def _config(**broker: Any) -> Config:
    return Config(DEFAULTS).merged({"broker": {"url": "amqps://127.0.0.1/", **broker}})


def test_unreadable_ca_names_setting_and_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigurationError, match=f"broker.ca {missing}: No such file"):
        amqp_parameters(_config(ca=str(missing)))


def test_ca_not_pem(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigurationError, match="broker.ca .*junk.pem: not a PEM certificate"):
        amqp_parameters(_config(ca=str(junk)))


def test_cert_without_its_key(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="broker.cert .*client.pem: not a PEM certificate"):
        amqp_parameters(_config(cert=str(pki.client_cert)))


def test_key_without_cert(pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match="broker.key: a client key needs its certificate"):
        amqp_parameters(_config(key=str(pki.client_key)))


def test_good_files_accepted(pki: Pki) -> None:
    [params] = amqp_parameters(
        _config(ca=str(pki.ca), cert=str(pki.client_cert), key=str(pki.client_key))
    ) or [None]
    assert params is not None and params.tls and params.port == 5671 and params.ca == str(pki.ca)


def test_twistd_reports_bad_tls_file_as_usage_error(tmp_path: Path) -> None:
    """`twistd cc --broker amqps://... --broker_ca FILE` with a missing FILE stops at option
    parsing, naming the setting and the file (no connect attempts, no traceback)."""
    missing = tmp_path / "ca.pem"
    with pytest.raises(usage.UsageError, match=f"broker.ca {missing}: No such file"):
        Options().parseOptions(["--broker", "amqps://127.0.0.1/", "--broker_ca", str(missing)])
