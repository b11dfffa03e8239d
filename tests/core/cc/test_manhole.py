"""Remote attach: the shell on a UNIX socket (mode 0600), and ion-shell attaching to it."""

from __future__ import annotations

import os
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

from ion.core.cc.container import Container
from ion.core.cc.manhole import ManholeError, ManholeServer
from ion.core.cc.shell_api import ShellApi
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
        client.expect(r"1\s+hello\s+hello\.1@t-mh-\d+\s+ACTIVE")
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
