"""The system's key ring: the current signing key and at most one previous one.

Keys come from a key file (C{security.key_file}) or the environment
(C{ION_SYSTEM_KEY}, C{ION_SYSTEM_KEY_PREVIOUS}); never from the command line,
where C{ps} would show them. A key file holds one key a line, C{<kid> <base64
key>}, the current key first and the previous one (if any) second; blank lines
and lines starting with C{#} are ignored. An environment value is C{<kid>
<base64 key>} too. A key is at least 32 bytes.

Make a key line with C{python -m ion.core.security.keys new [KID]} (or
L{new_key_line}); no key material is ever logged.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ion.core.config import Config
from ion.core.exception import ConfigurationError

MIN_KEY_BYTES = 32
ENV_KEY = "ION_SYSTEM_KEY"
ENV_PREVIOUS = "ION_SYSTEM_KEY_PREVIOUS"
_MAX_KID = 64


@dataclass(frozen=True)
class Key:
    """One signing key: its id (carried in every message it signs) and secret."""

    kid: str
    secret: bytes = field(repr=False)  # never shown


@dataclass(frozen=True)
class KeyRing:
    """The current key (signs and verifies) and the previous one (verifies only)."""

    current: Key
    previous: Key | None = None

    def get(self, kid: object) -> Key | None:
        """The key with id C{kid}, if this ring holds it."""
        if kid == self.current.kid:
            return self.current
        if self.previous is not None and kid == self.previous.kid:
            return self.previous
        return None

    @property
    def kids(self) -> list[str]:
        """The ids of the keys held, current first."""
        return [self.current.kid] + ([self.previous.kid] if self.previous else [])


def parse_key(text: str, where: str) -> Key:
    """A key from C{<kid> <base64 key>}; C{where} names its source in errors."""
    parts = text.split()
    if len(parts) != 2:
        raise ConfigurationError(f"{where}: expected '<kid> <base64 key>'")
    kid, encoded = parts
    if len(kid) > _MAX_KID or not kid.isprintable():
        raise ConfigurationError(f"{where}: a key id is up to {_MAX_KID} printable characters")
    try:
        secret = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"{where}: key {kid!r} is not base64") from None
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{where}: key {kid!r} is {len(secret)} bytes; a key needs at least {MIN_KEY_BYTES}"
        )
    return Key(kid, secret)


def read_key_file(path: str) -> KeyRing:
    """The ring in key file C{path}; L{ConfigurationError} naming the setting and file."""
    where = f"security.key_file {path}"
    try:
        with open(path, encoding="ascii") as f:
            text = f.read()
    except OSError as e:
        raise ConfigurationError(f"{where}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"{where}: not a key file (not ASCII text)") from None
    lines = [
        (n, line) for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]  # fmt: skip
    if not lines:
        raise ConfigurationError(f"{where}: no key in it")
    if len(lines) > 2:
        raise ConfigurationError(f"{where}: at most two keys (current, then previous)")
    keys = [parse_key(line, f"{where} line {n}") for n, line in lines]
    return _ring(keys, where)


def _ring(keys: list[Key], where: str) -> KeyRing:
    if len(keys) == 2 and keys[0].kid == keys[1].kid:
        raise ConfigurationError(f"{where}: the current and previous keys share id {keys[0].kid!r}")
    return KeyRing(keys[0], keys[1] if len(keys) == 2 else None)


def load_ring(config: Config, environ: Mapping[str, str] | None = None) -> KeyRing | None:
    """The system's key ring when C{security.signing} is on (else None).

    C{security.key_file} wins over the environment. L{ConfigurationError}, naming
    the setting (and file), when signing is on and no good key is found.
    """
    if not config.get("security.signing", False):
        return None
    env = os.environ if environ is None else environ
    path = config.get("security.key_file")
    if path:
        return read_key_file(os.path.expanduser(str(path)))
    if env.get(ENV_KEY):
        keys = [parse_key(env[ENV_KEY], ENV_KEY)]
        if env.get(ENV_PREVIOUS):
            keys.append(parse_key(env[ENV_PREVIOUS], ENV_PREVIOUS))
        return _ring(keys, ENV_KEY)
    raise ConfigurationError(
        f"security.signing is on but there is no key: set security.key_file "
        f"(or the environment {ENV_KEY}); make one with 'python -m ion.core.security.keys new'"
    )


def new_key_line(kid: str | None = None) -> str:
    """A new key as a key-file line: C{<kid> <base64 of 32 random bytes>}."""
    kid = kid or time.strftime("k%Y%m%d%H%M%S", time.gmtime())
    line = f"{kid} {base64.b64encode(secrets.token_bytes(MIN_KEY_BYTES)).decode('ascii')}"
    parse_key(line, "new key")
    return line


def main(argv: list[str]) -> int:
    """C{new [KID]}: print a new key line (to put first in the key file)."""
    if not argv or argv[0] != "new" or len(argv) > 2:
        print("usage: python -m ion.core.security.keys new [KID]", file=sys.stderr)
        return 2
    try:
        print(new_key_line(argv[1] if len(argv) == 2 else None))
    except ConfigurationError as e:
        print(e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
