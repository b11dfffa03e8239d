"""Choose and build the broker connection a container's configuration asks for."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ion.core.config import Config
from ion.core.exception import ConfigurationError
from ion.core.log import shown_url
from ion.core.messaging.broker import IBroker

TLS_FILES = ("ca", "cert", "key")  # broker.<name>: PEM files for amqps


def broker_url(config: Config) -> str:
    """The broker URL from C{broker.url}, with C{broker.username}/C{broker.password}
    filled in when given separately (from a credentials file or the environment,
    so they never stand on the command line)."""
    url = str(config.get("broker.url", "local"))
    user, password = config.get("broker.username"), config.get("broker.password")
    if url == "local" or (user is None and password is None):
        return url
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"broker.url: not a URL: {shown_url(url)!r}")
    rest = rest.rpartition("@")[2]  # credentials from the file or environment win
    creds = quote(str(user or "guest"), safe="") + ":" + quote(str(password or ""), safe="")
    return f"{scheme}://{creds}@{rest}"


def amqp_parameters(config: Config) -> Any:
    """The L{AmqpParameters} C{broker.*} ask for, or None for the embedded broker.

    @raise ConfigurationError: the URL is not a broker's, or (for C{amqps}) a
        TLS file cannot be read or used; the message names the setting.
    """
    url = broker_url(config)
    if url == "local":
        return None
    if not url.startswith(("amqp://", "amqps://")):
        raise ConfigurationError(
            f"broker.url: {shown_url(url)!r} is not a broker: use 'local', amqp:// or amqps://"
        )
    from ion.core.messaging.amqp_connection import client_tls_options, parse_amqp_url

    tls = {k: config.get(f"broker.{k}") for k in TLS_FILES if config.get(f"broker.{k}")}
    params = parse_amqp_url(url, **tls)
    if params.tls:
        client_tls_options(params)  # read the files now: a bad one is a usage error, not a retry
    return params


def make_broker(reactor: Any, config: Config, name: str | None = None) -> IBroker:
    """The embedded broker (C{local}) or an AMQP connection (C{amqp://}, C{amqps://})."""
    params = amqp_parameters(config)
    if params is None:
        from ion.core.messaging.embedded import EmbeddedBroker

        return EmbeddedBroker(reactor).connection()
    import logging

    from ion.core.messaging.amqp import AmqpBroker

    # pika logs every refused declare and lost connection on stdlib logging;
    # AmqpBroker reports those conditions itself, through ion's log.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    return AmqpBroker(
        reactor,
        params,
        heartbeat=int(config.get("broker.heartbeat", 10)),
        name=name,
        handshake_timeout=float(config.get("broker.handshake_timeout", 10.0)),
        restore_timeout=float(config.get("broker.restore_timeout", 60.0)),
        max_unconfirmed=int(config.get("broker.max_unconfirmed", 1000)),
    )
