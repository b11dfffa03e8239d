"""A project written by ion-init on the built ion wheel, in a fresh virtualenv outside
the checkout: installed as its README says, it boots, and its tests pass as written."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.core.cc import test_manhole
from tests.launch import REPO
from tests.test_installed import boot, stop, wait_ready
from tests.wheel import PIP_TIMEOUT, Venv, venv_env

short_dir = test_manhole.short_dir  # the fixture: socket paths short enough


def run(venv: Venv, cwd: Path, program: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv.bin(program)), *args],
        cwd=cwd,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )


def test_a_scaffold_on_the_wheel_boots_and_passes_its_tests(
    fresh_venv: Callable[..., Venv], tmp_path: Path, short_dir: Path
) -> None:
    """ion-init (the wheel's console script) writes the project; pip install -e
    '.[test]'; twistd -n cc res/deploy/<name>.rel answers through ion-rpc --attach;
    python -m pytest and python -m twisted.trial tests_trial pass."""
    venv = fresh_venv("scaffold")
    assert REPO not in tmp_path.parents
    written = run(venv, tmp_path, "ion-init", "greeter")
    assert written.returncode == 0, written.stderr
    project = tmp_path / "greeter"
    venv.pip_install("-e", f"{project}[test]")

    sock, ready = short_dir / "cc.sock", short_dir / "ready"
    proc = boot(venv, project, "--manhole", str(sock), "--ready-file", str(ready),
                "res/deploy/greeter.rel")  # fmt: skip
    try:
        assert wait_ready(ready, proc)["apps"] == ["ioncore", "greeter"]
        call = run(venv, tmp_path, "ion-rpc", "--attach", str(sock), "greeter", "greet", '"you"')
        assert call.returncode == 0, call.stderr
        assert json.loads(call.stdout) == {"greeting": "Hello, you", "count": 1}
    finally:
        stop(proc)

    tests = run(venv, project, "python", "-m", "pytest", "-q", "-p", "no:cacheprovider")
    trial = run(venv, project, "python", "-m", "twisted.trial", "tests_trial")
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout
    assert trial.returncode == 0, trial.stdout + trial.stderr
    assert "PASSED (successes=1)" in trial.stdout
