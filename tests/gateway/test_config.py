"""The gateway's settings (ion.gateway.config): defaults and errors naming the key."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest

from ion.core.config import Config
from ion.core.exception import ConfigurationError
from ion.gateway.config import GatewayConfig


def test_defaults() -> None:
    """With no gateway keys every setting has its documented default."""
    c = GatewayConfig.from_config(Config({}))
    assert (c.http_host, c.http_port) == ("127.0.0.1", 8070)
    assert c.max_body == 1024 * 1024
    assert c.remote_user is False and dict(c.tokens) == {}
    assert c.database is None and c.data_dir == "ion-data"
    assert c.sqlite_path == os.path.join("ion-data", "gateway.sqlite")
    assert c.token_file == os.path.join("ion-data", "gateway.token")
    assert c.allow_targets == () and c.services == () and c.match_lease == 10.0
    assert (c.delivery_timeout, c.delivery_max_attempts, c.delivery_backoff) == (10.0, 8, 0.5)
    assert (c.delivery_backoff_max, c.delivery_lease, c.delivery_concurrency) == (30.0, 30.0, 32)
    assert c.retention == 7 * 24 * 3600


def test_values_read() -> None:
    """Every key is read from its place under gateway."""
    c = GatewayConfig.from_config(
        {
            "gateway": {
                "http": "0",
                "max_body": 10,
                "auth": {"remote_user": True, "tokens": {"t0k": "ann"}},
                "token_file": "/x/t",
                "data_dir": "d",
                "database": "postgresql://u@h/db",
                "allow_targets": ["127.0.0.0/8", "::1"],
                "services": ["hello"],
                "match_lease": 6,
                "delivery": {"timeout": 1, "max_attempts": 2, "backoff": 0.1,
                             "backoff_max": 3, "lease": 4, "concurrency": 5},
            }
        }
    )  # fmt: skip
    assert (c.http_host, c.http_port, c.max_body) == ("127.0.0.1", 0, 10)
    assert c.remote_user is True and dict(c.tokens) == {"t0k": "ann"}
    assert c.token_file == "/x/t" and c.sqlite_path == os.path.join("d", "gateway.sqlite")
    assert c.database == "postgresql://u@h/db"
    assert c.allow_targets == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1"))
    assert c.services == ("hello",) and c.match_lease == 6.0
    assert (c.delivery_timeout, c.delivery_max_attempts, c.delivery_backoff) == (1.0, 2, 0.1)
    assert (c.delivery_backoff_max, c.delivery_lease, c.delivery_concurrency) == (3.0, 4.0, 5)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http", "example.org:80"),
        ("http", "70000"),
        ("max_body", 0),
        ("max_body", "big"),
        ("auth.remote_user", "yes"),
        ("auth.tokens", ["t"]),
        ("auth.tokens", {"t": ""}),
        ("auth.tokens", {"a b": "ann"}),
        ("token_file", 3),
        ("data_dir", ""),
        ("database", "mysql://h/db"),
        ("allow_targets", ["not-a-net"]),
        ("allow_targets", 5),
        ("services", [1]),
        ("delivery.timeout", 0),
        ("delivery.max_attempts", 0),
        ("delivery.max_attempts", 1.5),
        ("delivery.backoff", -1),
        ("delivery.backoff_max", 0.1),
        ("delivery.lease", "x"),
        ("match_lease", 0),
        ("retention", -1),
        ("retention", "a week"),
        ("delivery.concurrency", 0),
    ],
)
def test_bad_value_names_its_key(key: str, value: Any) -> None:
    """A bad value is a ConfigurationError naming gateway.<key>."""
    tree: dict[str, Any] = {}
    node = tree
    *parents, last = ("gateway." + key).split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    with pytest.raises(ConfigurationError) as info:
        GatewayConfig.from_config(tree)
    assert f"gateway.{key}" in str(info.value)


def test_token_is_not_shown_in_errors() -> None:
    """A malformed token is refused without echoing it."""
    with pytest.raises(ConfigurationError) as info:
        GatewayConfig.from_config({"gateway": {"auth": {"tokens": {"s3cr3t token": "ann"}}}})
    assert "s3cr3t" not in str(info.value)


def test_database_password_is_not_shown() -> None:
    """A database URL that is refused is shown without its credentials."""
    with pytest.raises(ConfigurationError) as info:
        GatewayConfig.from_config({"gateway": {"database": "mysql://u:pw@h/db"}})
    assert "pw" not in str(info.value)


def test_defaults_match_the_container_defaults() -> None:
    """ion's DEFAULTS (and so ion.yml) give the same settings as no keys at all."""
    from ion.core.config import DEFAULTS

    assert GatewayConfig.from_config(Config(DEFAULTS)) == GatewayConfig.from_config({})


def test_repr_shows_no_secrets() -> None:
    """The settings' repr carries neither the tokens nor the database URL."""
    c = GatewayConfig.from_config(
        {"gateway": {"auth": {"tokens": {"s3cr3t": "ann"}}, "database": "postgresql://u:pw@h/d"}}
    )
    assert "s3cr3t" not in repr(c) and "pw" not in repr(c)
