"""The gateway's settings (keys under C{gateway.}), read and checked once.

Their defaults are L{ion.core.config.DEFAULTS}' (documented in res/config/ion.yml),
and the same here, for a config without them.

| key                         | default          | meaning                                        |
| --------------------------- | ---------------- | ---------------------------------------------- |
| C{http}                     | 127.0.0.1:8070   | where to listen: PORT or HOST:PORT (0: any)   |
| C{max_body}                 | 1048576          | largest request body, bytes                    |
| C{auth.remote_user}         | false            | trust C{Http-Remote-User} (set by a proxy)     |
| C{auth.tokens}              | {}               | bearer token -> user                           |
| C{token_file}               | None             | where a generated token goes (see auth)        |
| C{data_dir}                 | ion-data         | the gateway's files (relative: to the cwd)     |
| C{database}                 | None             | None: SQLite in data_dir; or postgresql://...  |
| C{allow_targets}            | []               | CIDRs webhook targets may reach though private |
| C{services}                 | []               | services whose declared routes are served      |
| C{match_lease}              | 10               | seconds the matching gateway holds its lease   |
| C{delivery.timeout}         | 10               | seconds for one webhook post                   |
| C{delivery.max_attempts}    | 8                | attempts before a delivery is parked           |
| C{delivery.backoff}         | 0.5              | first retry delay, seconds                     |
| C{delivery.backoff_max}     | 30               | largest retry delay, seconds                   |
| C{delivery.lease}           | 30               | seconds a worker holds a claimed delivery      |
| C{delivery.concurrency}     | 32               | deliveries posted at once                      |
| C{retention}                | 604800           | seconds delivered rows and sightings are kept  |
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ion.core.config import Config, read_number
from ion.core.exception import ConfigurationError
from ion.core.observe.web.service import parse_listen

DEFAULT_HTTP = "127.0.0.1:8070"
DEFAULT_MAX_BODY = 1024 * 1024
DEFAULT_DATA_DIR = "ion-data"
DEFAULT_RETENTION = 7 * 24 * 3600.0  # a week: longer than any redelivery

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class GatewayConfig:
    """The checked C{gateway.*} settings (see the module's table)."""

    http_host: str = "127.0.0.1"
    http_port: int = 8070
    max_body: int = DEFAULT_MAX_BODY
    remote_user: bool = False
    tokens: Mapping[str, str] = field(default_factory=dict, repr=False)  # (secrets)
    token_file_setting: str | None = None
    data_dir: str = DEFAULT_DATA_DIR
    database: str | None = field(default=None, repr=False)  # (may hold a password)
    allow_targets: tuple[IPNetwork, ...] = ()
    services: tuple[str, ...] = ()
    match_lease: float = 10.0
    delivery_timeout: float = 10.0
    delivery_max_attempts: int = 8
    delivery_backoff: float = 0.5
    delivery_backoff_max: float = 30.0
    delivery_lease: float = 30.0
    delivery_concurrency: int = 32
    retention: float = DEFAULT_RETENTION

    @property
    def token_file(self) -> str:
        """Where a generated token is written: C{token_file}, or C{<data_dir>/gateway.token}."""
        return self.token_file_setting or os.path.join(self.data_dir, "gateway.token")

    @property
    def sqlite_path(self) -> str:
        """The SQLite file used when C{database} is None."""
        return os.path.join(self.data_dir, "gateway.sqlite")

    @classmethod
    def from_config(cls, config: Config | Mapping[str, Any]) -> GatewayConfig:
        """Read the C{gateway.*} keys of C{config} (a L{Config}, or a plain mapping).

        @raise ConfigurationError: naming the first bad key and its value.
        """
        if not isinstance(config, Config):
            config = Config(config)
        g = config.view("gateway")
        host, port = parse_listen(_get(g, "http", DEFAULT_HTTP), "gateway.http (--http)")
        return cls(
            http_host=host,
            http_port=port,
            max_body=_number(g, "max_body", DEFAULT_MAX_BODY, int, least=1),
            remote_user=_bool(g, "auth.remote_user", False),
            tokens=_tokens(_get(g, "auth.tokens", None)),
            token_file_setting=_path(g, "token_file", None),
            data_dir=_path(g, "data_dir", DEFAULT_DATA_DIR) or DEFAULT_DATA_DIR,
            database=_database(_get(g, "database", None)),
            allow_targets=_networks(_get(g, "allow_targets", None)),
            services=_names(_get(g, "services", None)),
            match_lease=_number(g, "match_lease", 10.0, float),
            delivery_timeout=_number(g, "delivery.timeout", 10.0, float),
            delivery_max_attempts=_number(g, "delivery.max_attempts", 8, int, least=1),
            delivery_backoff=_number(g, "delivery.backoff", 0.5, float),
            delivery_backoff_max=_number(g, "delivery.backoff_max", 30.0, float),
            delivery_lease=_number(g, "delivery.lease", 30.0, float),
            delivery_concurrency=_number(g, "delivery.concurrency", 32, int, least=1),
            retention=_number(g, "retention", DEFAULT_RETENTION, float),
        )._checked()

    def _checked(self) -> GatewayConfig:
        if self.delivery_backoff_max < self.delivery_backoff:
            raise ConfigurationError(
                f"gateway.delivery.backoff_max: expected at least gateway.delivery.backoff "
                f"({self.delivery_backoff:g}), not {self.delivery_backoff_max:g}"
            )
        return self


def _get(g: Config, key: str, default: Any) -> Any:
    value = g.get(key, default)
    return default if value is None else value


def _bad(key: str, expected: str, value: Any) -> ConfigurationError:
    return ConfigurationError(f"gateway.{key}: expected {expected}, not {value!r}")


def _number(g: Config, key: str, default: Any, kind: type, least: float = 0) -> Any:
    """A number > 0 (float) or >= C{least} (int)."""
    value = _get(g, key, default)
    number = read_number(value, kind)
    if kind is int:
        if number is None or number < least:
            raise _bad(key, f"a whole number >= {least:g}", value)
        return int(number)
    if number is None or number <= 0:
        raise _bad(key, "a number of seconds > 0", value)
    return float(number)


def _bool(g: Config, key: str, default: bool) -> bool:
    value = _get(g, key, default)
    if not isinstance(value, bool):
        raise _bad(key, "true or false", value)
    return value


def _path(g: Config, key: str, default: str | None) -> str | None:
    value = _get(g, key, default)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _bad(key, "a file name", value)
    return os.path.expanduser(value)


def _tokens(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _bad("auth.tokens", "a map of token to user", value)
    out: dict[str, str] = {}
    for token, user in value.items():
        # (the token is never shown in an error: it is a secret)
        if not isinstance(token, str) or not token or not token.isascii() or " " in token:
            raise ConfigurationError(
                "gateway.auth.tokens: a token must be a non-empty string of ASCII without spaces"
            )
        if not isinstance(user, str) or not user.strip():
            raise ConfigurationError(
                f"gateway.auth.tokens: a token's user must be a non-empty string, not {user!r}"
            )
        out[token] = user
    return out


def _database(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("postgresql://", "postgres://")):
        shown = value.split("@")[-1] if isinstance(value, str) else value  # (no password)
        raise _bad("database", "null (SQLite) or a postgresql:// URL", shown)
    return value


def _networks(value: Any) -> tuple[IPNetwork, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise _bad("allow_targets", "a list of CIDRs", value)
    nets = []
    for item in value:
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            raise _bad("allow_targets", "a list of CIDRs (like 127.0.0.0/8)", item) from None
    return tuple(nets)


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(
        isinstance(v, str) and v.strip() for v in value
    ):
        raise _bad("services", "a list of service names", value)
    return tuple(value)
