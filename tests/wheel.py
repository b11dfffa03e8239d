"""ion as its users get it: the wheel built from this checkout, installed into a
fresh virtualenv outside it.

Fixtures (registered in tests/conftest.py):

    built_wheel   the path of ion's wheel, built once per session
    fresh_venv    fresh_venv(name="venv") -> Venv: a new virtualenv (no system
                  site-packages) under the session's temporary directory, with
                  the wheel pip-installed; dependencies come from the package
                  index pip is configured with
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.launch import REPO

PIP_TIMEOUT = 600.0  # a cold pip cache downloads Twisted and the rest


def _run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command],
        cwd=cwd,
        env=venv_env(),
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


def venv_env(**extra: str) -> dict[str, str]:
    """This environment without what ties a process to the checkout or its .venv
    (PYTHONPATH, VIRTUAL_ENV, ION_ variables), plus C{extra}."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ION_")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(REPO))
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Venv:
    """A virtualenv: its directory and its scripts."""

    path: Path

    def bin(self, name: str) -> Path:
        """The script or executable C{name} in the virtualenv (C{python}, C{twistd}, ...)."""
        return self.path / "bin" / name

    def pip_install(self, *requirements: str | Path) -> str:
        return _run(self.bin("python"), "-m", "pip", "install", "-q", *requirements)


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ion's wheel, built from this checkout once per session (C{pip wheel --no-deps})."""
    out = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, REPO, cwd=out)
    (wheel,) = out.glob("ion-*.whl")
    return wheel


@pytest.fixture(scope="session")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, built_wheel: Path) -> Callable[..., Venv]:
    """C{fresh_venv(name="venv")}: a new virtualenv outside the checkout with ion's
    wheel installed; one per name per session (asking again returns the same)."""
    made: dict[str, Venv] = {}

    def make(name: str = "venv") -> Venv:
        if name not in made:
            path = tmp_path_factory.mktemp(name) / "venv"
            venv.create(path, with_pip=True, system_site_packages=False)
            env = Venv(path)
            env.pip_install(built_wheel)
            made[name] = env
        return made[name]

    return make
