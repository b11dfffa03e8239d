"""A bad supervisor: block stops `twistd -n cc` before anything starts: one line
naming the file, the line and the field, exit 1 (as any .app error)."""

from __future__ import annotations

from pathlib import Path

from tests.core.cc.test_boot_errors import run, write

APP = """\
type: application
name: x
version: '1'
supervisor:
  strategy: one_for_one
  children:
    - {id: a, start: "ion.services.worker:Worker", restart: sometimes}
"""


def test_a_bad_restart_is_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    """x.app:7: field 'supervisor.children[0].restart': expected ..., exit 1."""
    write(tmp_path / "x.app", APP)
    done = run(tmp_path, "x.app")
    assert done.returncode == 1, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("twistd cc: ") and done.stdout == ""
    assert line.endswith(
        "x.app:7: field 'supervisor.children[0].restart': "
        "expected permanent, transient or temporary, not 'sometimes'"
    )


def test_a_child_class_that_is_missing_is_one_critical_line(tmp_path: Path) -> None:
    """A start class that cannot be imported: one CRITICAL line naming its field, exit 1."""
    write(tmp_path / "x.app", APP.replace("worker:Worker", "worker:NoSuch").replace(
        ", restart: sometimes", ""))  # fmt: skip
    done = run(tmp_path, "x.app")
    assert done.returncode == 1, done.stdout + done.stderr
    critical = [line for line in done.stdout.splitlines() if " CRITICAL: " in line]
    assert len(critical) == 1, done.stdout
    assert "x.app:7: field 'supervisor.children[0].start': " in critical[0]
    assert "NoSuch" in critical[0]
