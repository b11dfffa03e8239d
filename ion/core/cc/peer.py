"""Who is at the other end of a UNIX socket, and whether the shell trusts them:
the manhole and its clients (ion-shell, ion-rpc --attach) each check the other
(no Twisted here, so the clients start fast)."""

from __future__ import annotations

import os
import socket
import struct


class Refused(Exception):
    """No connection to a manhole socket: none there, or not this user's (the message says)."""


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of C{sock}, where the OS tells."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return uid


def trusted(uid: int) -> bool:
    """Whether C{uid} may be at the other end of a shell: this user, or root."""
    return uid in (os.geteuid(), 0)


def _other_user(path: str, uid: int, what: str) -> Refused:
    return Refused(
        f"{path}: {what} uid {uid}, not you: not attaching (another user may "
        "have put it there to see what you type)"
    )


def check_owner(path: str) -> None:
    """L{Refused} unless the socket at C{path} belongs to this user or root."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise Refused(_cannot_connect(path, e)) from None
    if not trusted(st.st_uid):
        raise _other_user(path, st.st_uid, "the socket belongs to")


def connect(path: str) -> socket.socket:
    """A connection to the manhole at C{path}; L{Refused} with the reason if none,
    or if the socket or the process serving it is not this user's (or root's)."""
    check_owner(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise Refused(_cannot_connect(path, e)) from None
    # The file may have been swapped since it was checked: the server itself must be ours.
    uid = peer_uid(sock)
    if uid is not None and not trusted(uid):
        sock.close()
        raise _other_user(path, uid, "it is served by")
    return sock


def _cannot_connect(path: str, e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f"no socket at {path} (start the container with --manhole {path})"
    if isinstance(e, ConnectionRefusedError):
        return f"nothing serves {path} (its container has gone)"
    if isinstance(e, PermissionError):
        return f"{path}: permission denied (it belongs to another user)"
    return f"{path}: {e.strerror}"
