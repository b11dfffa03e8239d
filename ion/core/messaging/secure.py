"""C{broker.secure}: a container of a system set up by ion-admin (L{ion.admin}),
on RabbitMQ, with a broker user of its own.

Two things change, and every container of the system must agree on them
(a container that does not is refused at boot, see L{ion.core.messaging.exchange}):

- The system exchange C{ion.<sysname>} is a topic exchange, not a direct one:
  RabbitMQ applies topic permissions (which routing keys a user may bind) to
  topic exchanges only. Keys are ion names, which contain no C{*} or C{#}
  (L{ion.core.id}), so a binding matches exactly the key it names, as on a
  direct exchange.
- The container's id is its broker user C{U}, or C{U.<id>}: a process id
  C{name.n@<container id>} and an agent key C{cc.<container id>} then carry
  the user, which is what the permissions of L{ion.admin.grants} match with
  C{{username}}. An id given without the user gets it as a prefix.
"""

from __future__ import annotations

from ion.core.config import Config
from ion.core.exception import ConfigurationError


def is_secure(config: Config) -> bool:
    """Whether C{broker.secure} is on (a bool; anything else is a L{ConfigurationError})."""
    value = config.get("broker.secure", False)
    if not isinstance(value, bool):
        raise ConfigurationError(f"broker.secure: expected true or false, not {value!r}")
    return value


def system_exchange_type(config: Config) -> str:
    """The type of the system exchange C{ion.<sysname>}: C{topic} when secure, else C{direct}."""
    return "topic" if is_secure(config) else "direct"


def broker_user(config: Config) -> str:
    """The login of C{broker.url} (with C{broker.username}); L{ConfigurationError}
    when there is none (the embedded broker has no users)."""
    from ion.core.security.identity import broker_user as login

    user = login(config)
    if user is None:
        raise ConfigurationError(
            "broker.secure: needs RabbitMQ (an amqp:// or amqps:// broker.url with the "
            "container's own broker user), not the embedded broker"
        )
    return user


def container_id(config: Config, cid: str) -> str:
    """The id a container given (or defaulting to) C{cid} has: C{cid} itself, or,
    when secure, C{cid} under its broker user C{U}: C{U} and C{U.<...>} as they
    are, C{U.<cid>} otherwise."""
    if not is_secure(config):
        return cid
    user = broker_user(config)
    if cid == user or cid.startswith(user + "."):
        return cid
    return f"{user}.{cid}"
