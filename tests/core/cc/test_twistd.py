"""C{twistd -n cc} as a user runs it: real subprocesses, ready files, exit codes, logs."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import closed_port
from tests.launch import REPO, TIMEOUT, cc_command, clean_env, interrupt, launch, wait_for_file


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR: " in line or " CRITICAL: " in line]


def test_release_starts_writes_ready_file_and_stops_on_sigint(tmp_path: Path) -> None:
    """hello.rel starts, the ready file appears, and SIGINT stops it cleanly with exit 0."""
    ready = tmp_path / "ready"
    proc = launch("hello", "--ready-file", str(ready), "res/deploy/hello.rel")
    wait_for_file(ready, proc)
    info = json.loads(ready.read_text())
    assert info["apps"] == ["ioncore", "hello"] and info["pid"] == proc.pid
    output = interrupt(proc)
    assert proc.returncode == 0, output
    assert "started app hello 0.1" in output
    assert "terminated process hello.1@" in output
    assert output.index("stopped app hello") < output.index("stopped app ioncore")
    assert not ready.exists()  # a stale ready file would fool the next launcher
    assert problem_lines(output) == []


def test_a_bare_release_name_boots_ions_own_release_from_any_directory(tmp_path: Path) -> None:
    """From a directory with no res/: ioncore.app, hello.rel and ion.yml come from the package."""
    ready = tmp_path / "ready"
    proc = launch("bare", "--ready-file", str(ready), "hello.rel", cwd=tmp_path)
    wait_for_file(ready, proc)
    assert json.loads(ready.read_text())["apps"] == ["ioncore", "hello"]
    output = interrupt(proc)
    assert proc.returncode == 0, output
    assert problem_lines(output) == []


def test_sigterm_and_a_second_signal_stop_it_cleanly_with_exit_0(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    proc = launch("term", "--ready-file", str(ready), "res/deploy/hello.rel")
    wait_for_file(ready, proc)
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)  # while stopping: no harm, no second stop
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, output
    assert "SIGTERM: stopping" in output
    assert "terminated process hello.1@" in output
    assert "Traceback" not in output and problem_lines(output) == []


def test_sigint_ignored_at_launch_stays_ignored(tmp_path: Path) -> None:
    """A container launched with SIGINT ignored (a shell's background job) keeps
    running through SIGINT; SIGTERM still stops it."""
    ready = tmp_path / "ready"
    proc = launch("bg", "--ready-file", str(ready), "res/deploy/hello.rel", sigint=signal.SIG_IGN)
    wait_for_file(ready, proc)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)  # signals arrive in order: SIGINT was seen first
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, output
    assert "SIGINT" not in output and "SIGTERM: stopping" in output


def read_until(proc: subprocess.Popen[str], text: str) -> str:
    """The container's output up to a line holding C{text} (fail after TIMEOUT)."""
    import os
    import select
    import time

    out, fd, deadline = "", proc.stdout.fileno(), time.monotonic() + TIMEOUT  # type: ignore[union-attr]
    while text not in out:
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail(f"no {text!r} in the output:\n{out}")
        if select.select([fd], [], [], 0.2)[0]:
            out += os.read(fd, 65536).decode()
    return out


def test_sigterm_while_booting_stops_it_with_exit_0() -> None:
    """Asked to stop while it waits to retry the broker, a container stops: exit
    0, no error, where it would otherwise have gone on retrying for minutes."""
    proc = launch(
        "bootterm",
        "-n",
        "--broker",
        f"amqp://127.0.0.1:{closed_port()}/",
        "-a",
        "broker.connect_attempts=5,broker.retry_delay=30",
    )
    out = read_until(proc, "broker unreachable (attempt 1 of 5)")
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=TIMEOUT)
    output = out + rest
    assert proc.returncode == 0, output
    assert "stopped while booting" in output
    assert problem_lines(output) == []


def test_ready_file_waits_for_every_start(tmp_path: Path) -> None:
    """The ready file is written only after the last app's start has finished."""
    ready, waiting, gate = tmp_path / "ready", tmp_path / "waiting", tmp_path / "gate"
    app = tmp_path / "gated.app"
    app.write_text(
        "type: application\nname: gated\n"
        f"mod: [tests.core.pack.apps.gate, [], {{waiting: '{waiting}', gate: '{gate}'}}]\n"
    )
    proc = launch("gate", "--lockfile", str(ready), "res/deploy/hello.rel", str(app))
    try:
        wait_for_file(waiting, proc)
        assert not ready.exists()  # hello has started, gated's start is under way
        gate.write_text("open\n")
        wait_for_file(ready, proc)
        assert json.loads(ready.read_text())["apps"] == ["ioncore", "hello", "gated"]
    finally:
        output = interrupt(proc)
    assert proc.returncode == 0, output


APP = "type: application\nname: {name}\nversion: '1'\n"

BAD_INPUTS: dict[str, tuple[str, str, list[str]]] = {
    # case: (file name, text, words the one error line must hold besides the path)
    "malformed_yaml": ("broken.app", APP.format(name="broken") + "mod: [a, b\n", [":5:", "YAML"]),
    "literal_with_call": (
        "evil.app",
        (REPO / "tests/core/pack/files/evil.app").read_text(),
        [":4:", "function call", "eval"],
    ),
    "missing_module": (
        "nomod.app",
        APP.format(name="nomod") + "mod: [tests.core.pack.apps.no_such_module]\n",
        [":4:", "field 'mod'", "cannot import module 'tests.core.pack.apps.no_such_module'"],
    ),
    "module_without_start": (
        "nostart.app",
        APP.format(name="nostart") + "mod: [tests.core.pack.apps.nostart]\n",
        [":4:", "field 'mod'", "has no start("],
    ),
    "start_raises": (
        "boom.app",
        APP.format(name="boom") + "applications: [hello]\nmod: [tests.core.pack.apps.boom]\n",
        [":5:", "field 'mod'", "failed to start: RuntimeError: boom app refuses to start"],
    ),
    "unknown_field": (
        "odd.app",
        APP.format(name="odd") + "mod: [tests.core.pack.apps.recorder]\nflavour: mint\n",
        [":5:", "field 'flavour'", "unknown field"],
    ),
    "release_unknown_field": (
        "odd.rel",
        "type: release\nname: odd\napps:\n  - name: hello\n    colour: blue\n",
        [":5:", "field 'apps[0].colour'", "unknown field"],
    ),
}


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every bad-input container, launched at once; case -> (proc, output, path, ready file)."""
    base = tmp_path_factory.mktemp("bad")
    runs: dict[str, Any] = {}
    for case, (name, text, _words) in BAD_INPUTS.items():
        directory = base / case
        directory.mkdir()
        path = directory / name
        path.write_text(text)
        ready = directory / "ready"
        # hello.rel first: the bad file comes after apps that started and must be stopped.
        proc = launch(case, "--ready-file", str(ready), "res/deploy/hello.rel", str(path))
        runs[case] = (proc, path, ready)
    results = {}
    try:
        for case, (proc, path, ready) in runs.items():
            output, _ = proc.communicate(timeout=TIMEOUT)
            results[case] = (proc.returncode, output, path, ready)
    finally:
        for proc, _path, _ready in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    yield results


# Found as the files are read, before anything starts: the output is that one line.
REFUSED_BEFORE_START = {
    "malformed_yaml",
    "literal_with_call",
    "unknown_field",
    "release_unknown_field",
}


@pytest.mark.parametrize("case", sorted(REFUSED_BEFORE_START))
def test_a_bad_file_is_refused_before_anything_starts(bad_runs: dict[str, Any], case: str) -> None:
    """Exit 1 and one line naming the file and the field or line; nothing started."""
    returncode, output, path, ready = bad_runs[case]
    assert returncode == 1, output
    (line,) = output.splitlines()
    assert line.startswith(f"twistd cc: {path}")
    for words in BAD_INPUTS[case][2]:
        assert words in line, line
    assert not ready.exists()
    assert not (REPO / "ion-evil-app-ran").exists()


@pytest.mark.parametrize("case", sorted(set(BAD_INPUTS) - REFUSED_BEFORE_START))
def test_bad_input_is_one_clear_error(bad_runs: dict[str, Any], case: str) -> None:
    """Each bad file: exit 1, one error line naming file and field or line, nothing left running."""
    returncode, output, path, ready = bad_runs[case]
    assert returncode == 1, output
    problems = problem_lines(output)
    assert len(problems) == 1, output
    assert str(path) in problems[0]
    for words in BAD_INPUTS[case][2]:
        assert words in problems[0], problems[0]
    assert not ready.exists()
    assert "Traceback" not in output
    # hello (and, for boom, its own process) had started: all are stopped again.
    assert "stopped app hello" in output and "terminated process hello.1@" in output
    assert not (REPO / "ion-evil-app-ran").exists()


def test_show_config_shows_every_layer_winning(tmp_path: Path) -> None:
    """--show-config prints the effective config; each layer wins over the one before it."""
    config_dir = tmp_path / "res" / "config"
    config_dir.mkdir(parents=True)
    (config_dir / "ion.yml").write_text("demo: {k1: yml, k2: yml}\n")
    (config_dir / "ionlocal.yml").write_text("demo: {k2: local, k3: local}\n")
    (tmp_path / "extra.yml").write_text("demo: {k4: file, k5: file}\n")
    result = subprocess.run(
        cc_command(
            "show", "--config", "extra.yml", "-a", "demo.k5=cli,sysname=lab", "--show-config"
        ),
        cwd=tmp_path,
        env=clean_env(ION_DEMO__K3="env", ION_DEMO__K4="env"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for line in [
        "demo:",
        "  k1: yml  # ion.yml",
        "  k2: local  # ionlocal.yml",
        "  k3: env  # env",
        "  k4: file  # --config",
        "  k5: cli  # -a",
        "sysname: lab  # -a",
        "  rpc_timeout: 15.0  # defaults",
        "  root: null  # defaults",
        "  history: ~/.cchistory  # defaults",
    ]:
        assert line in lines, result.stdout


def test_show_config_shows_a_clusters_nodes_masked(tmp_path: Path) -> None:
    """broker.url as a YAML list of a cluster's nodes: --show-config lists them,
    passwords masked, beside the queue type."""
    (tmp_path / "cluster.yml").write_text(
        "broker:\n  url: [amqp://app:s3cret@n1:5672/, amqp://app:s3cret@n2:5672/]\n"
        "  queue_type: quorum\n"
    )
    result = subprocess.run(
        cc_command("show", "--config", "cluster.yml", "--show-config"),
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, result.stderr
    assert "s3cret" not in result.stdout
    lines = result.stdout.splitlines()
    assert "  url: ['amqp://app:***@n1:5672/', 'amqp://app:***@n2:5672/']  # --config" in lines
    assert "  queue_type: quorum  # --config" in lines


def test_json_log_lines_with_per_module_levels(tmp_path: Path) -> None:
    """--log-format json writes one JSON object per line, filtered by per-module levels."""
    ready = tmp_path / "ready"
    proc = launch(
        "json",
        "--log-format",
        "json",
        "-a",
        "logging.levels={ion.core.pack.processapp: warn}",
        "--ready-file",
        str(ready),
        "res/deploy/hello.rel",
    )
    wait_for_file(ready, proc)
    output = interrupt(proc)
    assert proc.returncode == 0, output
    records = [json.loads(line) for line in output.splitlines() if line.strip()]
    messages = [r["message"] for r in records]
    assert {"time", "level", "namespace", "message"} <= set(records[0])
    assert "started app hello 0.1" in messages and "stopped app hello" in messages
    assert not any("terminated process" in m for m in messages)  # its module logs at warn


def test_boot_script_runs_with_the_container(tmp_path: Path) -> None:
    """A .py file runs with container and cc in its namespace, awaiting at top level."""
    ready, marker = tmp_path / "ready", tmp_path / "marker"
    script = tmp_path / "boot.py"
    script.write_text(
        "from pathlib import Path\n"
        "info = await cc.start_app('hello')\n"
        "proc = container.proc_manager.find('hello')\n"
        f"Path({str(marker)!r}).write_text(f'{{info.name}} {{proc.state}}')\n"
    )
    proc = launch("script", "--ready-file", str(ready), str(script))
    wait_for_file(ready, proc)
    assert marker.read_text() == "hello ACTIVE"
    output = interrupt(proc)
    assert proc.returncode == 0, output


def test_failing_boot_script_names_its_line(tmp_path: Path) -> None:
    """A boot script that raises is one error with the script's line, exit 1."""
    script = tmp_path / "bad.py"
    script.write_text("x = 1\ny = x / 0\n")
    proc = launch("badscript", str(script))
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 1, output
    problems = problem_lines(output)
    assert len(problems) == 1, output
    assert f"{script}:2: boot script failed: ZeroDivisionError" in problems[0]
