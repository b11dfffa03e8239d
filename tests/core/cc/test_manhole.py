"""Remote attach: the shell on a UNIX socket (mode 0600), and ion-shell attaching to it."""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
import pytest_twisted

from ion.core.cc import manhole
from ion.core.cc.container import Container
from ion.core.cc.manhole import ManholeError, ManholeServer
from ion.core.cc.shell_api import ShellApi
from ion.scripts import ion_shell
from tests.launch import REPO, TIMEOUT, clean_env, interrupt, launch, wait_for_file

_SCRIPT = Path(sys.executable).parent / "ion-shell"
ION_SHELL = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ion.scripts.ion_shell"]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose paths fit in a UNIX socket address (pytest's tmp_path may not)."""
    path = Path(tempfile.mkdtemp(prefix="ion-mh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def serve(container: Container, path: Path) -> ManholeServer:
    server = ManholeServer(str(path), ShellApi(container))
    server.startService()
    return server


def is_socket(path: Path) -> bool:
    return path.exists() and stat.S_ISSOCK(os.lstat(path).st_mode)


def bind_socket(path: Path) -> socket.socket:
    """A listening socket at C{path}, as another process would make one."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    sock.listen(1)
    return sock


def make_foreign(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make C{path} another user's: given to nobody as root; otherwise this process
    pretends to be a uid that is neither its owner nor root."""
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
    else:
        other = os.geteuid() + 1
        monkeypatch.setattr(os, "geteuid", lambda: other)


@pytest_twisted.ensureDeferred
async def test_socket_is_mode_0600_and_removed_on_stop(
    container: Container, short_dir: Path
) -> None:
    """The manhole socket is created with mode 0600 and is gone once the server stops."""
    path = short_dir / "cc.sock"
    server = serve(container, path)
    assert is_socket(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    await server.stopService()
    assert not path.exists()


@pytest_twisted.ensureDeferred
async def test_a_live_socket_is_never_taken_over(container: Container, short_dir: Path) -> None:
    """A second server on the path of a live one refuses, and the first keeps serving."""
    path = short_dir / "cc.sock"
    first = serve(container, path)
    try:
        with pytest.raises(ManholeError, match="another container is already serving a shell"):
            serve(container, path)
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(str(path))  # still answers
        probe.close()
    finally:
        await first.stopService()


@pytest_twisted.ensureDeferred
async def test_stale_socket_is_replaced(container: Container, short_dir: Path) -> None:
    """A socket file nobody listens on (left by a dead container) is replaced."""
    path = short_dir / "cc.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    server = serve(container, path)
    try:
        probe = socket.socket(socket.AF_UNIX)
        probe.connect(str(path))
        probe.close()
    finally:
        await server.stopService()


@pytest_twisted.ensureDeferred
async def test_other_files_and_long_paths_are_refused(
    container: Container, short_dir: Path
) -> None:
    """A path holding a regular file is refused and the file left alone; so is a path too
    long for a socket."""
    path = short_dir / "notes.txt"
    path.write_text("mine")
    with pytest.raises(ManholeError, match="is not a socket"):
        serve(container, path)
    assert path.read_text() == "mine"
    with pytest.raises(ManholeError, match="too long"):
        serve(container, short_dir / ("x" * 120))


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702], ids=oct)
def test_a_directory_others_can_write_is_refused(
    container: Container, short_dir: Path, mode: int
) -> None:
    """A directory where others could rename the socket and put their own in its place
    (writable by group or others, not sticky) is refused, naming the path."""
    short_dir.chmod(mode)
    path = short_dir / "cc.sock"
    with pytest.raises(
        ManholeError, match=rf"--manhole {re.escape(str(path))}: directory .* is writable"
    ):
        serve(container, path)
    assert not path.exists()


@pytest_twisted.ensureDeferred
async def test_a_sticky_or_private_directory_is_accepted(
    container: Container, short_dir: Path
) -> None:
    """A sticky directory anyone can write to (as /tmp) is fine, and so is a private one."""
    for mode in (0o1777, 0o700):
        short_dir.chmod(mode)
        server = serve(container, short_dir / "cc.sock")
        await server.stopService()


def test_a_directory_of_another_user_is_refused(
    container: Container, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory owned by another user (not root), who could replace the socket, is refused."""
    short_dir.chmod(0o755)
    make_foreign(short_dir, monkeypatch)
    path = short_dir / "cc.sock"
    with pytest.raises(
        ManholeError, match=rf"--manhole {re.escape(str(path))}: directory .* belongs to"
    ):
        serve(container, path)


@pytest_twisted.ensureDeferred
async def test_stop_leaves_a_socket_that_replaced_ours(
    container: Container, short_dir: Path
) -> None:
    """A socket put in place of ours (ours renamed away) is not removed at stop; nor is a
    missing one an error."""
    path, moved = short_dir / "cc.sock", short_dir / "moved.sock"
    server = serve(container, path)
    os.rename(path, moved)
    impostor = bind_socket(path)
    planted = os.stat(path).st_ino
    try:
        await server.stopService()
        assert is_socket(path) and os.stat(path).st_ino == planted
    finally:
        impostor.close()
    os.unlink(path)
    server = serve(container, path)
    os.rename(path, moved)
    await server.stopService()
    assert not path.exists()


def test_a_stale_socket_that_cannot_be_removed_is_a_clear_error(
    container: Container, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stale socket this user may not remove (another user's, in a sticky directory) is
    refused with an error naming the path, not a raw PermissionError."""
    path = short_dir / "cc.sock"
    bind_socket(path).close()

    def unlink(target: object) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(target))

    with monkeypatch.context() as patch:
        patch.setattr(manhole.os, "unlink", unlink)
        with pytest.raises(
            ManholeError,
            match=rf"--manhole {re.escape(str(path))}: a stale socket .* cannot be removed",
        ):
            serve(container, path)
    assert is_socket(path)


def test_ion_shell_refuses_a_socket_of_another_user(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ion-shell does not attach to a socket that belongs to another user (one who could
    have put it in place of the container's), and says so."""
    path = short_dir / "cc.sock"
    listener = bind_socket(path)
    try:
        make_foreign(path, monkeypatch)
        with pytest.raises(SystemExit) as exit_:
            ion_shell.main([str(path)])
        assert isinstance(exit_.value.code, str)  # printed, exit status 1
        assert f"{path}: the socket belongs to uid" in exit_.value.code
        assert "not attaching" in exit_.value.code
        listener.settimeout(0)
        with pytest.raises(BlockingIOError):
            listener.accept()  # it never connected
    finally:
        listener.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to serve a socket as another user")
def test_ion_shell_refuses_a_server_of_another_user(short_dir: Path) -> None:
    """ion-shell checks who serves the socket too, not only whose file it is (which may
    change between the check and the connect)."""
    path = short_dir / "cc.sock"
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # bound as root, so the file is root's; listening as nobody
        try:
            os.close(ready_r)
            os.close(done_w)
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(str(path))
            os.setgid(65534)
            os.setuid(65534)
            sock.listen(1)
            os.write(ready_w, b"x")
            os.read(done_r, 1)  # until the parent is done
        finally:
            os._exit(0)
    os.close(ready_w)  # so a child that dies early reads as end of file
    os.close(done_r)
    try:
        assert os.read(ready_r, 1) == b"x", "the child did not get to listen"
        with pytest.raises(SystemExit) as exit_:
            ion_shell.connect(str(path))
        assert f"{path}: it is served by uid 65534" in str(exit_.value.code)
    finally:
        os.close(done_w)  # the child's read returns: it exits
        os.waitpid(pid, 0)
        os.close(ready_r)


def test_a_shared_directory_stops_twistd_at_startup(short_dir: Path) -> None:
    """twistd with --manhole in a directory others can write to exits 1 at startup,
    naming the path."""
    short_dir.chmod(0o777)
    path = short_dir / "cc.sock"
    proc = launch("mhd", "-n", "--manhole", str(path), "res/deploy/hello.rel")
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            output = interrupt(proc)
    assert proc.returncode == 1, output
    assert f"--manhole {path}: directory {short_dir} (mode 0777) is writable by others" in output
    assert "Traceback" not in output and not path.exists()


def test_attach_run_ps_and_detach(short_dir: Path) -> None:
    """ion-shell attaches to a headless container's --manhole, runs ps(), and Ctrl-D detaches
    with exit 0 while the container keeps running; a second container refuses the live path."""
    path, ready = short_dir / "cc.sock", short_dir / "ready"
    proc = launch(
        "mh", "-n", "--manhole", str(path), "--ready-file", str(ready), "res/deploy/hello.rel"
    )
    try:
        wait_for_file(ready, proc)
        assert is_socket(path) and stat.S_IMODE(os.stat(path).st_mode) == 0o600
        client = pexpect.spawn(
            ION_SHELL[0],
            [*ION_SHELL[1:], str(path)],
            env=clean_env(HOME=str(short_dir)),
            timeout=TIMEOUT,
            encoding="utf-8",
        )
        client.expect(r"cc shell: container t-mh-\d+")
        client.expect_exact("><> ")
        client.send("ps()\r")
        client.expect(r"2\s+hello\s+hello\.2@t-mh-\d+\s+ACTIVE")
        client.expect_exact("><> ")
        client.send("\x04")
        client.expect(pexpect.EOF)
        client.close()
        assert client.exitstatus == 0 and proc.poll() is None

        second = launch("mh2", "-n", "--manhole", str(path), "res/deploy/hello.rel")
        output, _ = second.communicate(timeout=TIMEOUT)
        assert second.returncode == 1
        assert "another container is already serving a shell there" in output
        assert is_socket(path) and proc.poll() is None
    finally:
        output = interrupt(proc)
    assert proc.returncode == 0, output
    assert not path.exists()


def test_piped_input_runs_lines_and_leaves(short_dir: Path) -> None:
    """Lines piped into ion-shell run in the container's shell, and end of input detaches."""
    path, ready = short_dir / "cc.sock", short_dir / "ready"
    proc = launch(
        "mhp", "-n", "--manhole", str(path), "--ready-file", str(ready), "res/deploy/hello.rel"
    )
    try:
        wait_for_file(ready, proc)
        done = subprocess.run(
            [*ION_SHELL, str(path)],
            input="rpc_send('hello', 'hello', 'pipe')\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stderr
        assert "{'value': 'Hello there, pipe'}" in done.stdout
    finally:
        interrupt(proc)


def test_ion_shell_without_a_server_says_so(short_dir: Path) -> None:
    """ion-shell on a path where no container serves exits 1 and says what to do."""
    done = subprocess.run(
        [*ION_SHELL, str(short_dir / "none.sock")], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 1
    assert "no socket at" in done.stderr and "--manhole" in done.stderr
