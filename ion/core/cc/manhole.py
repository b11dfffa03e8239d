"""The shell of a running container on a UNIX socket, for C{ion-shell PATH} to attach to.

    twistd -n cc -n --manhole ./cc.sock res/deploy/hello.rel   # headless
    ion-shell ./cc.sock                                        # attach; Ctrl-D detaches

The original served an unauthenticated telnet manhole on every interface.
This one listens on no TCP port: the socket file is created with mode 0600
(under a umask, then checked), so only its owner (and root) can connect, and
a peer whose uid is neither is turned away when the platform reports it. A
live server already answering on the path is never displaced (the container
refuses to start); a stale socket file left by a dead one is replaced; any
other file there is left alone and refused. Each connection gets a fresh
copy of the same namespace; leaving it does not stop the container.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import struct
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from ion.core.cc.shell import ShellProtocol, Terminal, banner
from ion.core.cc.shell_api import ShellApi, namespace
from ion.core.exception import StartupError

log = Logger()

MODE = 0o600
_MAX_PATH = 100  # sun_path is 104-108 bytes, depending on the platform


class ManholeError(StartupError):
    """The manhole socket cannot be served on the path given."""


def check_path(path: str) -> None:
    """Make C{path} free for a new socket: refuse a live server or a non-socket
    file, remove a stale socket.

    @raise ManholeError: saying which.
    """
    if len(os.fsencode(path)) > _MAX_PATH:
        raise ManholeError(f"--manhole {path}: path too long for a UNIX socket (max {_MAX_PATH})")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ManholeError(f"--manhole {path}: exists and is not a socket; not touching it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(2.0)
    try:
        probe.connect(path)
    except OSError as e:
        if e.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise ManholeError(f"--manhole {path}: cannot check the socket: {e.strerror}") from None
    else:
        raise ManholeError(f"--manhole {path}: another container is already serving a shell there")
    finally:
        probe.close()
    log.info("removing stale manhole socket {path}", path=path)
    os.unlink(path)


def peer_uid(transport: Any) -> int | None:
    """The uid of the process at the other end of a UNIX socket, where the OS tells."""
    sock = getattr(transport, "socket", None)
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return None
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return uid


class _Session(Terminal):
    """One attached terminal; turns away a peer that is not this user (or root)."""

    def connectionMade(self) -> None:
        uid = peer_uid(self.transport)
        if uid is not None and uid not in (os.getuid(), 0):
            log.warn("manhole: refused a connection from uid {uid}", uid=uid)
            self.transport.loseConnection()
            return
        super().connectionMade()


class _SessionFactory(Factory):
    noisy = False

    def __init__(self, api: ShellApi, history: str | None) -> None:
        self.api = api
        self.history = history

    def buildProtocol(self, addr: Any) -> _Session:
        text = banner(self.api.container, "detaches (the container keeps running)")
        proto = _Session(ShellProtocol, namespace(self.api), self.history, text, None)
        proto.factory = self
        return proto


class ManholeServer(Service):
    """Serves the shell of C{api}'s container on the UNIX socket C{path} while running."""

    name = "manhole"

    def __init__(self, path: str, api: ShellApi, history: str | None = None) -> None:
        self.path = os.path.abspath(path)
        self.api = api
        self.history = history
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        reactor = self.api.container.reactor
        check_path(self.path)
        old = os.umask(0o177)  # the socket is born 0600: no window where others may connect
        try:
            self.port = reactor.listenUNIX(
                self.path, _SessionFactory(self.api, self.history), mode=MODE
            )
        except Exception as e:
            raise ManholeError(f"--manhole {self.path}: cannot listen: {e}") from e
        finally:
            os.umask(old)
        os.chmod(self.path, MODE)
        mode = stat.S_IMODE(os.stat(self.path).st_mode)
        if mode != MODE:
            self._close()
            raise ManholeError(f"--manhole {self.path}: mode is {mode:o}, not {MODE:o}")
        log.info("shell served on {path} (attach with: ion-shell {path})", path=self.path)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        return self._close()

    def _close(self) -> Deferred[None] | None:
        port, self.port = self.port, None
        if port is None:
            return None
        return port.stopListening()  # which removes the socket file
