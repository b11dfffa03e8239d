"""A generated access token's file: written mode 0600, removed with its server.

The observer's web view and the HTTP gateway each make a token at start and
write it where their user reads it (C{web.token_file}, C{gateway.token_file});
the token itself is never logged.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from ion.core.exception import StartupError

__all__ = ["remove_token", "write_token"]


def write_token(path: str, token: str, setting: str) -> None:
    """Write C{token} to C{path}: a new file of our own (mode 0600, never through
    a link someone planted), renamed into place; its directory is made (0700)
    if missing.

    @raise StartupError: naming C{setting} and C{path}.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".token.", dir=directory)  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(token + "\n")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        raise StartupError(f"{setting} {path}: {e.strerror}") from None


def remove_token(path: str) -> None:
    """Remove a generated token's file (the token dies with its server)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
