"""Who sends a gateway request (L{Authenticator}).

Two ways, either or both, by config:

  - C{gateway.auth.tokens}: C{Authorization: Bearer <token>}, each token mapped
    to its user. A token the map lacks is a 401 (and is never logged).
  - C{gateway.auth.remote_user: true}: the C{Http-Remote-User} header names the
    user, as Pacifica's proxy sets it. Anyone who can reach the gateway can
    set that header, so the gateway must then listen on loopback behind the
    proxy that authenticates and sets it (and strips what clients send).

With neither, the gateway does not serve anonymously: at start it makes a
random token for the user C{local} (L{generated}), writes it (mode 0600) to
C{gateway.token_file} (default C{<gateway.data_dir>/gateway.token}) and logs
the file's path, never the token. The file is removed when the gateway stops.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from ion.core.security.token_file import write_token
from ion.gateway.config import GatewayConfig
from ion.gateway.web import HttpError

LOCAL_USER = "local"
REMOTE_USER_HEADER = b"http-remote-user"
MAX_USER = 256  # characters of a user name from a header


class Authenticator:
    """Finds the user of a request: a bearer token, else (if trusted) C{Http-Remote-User}."""

    def __init__(self, tokens: Mapping[str, str], remote_user: bool = False) -> None:
        self._tokens = [(t.encode(), u) for t, u in tokens.items()]
        self.remote_user = remote_user

    def user_of(self, request: Any) -> str | None:
        """The request's user; None when it carries no credentials.

        @raise HttpError: 401 for a malformed or unknown credential.
        """
        header = request.getHeader(b"authorization")
        if header is not None:
            return self._bearer(header.encode("latin-1") if isinstance(header, str) else header)
        if self.remote_user:
            named = request.getHeader(REMOTE_USER_HEADER)
            if named is not None:
                return _remote_user(named)
        return None

    def _bearer(self, header: bytes) -> str:
        scheme, _, token = header.strip().partition(b" ")
        if scheme.lower() != b"bearer" or not token.strip():
            raise HttpError(401, None, "expected Authorization: Bearer <token>")
        token = token.strip()
        found = None
        for known, user in self._tokens:  # (every one compared: no early way out to time)
            if hmac.compare_digest(known, token):
                found = user
        if found is None:
            raise HttpError(401, None, "unknown token")
        return found


def _remote_user(value: Any) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if not text or len(text) > MAX_USER or not text.isprintable():
        raise HttpError(401, None, "Http-Remote-User: expected a user name")
    return text


def generated(config: GatewayConfig) -> tuple[str, str] | None:
    """When no authentication is configured: a new random token (for user
    C{local}), written to C{config.token_file}; (token, file). Else None.

    @raise StartupError: the file cannot be written.
    """
    if config.tokens or config.remote_user:
        return None
    token = secrets.token_urlsafe(32)
    write_token(config.token_file, token, "gateway.token_file")
    return token, config.token_file


def authenticator_for(config: GatewayConfig, token: str | None = None) -> Authenticator:
    """The authenticator of C{config}, plus the generated C{token} (for C{local}) if any."""
    tokens = dict(config.tokens)
    if token is not None:
        tokens[token] = LOCAL_USER
    return Authenticator(tokens, config.remote_user)
