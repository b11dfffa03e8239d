"""The shell of a running container on a UNIX socket, for C{ion-shell PATH} to attach to.

    twistd -n cc -n --manhole ./cc.sock res/deploy/hello.rel   # headless
    ion-shell ./cc.sock                                        # attach; Ctrl-D detaches

The original served an unauthenticated telnet manhole on every interface.
This one listens on no TCP port: the socket file is created with mode 0600
(under a umask, then checked), so only its owner (and root) can connect, and
a peer whose uid is neither is turned away when the platform reports it. Its
directory must be one nobody else can replace the file in: owned by this
user or root, and not writable by group or others unless sticky (as /tmp
is). A live server already answering on the path is never displaced (the
container refuses to start); a stale socket file left by a dead one is
replaced; any other file there is left alone and refused. At stop the file is
removed only if it is still the one this server made. Each connection gets a
fresh copy of the same namespace; leaving it does not stop the container.
A connection that begins with L{ion.core.cc.attach.HELLO} makes one call
instead (C{ion-rpc --attach ./cc.sock SERVICE OP [CONTENT]}).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from typing import Any

from twisted.application.service import Service
from twisted.internet import tcp, unix
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from ion.core.cc import attach
from ion.core.cc.peer import peer_uid, trusted
from ion.core.cc.shell import ShellProtocol, Terminal, banner
from ion.core.cc.shell_api import ShellApi, namespace
from ion.core.exception import StartupError

log = Logger()

MODE = 0o600
_MAX_PATH = 100  # sun_path is 104-108 bytes, depending on the platform


class ManholeError(StartupError):
    """The manhole socket cannot be served on the path given."""


def check_directory(path: str) -> None:
    """Refuse a socket path whose directory another user could replace the socket in:
    one owned by someone else (not root), or writable by group or others without
    the sticky bit.

    @raise ManholeError: naming the path and the directory.
    """
    parent = os.path.dirname(os.path.abspath(path))
    try:
        st = os.stat(parent)
    except OSError as e:
        raise ManholeError(f"--manhole {path}: directory {parent}: {e.strerror}") from None
    if st.st_uid not in (os.geteuid(), 0):
        raise ManholeError(
            f"--manhole {path}: directory {parent} belongs to uid {st.st_uid}, who could "
            "replace the socket; use a directory of your own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH) and not mode & stat.S_ISVTX:
        raise ManholeError(
            f"--manhole {path}: directory {parent} (mode {mode:04o}) is writable by others "
            "and not sticky, so they could replace the socket; use a directory only you "
            "can write to"
        )


def check_path(path: str) -> None:
    """Make C{path} free for a new socket: refuse an unsafe directory, a live server
    or a non-socket file; remove a stale socket.

    @raise ManholeError: saying which.
    """
    if len(os.fsencode(path)) > _MAX_PATH:
        raise ManholeError(f"--manhole {path}: path too long for a UNIX socket (max {_MAX_PATH})")
    check_directory(path)
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
            raise ManholeError(
                f"--manhole {path}: cannot check the socket (uid {st.st_uid}'s): {e.strerror}"
            ) from None
    else:
        raise ManholeError(f"--manhole {path}: another container is already serving a shell there")
    finally:
        probe.close()
    log.info("removing stale manhole socket {path}", path=path)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ManholeError(
            f"--manhole {path}: a stale socket of uid {st.st_uid} is there and cannot be "
            f"removed: {e.strerror}"
        ) from None


def _identity(path: str) -> tuple[int, int] | None:
    """The (device, inode) of the file at C{path}, or None if there is none."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


class _Port(unix.Port):
    """A UNIX port that, at close, removes its socket file only if it is still the one
    it bound (Twisted's removes whatever is at the path)."""

    bound: tuple[int, int] | None = None

    def startListening(self) -> None:
        super().startListening()
        self.bound = _identity(self._bindPath)

    def connectionLost(self, reason: Any) -> None:
        path = os.fsdecode(self._bindPath)
        if self.bound is not None and _identity(path) == self.bound:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        elif self.bound is not None:
            log.warn("manhole: {path} is no longer this container's socket; left alone", path=path)
        tcp.Port.connectionLost(self, reason)  # unix.Port's would unlink the path regardless


class _Session(Terminal):
    """One attached terminal; turns away a peer that is not this user (or root).

    A peer whose first bytes are L{attach.HELLO} makes one call instead
    (C{ion-rpc --attach}): its bytes go to an L{attach.AttachedCall}, not the shell.
    """

    _sniffed: bytes | None = None  # the first bytes, while they may be the HELLO
    _call: attach.AttachedCall | None = None
    api: ShellApi | None = None  # set by the factory

    def connectionMade(self) -> None:
        sock = getattr(self.transport, "socket", None)
        uid = peer_uid(sock) if sock is not None else None
        if uid is not None and not trusted(uid):
            log.warn("manhole: refused a connection from uid {uid}", uid=uid)
            self.transport.loseConnection()
            return
        self._sniffed = b""
        super().connectionMade()

    def dataReceived(self, data: bytes) -> None:
        if self._call is not None:
            self._call.feed(data)
            return
        if self._sniffed is not None:
            data, self._sniffed = self._sniffed + data, None
            if data.startswith(attach.HELLO) and self.api is not None:
                self._call = attach.AttachedCall(self.api, self.transport)
                self._call.feed(data[len(attach.HELLO) :])
                return
            if attach.HELLO.startswith(data):
                self._sniffed = data  # a part of it, so far
                return
        super().dataReceived(data)


class _SessionFactory(Factory):
    noisy = False

    def __init__(self, api: ShellApi, history: str | None) -> None:
        self.api = api
        self.history = history

    def buildProtocol(self, addr: Any) -> _Session:
        text = banner(self.api.container, "detaches (the container keeps running)")
        proto = _Session(ShellProtocol, namespace(self.api), self.history, text, None)
        proto.factory = self
        proto.api = self.api
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
            port = _Port(
                self.path, _SessionFactory(self.api, self.history), mode=MODE, reactor=reactor
            )
            port.startListening()
            self.port = port
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
        return port.stopListening()  # which removes the socket file, if still ours
