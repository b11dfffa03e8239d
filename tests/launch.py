"""Launch C{twistd -n cc} containers as real OS processes, for tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
_SCRIPT = Path(sys.executable).parent / "twistd"
TWISTD = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]
)
TIMEOUT = 20.0
POLL = 0.02  # another OS process writes the file: look every 20 ms, up to TIMEOUT


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without ION_ variables (they are a config layer), plus C{extra}."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ION_")}
    env.update(extra)
    return env


def cc_command(tag: str, *args: str) -> list[str]:
    return [*TWISTD, "--pidfile=", "-n", "cc", "--container-id", f"t-{tag}-{os.getpid()}", *args]


def launch(
    tag: str, *args: str, cwd: Path = REPO, sigint: Any = signal.SIG_DFL, **env: str
) -> subprocess.Popen[str]:
    """Start C{twistd -n cc} with C{args}; output (stdout and stderr) on C{.stdout}.

    SIGINT starts out as C{sigint} in the container (default: the default
    disposition, even when this suite runs as a shell's background job, whose
    children inherit an ignored SIGINT).
    """
    return subprocess.Popen(
        cc_command(tag, *args),
        cwd=cwd,
        env=clean_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, sigint),
    )


def launch_in_system(
    tag: str, broker: str, sysname: str, ready: Path, *args: str
) -> subprocess.Popen[str]:
    """L{launch} a headless container of C{sysname} on C{broker} writing C{ready}."""
    return launch(
        f"{tag}-{sysname}",
        "-n",
        "--broker",
        broker,
        "-s",
        sysname,
        "--ready-file",
        str(ready),
        *args,
    )


@contextmanager
def running(proc: subprocess.Popen[str], ready: Path) -> Iterator[subprocess.Popen[str]]:
    """C{proc} once its C{ready} file exists; SIGINT at the end if it still runs."""
    try:
        wait_for_file(ready, proc)
        yield proc
    finally:
        if proc.poll() is None:
            interrupt(proc)


def wait_for_file(path: Path, proc: subprocess.Popen[str]) -> None:
    """Return once C{path} exists; fail if C{proc} exits first or after TIMEOUT."""
    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"container exited with {proc.returncode}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {path.name} after {TIMEOUT}s:\n{proc.communicate()[0]}")
        time.sleep(POLL)


def interrupt(proc: subprocess.Popen[str]) -> str:
    """SIGINT the container, wait for it to exit; its output."""
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=TIMEOUT)
    return output


async def await_file(path: Path, proc: subprocess.Popen[str]) -> None:
    """L{wait_for_file} for async tests: polls without blocking the reactor."""
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    deadline = time.monotonic() + TIMEOUT
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"container exited with {proc.returncode}:\n{proc.stdout.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {path.name} after {TIMEOUT}s:\n{proc.communicate()[0]}")
        await deferLater(reactor, POLL, lambda: None)


def start_daemon(
    pidfile: Path, *args: str, cwd: Path, twistd: list[str] = TWISTD, **env: str
) -> int:
    """Run C{twistd --pidfile PIDFILE ARGS} (a daemon unless ARGS say -n) in C{cwd};
    return the daemon's pid once twistd's parent has exited and the pidfile is there."""
    done = subprocess.run(
        [*twistd, "--pidfile", str(pidfile), *args],
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, f"twistd exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return int(pidfile.read_text())


def alive(pid: int) -> bool:
    """Whether process C{pid} runs (a zombie nobody reaped yet does not)."""
    try:
        os.kill(pid, 0)
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (ProcessLookupError, FileNotFoundError):
        return False
    except PermissionError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until(condition: Any, what: str, pid: int | None = None) -> None:
    """Return once C{condition()} holds; fail after TIMEOUT, or if daemon C{pid} died."""
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if pid is not None and not alive(pid):
            pytest.fail(f"daemon {pid} exited before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {what} after {TIMEOUT}s")
        time.sleep(POLL)


def stop_daemon(pid: int, sig: int = signal.SIGTERM) -> None:
    """Signal daemon C{pid} and wait for it to exit; SIGKILL it if it outlives TIMEOUT."""
    if not alive(pid):
        return
    os.kill(pid, sig)
    deadline = time.monotonic() + TIMEOUT
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"daemon {pid} still ran {TIMEOUT}s after signal {sig}")
        time.sleep(POLL)
