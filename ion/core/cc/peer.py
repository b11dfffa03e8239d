"""Who is at the other end of a UNIX socket, and whether the shell trusts them:
the manhole and ion-shell each check the other (no Twisted here, so ion-shell
starts fast)."""

from __future__ import annotations

import os
import socket
import struct


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
