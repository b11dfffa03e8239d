"""ion-rpc --attach: one call through a container's manhole socket, on any broker."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from ion.core.cc import attach, manhole
from ion.core.cc.container import Container
from ion.scripts import ion_rpc
from tests.core.cc import test_manhole
from tests.core.cc.test_manhole import bind_socket, make_foreign, serve
from tests.launch import REPO, TIMEOUT, clean_env, interrupt, launch, wait_for_file

_SCRIPT = Path(sys.executable).parent / "ion-rpc"
short_dir = test_manhole.short_dir  # the fixture: socket paths short enough
ION_RPC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ion.scripts.ion_rpc"]


def in_thread(function: Any, *args: Any) -> Deferred[Any]:
    """C{function(*args)} in a thread of its own (a blocking client), as a Deferred."""
    d: Deferred[Any] = Deferred()

    def run() -> None:
        try:
            result = function(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            reactor.callFromThread(d.errback, e)
        else:
            reactor.callFromThread(d.callback, result)

    threading.Thread(target=run, daemon=True).start()
    return d


def rpc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*ION_RPC, *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
        env=clean_env(),
    )


def test_ion_rpc_attach_calls_a_container_on_the_embedded_broker(short_dir: Path) -> None:
    """A headless twistd container on the embedded broker, with --manhole, is called
    by ion-rpc --attach: a reply (exit 0), an error reply (1), no such service (2);
    the container keeps running and its shell still attaches."""
    path, ready = short_dir / "cc.sock", short_dir / "ready"
    proc = launch(
        "att", "-n", "--manhole", str(path), "--ready-file", str(ready), "res/deploy/hello.rel"
    )
    try:
        wait_for_file(ready, proc)

        ok = rpc("--attach", str(path), "hello", "hello", '"you"')
        bad = rpc("--attach", str(path), "hello", "hello", "42")
        none = rpc("--attach", str(path), "--timeout", "3", "nosuch", "op")

        assert (ok.returncode, json.loads(ok.stdout)) == (0, {"value": "Hello there, you"})
        assert bad.returncode == 1 and bad.stdout == ""
        assert "hello.hello failed: [400] BadRequest: hello takes a string, not int" in bad.stderr
        assert none.returncode == 2
        assert "no service or process 'nosuch' in system" in none.stderr
        assert proc.poll() is None
        shell = subprocess.run(
            [sys.executable, "-m", "ion.scripts.ion_shell", str(path)],
            input="rpc_send('hello', 'hello', 'shell')\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=REPO,
        )
        assert "{'value': 'Hello there, shell'}" in shell.stdout
    finally:
        output = interrupt(proc)
    assert proc.returncode == 0, output


def test_attach_refuses_a_socket_of_another_user(
    short_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ion-rpc --attach does not connect to a socket that belongs to another user: exit 2."""
    path = short_dir / "cc.sock"
    listener = bind_socket(path)
    try:
        make_foreign(path, monkeypatch)
        status = ion_rpc.main(["--attach", str(path), "hello", "hello", '"x"'])
        assert status == 2
        err = capsys.readouterr().err
        assert f"{path}: the socket belongs to uid" in err and "not attaching" in err
        listener.settimeout(0)
        with pytest.raises(BlockingIOError):
            listener.accept()  # it never connected
    finally:
        listener.close()


async def test_the_container_refuses_a_caller_of_another_user(
    container: Container, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manhole turns away an attached call from a uid that is neither its own nor
    root, as it does a shell: the call is never made."""
    await container.start_rel(REPO / "res/deploy/hello.rel")
    server = serve(container, short_dir / "cc.sock")
    monkeypatch.setattr(manhole, "trusted", lambda uid: False)
    try:
        with pytest.raises(attach.AttachError, match="closed the connection without answering"):
            await in_thread(attach.call, str(short_dir / "cc.sock"), "hello", "hello", "x", 5.0)
        assert container.proc_manager.find("shell") is None  # nothing called from the shell
    finally:
        await server.stopService()


async def test_attached_call_in_process_and_a_malformed_request(
    container: Container, short_dir: Path
) -> None:
    """attach.call gets the reply from the container's shell process; a request frame
    that is not one is answered with status 64, and the container goes on."""
    await container.start_rel(REPO / "res/deploy/hello.rel")
    path = str(short_dir / "cc.sock")
    server = serve(container, short_dir / "cc.sock")
    try:
        status, reply = await in_thread(attach.call, path, "hello", "hello", "me", 5.0)
        assert (status, reply) == (0, {"value": "Hello there, me"})

        status, error = await in_thread(attach.call, path, "hello", "hello", "me", -1)
        assert status == 64 and "timeout must be a number of seconds > 0" in error
        status, reply = await in_thread(attach.call, path, "hello", "hello", "again", 5.0)
        assert status == 0
    finally:
        await server.stopService()


def test_frames_round_trip_and_refuse_what_is_too_large() -> None:
    """A frame holds any message value (bytes stay bytes); a length over the limit is refused."""
    value = {"content": [b"\x00\xff", 1, None, {"k": "v"}]}
    data = attach.frame(value) + b"rest"
    assert attach.unframe(data) == (value, b"rest")
    assert attach.unframe(data[:3]) is None and attach.unframe(data[:-5]) is None
    with pytest.raises(ValueError, match="larger than"):
        attach.unframe((attach.MAX_FRAME + 1).to_bytes(4, "big"))
