"""Logs and ids of C{twistd cc} as a daemon and with C{-l FILE}: real twistd processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.launch import TIMEOUT, TWISTD, clean_env, start_daemon, stop_daemon, wait_until


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """Pids of daemons a test started; each is stopped (and waited for) at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        stop_daemon(pid)


def started_line(log: Path) -> bool:
    return log.exists() and " started: ioncore, hello" in log.read_text()


def test_a_daemon_logs_to_twistd_log_and_its_id_names_its_own_pid(
    tmp_path: Path, daemons: list[int]
) -> None:
    pid = start_daemon(
        tmp_path / "cc.pid", "cc", "--ready-file", "ready", "hello.rel", cwd=tmp_path
    )
    daemons.append(pid)
    log = tmp_path / "twistd.log"
    wait_until(lambda: started_line(log), "ready line in twistd.log", pid)
    ready = json.loads((tmp_path / "ready").read_text())
    assert ready["pid"] == pid and ready["container"].endswith(f"_{pid}")
    assert f"container {ready['container']} started: ioncore, hello" in log.read_text()
    stop_daemon(pid)
    assert "stopped app ioncore" in log.read_text()
    assert not (tmp_path / "cc.pid").exists() and not (tmp_path / "ready").exists()


def test_logfile_in_json_and_rotated_on_sigusr1(tmp_path: Path, daemons: list[int]) -> None:
    log = tmp_path / "logs" / "cc.log"
    log.parent.mkdir()
    pid = start_daemon(
        tmp_path / "cc.pid", "-l", str(log), "cc", "--log-format", "json", "hello.rel", cwd=tmp_path
    )
    daemons.append(pid)
    wait_until(lambda: started_line(log), "ready line in the log file", pid)
    os.kill(pid, signal.SIGUSR1)
    rotated = log.with_name("cc.log.1")
    wait_until(rotated.exists, "rotated cc.log.1", pid)
    stop_daemon(pid)
    before = [json.loads(line) for line in rotated.read_text().splitlines()]
    after = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r["message"].endswith("started: ioncore, hello") for r in before)
    assert any(r["message"] == "stopped app ioncore" for r in after)
    assert not (tmp_path / "twistd.log").exists()


def test_logfile_in_the_foreground_takes_the_log_off_stdout(tmp_path: Path) -> None:
    log = tmp_path / "cc.log"
    proc = subprocess.Popen(
        [*TWISTD, "--pidfile=", "-n", "-l", str(log), "cc", "-n", "hello.rel"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: started_line(log), "ready line in the log file")
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0 and output == ""
    assert "stopped app ioncore" in log.read_text()


def test_a_daemon_cannot_log_to_stdout(tmp_path: Path) -> None:
    done = subprocess.run(
        [*TWISTD, "--pidfile", str(tmp_path / "cc.pid"), "-l", "-", "cc", "hello.rel"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 1 and "Daemons cannot log to stdout" in done.stderr
    assert not (tmp_path / "cc.pid").exists()
