"""ion installed from its wheel into a fresh virtualenv, run outside the checkout."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.launch import REPO, TIMEOUT, start_daemon, stop_daemon, wait_until
from tests.rabbit import URL, require_rabbitmq
from tests.wheel import Venv, venv_env


@pytest.fixture
def installed(fresh_venv: Callable[..., Venv]) -> Venv:
    return fresh_venv("installed")


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    """An empty working directory outside the checkout."""
    path = tmp_path / "empty"
    path.mkdir()
    assert REPO not in path.parents
    return path


def boot(venv: Venv, cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(venv.bin("twistd")), "--pidfile=", "-n", "cc", "-n", *args],
        cwd=cwd,
        env=venv_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # SIGINT as a user's terminal gives it, even when this suite runs as a
        # shell's background job (whose children inherit it ignored, and keep it so).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_ready(ready: Path, proc: subprocess.Popen[str]) -> dict[str, object]:
    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"container exited with {proc.returncode}:\n{proc.stdout.read()}")
        return ready.exists()

    try:
        wait_until(up, "ready file")
    except BaseException:
        proc.kill()
        raise
    return json.loads(ready.read_text())


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, output
    return output


def test_the_wheel_carries_ions_apps_releases_config_and_plugin(built_wheel: Path) -> None:
    names = set(zipfile.ZipFile(built_wheel).namelist())
    assert {
        "ion/res/apps/ioncore.app",
        "ion/res/apps/hello.app",
        "ion/res/deploy/hello.rel",
        "ion/res/deploy/demo.rel",
        "ion/res/config/ion.yml",
        "twisted/plugins/cc_plugin.py",
    } <= names
    assert not any("ionlocal" in name or name.startswith("tests/") for name in names)


def test_installed_ion_is_the_wheels(installed: Venv, empty: Path) -> None:
    where = subprocess.run(
        [str(installed.bin("python")), "-c", "import ion; print(ion.__file__)"],
        cwd=empty,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(installed.path) and not Path(where).is_relative_to(REPO)


def test_installed_ion_admin_refuses_bad_input_naming_the_field(
    installed: Venv, empty: Path
) -> None:
    """The ion-admin console script is installed and answers bad input with a usage error."""
    done = subprocess.run(
        [str(installed.bin("ion-admin")), "setup", "lab", "--container", "a.b"],
        cwd=empty,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 64 and "--container 'a.b'" in done.stderr


def test_installed_ion_boots_its_hello_release_from_an_empty_directory(
    installed: Venv, empty: Path
) -> None:
    proc = boot(installed, empty, "--ready-file", "ready", "hello.rel")
    assert wait_ready(empty / "ready", proc)["apps"] == ["ioncore", "hello"]
    output = stop(proc)
    assert "started app hello 0.1" in output and "CRITICAL" not in output
    assert sorted(p.name for p in empty.iterdir()) == []


def test_installed_ion_serves_the_web_view_with_its_own_assets(
    installed: Venv, empty: Path
) -> None:
    proc = boot(installed, empty, "--web", "127.0.0.1:0", "--ready-file", "ready", "hello.rel")
    url = str(wait_ready(empty / "ready", proc)["web"])
    assert url.startswith("http://127.0.0.1:")
    for path, kind in (("", "text/html"), ("static/observer.js", "text/javascript"),
                       ("static/observer.css", "text/css"), ("api/system", "application/json")):  # fmt: skip
        with urllib.request.urlopen(url + path, timeout=TIMEOUT) as reply:
            assert reply.status == 200 and reply.headers["content-type"].startswith(kind), path
            assert reply.headers["content-security-policy"] == "default-src 'self'"
    output = stop(proc)
    assert "observer web view at " + url in output and "CRITICAL" not in output


def test_installed_ion_runs_as_a_daemon_logging_to_its_file(installed: Venv, empty: Path) -> None:
    log, pidfile = empty / "cc.log", empty / "cc.pid"
    twistd = [str(installed.bin("twistd"))]
    pid = start_daemon(pidfile, "-l", str(log), "cc", "hello.rel", cwd=empty, twistd=twistd)
    try:
        wait_until(
            lambda: log.exists() and f"_{pid} started: ioncore, hello" in log.read_text(),
            "ready line in the daemon's log",
            pid,
        )
    finally:
        stop_daemon(pid)
    assert not pidfile.exists()


@pytest.fixture
def sysname() -> Iterator[str]:
    from tests.scripts.test_ion_rpc import delete_system

    require_rabbitmq()
    name = f"t-wheel-{uuid.uuid4().hex[:8]}"
    yield name
    delete_system(name)


@pytest.mark.rabbitmq
def test_installed_ion_answers_ion_rpc_on_rabbitmq(
    installed: Venv, empty: Path, sysname: str
) -> None:
    proc = boot(
        installed, empty, "--broker", URL, "-s", sysname, "--ready-file", "ready", "hello.rel"
    )
    try:
        wait_ready(empty / "ready", proc)
        done = subprocess.run(
            [
                str(installed.bin("ion-rpc")),
                "--broker",
                URL,
                "-s",
                sysname,
                "hello",
                "hello",
                '"you"',
            ],
            cwd=empty,
            env=venv_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    finally:
        output = stop(proc)
    assert done.returncode == 0, done.stderr + output
    assert json.loads(done.stdout) == {"value": "Hello there, you"}
