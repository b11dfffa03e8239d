"""Choose and build the broker connection a container's configuration asks for."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from ion.core.config import Config
from ion.core.exception import ConfigurationError
from ion.core.log import shown_url
from ion.core.messaging.broker import IBroker

TLS_FILES = ("ca", "cert", "key")  # broker.<name>: PEM files for amqps


QUEUE_TYPES = ("auto", "classic", "quorum")


def broker_urls(config: Config) -> list[str]:
    """The broker URLs of C{broker.url} (one, a comma-separated string or a list:
    the nodes of one cluster), with C{broker.username}/C{broker.password} filled
    in when given separately (from a credentials file or the environment, so
    they never stand on the command line)."""
    value = config.get("broker.url", "local")
    if isinstance(value, str):
        urls = [u.strip() for u in value.split(",")]
    elif isinstance(value, list | tuple) and all(isinstance(u, str) for u in value):
        urls = [u.strip() for u in value]
    else:
        raise ConfigurationError(
            f"broker.url: expected a URL or a list of URLs, not {type(value).__name__}"
        )
    if not urls or not all(urls):
        raise ConfigurationError("broker.url: an empty address (a stray comma?)")
    if "local" in urls and len(urls) > 1:
        raise ConfigurationError("broker.url: 'local' is the embedded broker; it has no peers")
    user, password = config.get("broker.username"), config.get("broker.password")
    if urls == ["local"] or (user is None and password is None):
        return urls
    creds = quote(str(user or "guest"), safe="") + ":" + quote(str(password or ""), safe="")
    filled = []
    for url in urls:
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ConfigurationError(f"broker.url: not a URL: {shown_url(url)!r}")
        rest = rest.rpartition("@")[2]  # credentials from the file or environment win
        filled.append(f"{scheme}://{creds}@{rest}")
    return filled


def broker_url(config: Config) -> str:
    """L{broker_urls}, comma-separated."""
    return ",".join(broker_urls(config))


def amqp_parameters(config: Config) -> list[Any] | None:
    """The L{AmqpParameters} of each node C{broker.*} name, or None for the embedded broker.

    @raise ConfigurationError: a URL is not a broker's, the nodes differ in more than
        host and port, or (for C{amqps}) a TLS file cannot be read or used; the
        message names the setting.
    """
    urls = broker_urls(config)
    if urls == ["local"]:
        return None
    for url in urls:
        if not url.startswith(("amqp://", "amqps://")):
            raise ConfigurationError(
                f"broker.url: {shown_url(url)!r} is not a broker: use 'local', amqp:// or amqps://"
            )
    from ion.core.messaging.amqp_connection import client_tls_options, parse_amqp_url
    from ion.core.messaging.amqp_nodes import check_one_login

    tls = {k: config.get(f"broker.{k}") for k in TLS_FILES if config.get(f"broker.{k}")}
    addresses = [parse_amqp_url(url, **tls) for url in urls]
    check_one_login(addresses)
    if addresses[0].tls:
        client_tls_options(addresses[0])  # read the files now: a bad one is a usage error
    return addresses


def queue_type(config: Config) -> str:
    """The type of the queues a system shares (services', named subscriptions', the
    dead letters'): C{broker.queue_type}, where C{auto} is C{quorum} when
    C{broker.url} names several nodes (a cluster) and C{classic} otherwise."""
    kind = config.get("broker.queue_type", "auto")
    if kind not in QUEUE_TYPES:
        raise ConfigurationError(
            f"broker.queue_type: {kind!r} is not one of {', '.join(QUEUE_TYPES)}"
        )
    if kind == "auto":
        return "quorum" if len(broker_urls(config)) > 1 else "classic"
    return str(kind)


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
        shuffle=bool(config.get("broker.shuffle", True)),
        heartbeat=int(config.get("broker.heartbeat", 10)),
        name=name,
        handshake_timeout=float(config.get("broker.handshake_timeout", 10.0)),
        restore_timeout=float(config.get("broker.restore_timeout", 60.0)),
        max_unconfirmed=int(config.get("broker.max_unconfirmed", 1000)),
    )
