"""ion-init / python -m ion init: a new project that boots and whose tests pass as written."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ion.__main__ import main as ion_main
from ion.core.pack.appfile import load_app, load_release
from ion.scripts import ion_init
from tests.core.cc.test_manhole import ION_SHELL, short_dir  # noqa: F401 - the fixture
from tests.launch import TIMEOUT, clean_env, interrupt, launch, wait_for_file

ION_RPC = [sys.executable, "-m", "ion.scripts.ion_rpc"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project written by ion-init into a fresh directory, outside any checkout."""
    directory = tmp_path / "my-greeter"
    assert ion_init.main([str(directory)]) == 0
    return directory


def run(project: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *command],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_generated_files_parse(project: Path) -> None:
    """The package is named after the directory; its .app, .rel, pyproject and
    Python files all load; the README gives the commands to run and test it."""
    app = load_app(project / "res/apps/my_greeter.app")
    release = load_release(project / "res/deploy/my_greeter.rel")
    meta = tomllib.loads((project / "pyproject.toml").read_text())

    assert app.mod[:2] == (
        "ion.core.pack.processapp",
        ("my_greeter", "my_greeter.service", "MyGreeterService"),
    )
    assert [e.name for e in release.apps] == ["ioncore", "my_greeter"]
    assert meta["project"]["dependencies"] == ["ion~=0.1.0"]
    assert meta["project"]["optional-dependencies"]["test"][1].startswith("pytest-twisted")
    for source in project.rglob("*.py"):
        compile(source.read_text(), str(source), "exec")
    readme = (project / "README.txt").read_text()
    assert "twistd -n cc res/deploy/my_greeter.rel" in readme
    assert "python -m pytest && python -m twisted.trial tests_trial" in readme


def test_the_generated_tests_pass_as_written(project: Path) -> None:
    """The project's pytest and trial suites pass, run from its directory."""
    pytest_run = run(project, "-m", "pytest", "-q", "-p", "no:cacheprovider")
    trial_run = run(project, "-m", "twisted.trial", "tests_trial")

    assert pytest_run.returncode == 0, pytest_run.stdout + pytest_run.stderr
    assert "4 passed" in pytest_run.stdout
    assert trial_run.returncode == 0, trial_run.stdout + trial_run.stderr
    assert "PASSED (successes=1)" in trial_run.stdout


def test_the_generated_release_boots_and_answers(project: Path, short_dir: Path) -> None:  # noqa: F811
    """twistd -n cc res/deploy/<name>.rel, run from the project, serves the service."""
    sock, ready = short_dir / "cc.sock", short_dir / "ready"
    proc = launch(
        "init",
        "-n",
        "--manhole",
        str(sock),
        "--ready-file",
        str(ready),
        "res/deploy/my_greeter.rel",
        cwd=project,
        PYTHONPATH=str(project),
    )
    try:
        wait_for_file(ready, proc)
        done = subprocess.run(
            [*ION_RPC, "--attach", str(sock), "my_greeter", "greet", '"you"'],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=clean_env(),
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"greeting": "Hello, you", "count": 1}
        # The README's lines for the container's shell work as written.
        readme = (project / "README.txt").read_text()
        lines = readme.split("In the container's shell:")[1].split("\n\n")[1]
        shell = subprocess.run(
            [*ION_SHELL, str(sock)],
            input="\n".join(line.strip() for line in lines.splitlines()) + "\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=clean_env(),
        )
        assert shell.returncode == 0, shell.stderr
        assert "'Hello, you'" in shell.stdout, shell.stdout
    finally:
        output = interrupt(proc)
    assert proc.returncode == 0, output


def test_nothing_is_written_over(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A directory that holds anything is refused (exit 1), and left as it was."""
    service = project / "my_greeter/service.py"
    service.write_text("# mine\n")

    assert ion_init.main([str(project)]) == 1

    assert "exists and is not an empty directory" in capsys.readouterr().err
    assert service.read_text() == "# mine\n"


@pytest.mark.parametrize(
    ("name", "words"),
    [("2fast", "cannot name"), ("class", "cannot name"), ("My-Thing", "cannot name"),
     ("json", "would hide"), ("ion", "would hide")],
)  # fmt: skip
def test_names_that_cannot_be_a_package_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, words: str
) -> None:
    """--name must be a module name of its own: exit 64, nothing written."""
    assert ion_init.main([str(tmp_path / "p"), "--name", name]) == 64
    assert words in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_python_m_ion_init(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """python -m ion init DIR is ion-init DIR; anything else is a usage error."""
    assert ion_main(["init", str(tmp_path / "hello_two")]) == 0
    assert (tmp_path / "hello_two/hello_two/service.py").exists()
    assert ion_main(["frobnicate"]) == 64
    assert "usage: python -m ion init DIR" in capsys.readouterr().err
