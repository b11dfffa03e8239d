"""Who a caller is: the C{user-id} its requests carry, taken from how it logged in.

- ion-rpc: the broker user it connected as (L{broker_user}); the broker checked
  the password, so the name is proven (a third party's AMQP C{user_id} property
  lets the broker prove it per message too).
- the shell (console, C{--manhole}, C{ion-rpc --attach}): C{shell.user}, else the
  OS user running the container (L{shell_user}). The manhole admits only that
  user (and root), and the console is the container's own terminal: whoever is
  there runs code in the container, so it speaks as the container's operator.
"""

from __future__ import annotations

import os
from typing import Any

from ion.core.exception import ConfigurationError

__all__ = ["broker_user", "os_user", "shell_user"]


def os_user() -> str:
    """The name of the OS user this process runs as (its uid when it has no name)."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return str(os.geteuid())


def shell_user(config: Any) -> str:
    """The user-id of the shell's calls: C{shell.user}, else L{os_user}.

    @raise ConfigurationError: C{shell.user} is set but not a non-empty string.
    """
    user = config.get("shell.user")
    if user is None:
        return os_user()
    if not isinstance(user, str) or not user:
        raise ConfigurationError(f"shell.user: expected a user name, not {user!r}")
    return user


def broker_user(config: Any) -> str | None:
    """The broker user C{config}'s C{broker.*} logs in as (as the connection does:
    C{broker.username}, else the URL's, else guest); None for the embedded broker."""
    from ion.core.messaging.connect import amqp_parameters

    params = amqp_parameters(config)
    return None if not params else str(params[0].username)
