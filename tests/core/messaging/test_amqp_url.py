"""Parsing broker URLs into AmqpParameters, one or a cluster's several, and the
queue type they make (no broker needed)."""

from __future__ import annotations

from typing import Any

import pytest

from ion.core.config import Config
from ion.core.exception import ConfigurationError
from ion.core.messaging.amqp_connection import AmqpParameters, parse_amqp_url
from ion.core.messaging.connect import amqp_parameters, broker_urls, queue_type


def test_full_url():
    """Every part of an amqp URL lands in its field, the vhost percent-decoded."""
    p = parse_amqp_url("amqp://alice:s%40cret@rabbit.example:5673/lab%2Fone")
    assert p == AmqpParameters("rabbit.example", 5673, "lab/one", "alice", "s@cret")


def test_defaults():
    """A bare URL means guest/guest, port 5672 and the default vhost C{/}."""
    assert parse_amqp_url("amqp://localhost") == AmqpParameters(host="localhost")
    assert parse_amqp_url("amqp://localhost/").vhost == "/"


def test_amqps_with_tls_files():
    """amqps defaults to port 5671 and takes ca, cert and key from the query or keywords."""
    p = parse_amqp_url("amqps://u:p@h/?ca=/ca.pem&cert=/c.pem", key="/k.pem")
    assert (p.tls, p.port, p.ca, p.cert, p.key) == (True, 5671, "/ca.pem", "/c.pem", "/k.pem")


def test_url_property_masks_password():
    """The URL an AmqpParameters reports for logging never shows the password."""
    p = parse_amqp_url("amqp://bob:hunter2@h:5672/v")
    assert p.url == "amqp://bob:***@h:5672/v"
    assert "hunter2" not in repr(p)


@pytest.mark.parametrize(
    "url",
    ["http://h/", "amqp://h:notaport/", "amqp://h/?ca=/x.pem", "amqps://h/?colour=red"],
)
def test_bad_urls_refused(url):
    """A wrong scheme, a bad port, TLS files without amqps or an unknown option is a ConfigurationError."""
    with pytest.raises(ConfigurationError):
        parse_amqp_url(url)


def test_refusals_told_from_transient_failures() -> None:
    """A refused login or vhost, or a certificate not trusted, is a refusal (not retried
    at boot); a forced close, a refused TCP connection or an EOF mid-handshake is not."""
    import pika.exceptions
    from OpenSSL.SSL import Error as TLSError
    from twisted.internet.error import ConnectionRefusedError

    from ion.core.messaging.amqp_connection import is_refusal

    closed = pika.exceptions.ConnectionClosedByBroker
    assert is_refusal(closed(403, "ACCESS_REFUSED - Login was refused"))
    assert is_refusal(closed(530, "NOT_ALLOWED - access to vhost 'x' refused"))
    assert is_refusal(TLSError([("SSL routines", "", "certificate verify failed")]))
    assert is_refusal(TLSError([("SSL routines", "", "tlsv13 alert certificate required")]))
    assert not is_refusal(closed(320, "CONNECTION_FORCED - broker forced connection closure"))
    assert not is_refusal(closed(530, "NOT_ALLOWED - connection limit (10) is reached"))
    assert not is_refusal(ConnectionRefusedError())
    assert not is_refusal(TLSError([("SSL routines", "", "unexpected eof while reading")]))
    assert not is_refusal(None)


@pytest.mark.parametrize(
    "url",
    [
        "guest:s3cret@rabbit:5672",  # no scheme
        "amqp://guest:s3cr/et@rabbit:5672/",  # an unencoded / in the password
        "amqp://guest:s3cr#et@rabbit:5672/",
        "amqp://guest:5672/s3cret@rabbit:5672/",  # parses, with the password in the path
        "amqp://guest:99?s3cret=x@rabbit:5672/",  # parses, with the password in the query
    ],
)
def test_a_malformed_url_is_refused_without_showing_its_password(url: str) -> None:
    """The error names the setting and what is wrong, and masks the credentials
    (urllib's own reason would quote part of the password)."""
    from ion.core.config import Config
    from ion.core.messaging.connect import amqp_parameters

    with pytest.raises(ConfigurationError) as raised:
        amqp_parameters(Config({"broker": {"url": url}}))
    message = str(raised.value)
    assert "s3cr" not in message and "***@rabbit:5672" in message


def _config(**broker: Any) -> Config:
    return Config({"broker": broker})


@pytest.mark.parametrize(
    "url",
    [
        "amqp://a:1@h1:5672/,amqp://a:1@h2:5673/",
        " amqp://a:1@h1:5672/ , amqp://a:1@h2:5673/",
        ["amqp://a:1@h1:5672/", "amqp://a:1@h2:5673/"],
    ],
)
def test_several_addresses_comma_separated_or_a_list(url: Any) -> None:
    addresses = amqp_parameters(_config(url=url))
    assert addresses is not None
    assert [(a.host, a.port) for a in addresses] == [("h1", 5672), ("h2", 5673)]
    assert queue_type(_config(url=url)) == "quorum"


def test_credentials_given_apart_fill_every_address() -> None:
    config = _config(url="amqp://h1/,amqp://h2/", username="svc", password="p@ss")
    assert broker_urls(config) == ["amqp://svc:p%40ss@h1/", "amqp://svc:p%40ss@h2/"]


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("amqp://h1/,", "an empty address"),
        ("local,amqp://h1/", "'local' is the embedded broker"),
        (5672, "expected a URL or a list of URLs"),
        ("amqp://h1/,http://h2/", "is not a broker"),
        ("amqp://a:1@h1/,amqp://b:1@h2/", "another username"),
    ],
)
def test_bad_address_lists_refused(url: Any, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint):
        amqp_parameters(_config(url=url))


@pytest.mark.parametrize(
    ("setting", "url", "kind"),
    [
        ("auto", "local", "classic"),
        ("auto", "amqp://h1/", "classic"),
        ("auto", "amqp://h1/,amqp://h2/", "quorum"),
        ("classic", "amqp://h1/,amqp://h2/", "classic"),
        ("quorum", "amqp://h1/", "quorum"),
        ("quorum", "local", "quorum"),
    ],
)
def test_queue_type_auto_is_quorum_on_several_nodes(setting: str, url: str, kind: str) -> None:
    assert queue_type(_config(url=url, queue_type=setting)) == kind


def test_unknown_queue_type_refused() -> None:
    with pytest.raises(ConfigurationError, match="broker.queue_type: 'mirrored' is not one of"):
        queue_type(_config(queue_type="mirrored"))
