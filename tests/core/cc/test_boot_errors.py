"""A configuration or file error at boot: one line naming the file and field, exit 1,
no traceback (unless ION_DEBUG=1). Real C{twistd -n cc} invocations."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.launch import TIMEOUT, cc_command, clean_env

REL = "type: release\nname: r\nversion: '1'\napps: [{name: %s}]\n"


def run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cc_command("booterr", "-n", *args),
        cwd=cwd,
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


CASES: dict[str, tuple[dict[str, str], list[str], list[str]]] = {
    # case: (files to write, twistd cc arguments, words the one line must hold)
    "ion_yml_bad_yaml": (
        {"res/config/ion.yml": "container: [\n"},
        [],
        ["res/config/ion.yml", "malformed YAML", "line 2"],
    ),
    "ionlocal_not_a_mapping": (
        {"res/config/ionlocal.yml": "- a\n"},
        [],
        ["res/config/ionlocal.yml", "must hold a mapping"],
    ),
    "config_file_bad_yaml": (
        {"extra.yml": "a: {b\n"},
        ["--config", "extra.yml"],
        ["extra.yml", "line"],
    ),
    "config_file_missing": ({}, ["--config", "nosuch.yml"], ["nosuch.yml", "No such file"]),
    "config_bad_setting": (
        {"extra.yml": "container: {rpc_timeout: soon}\n"},
        ["--config", "extra.yml"],
        ["container.rpc_timeout", "'soon'", "--config"],
    ),
    "policy_bad_field": (
        {"extra.yml": "security: {policy: pol.yml}\n", "pol.yml": "users: {bob: operator}\n"},
        ["--config", "extra.yml"],
        ["security.policy pol.yml", "field 'users.bob'", "list of role names"],
    ),
    "policy_missing": (
        {"extra.yml": "security: {policy: nosuch.yml}\n"},
        ["--config", "extra.yml"],
        ["security.policy nosuch.yml", "cannot read it"],
    ),
    "a_bad_yaml": ({}, ["-a", "{x: ["], ["-a", "YAML mapping"]),
    "missing_rel": ({}, ["nosuch.rel"], ["nosuch.rel", "no such file"]),
    "malformed_rel": ({"bad.rel": "type: release\nname: [\n"}, ["bad.rel"], ["bad.rel", "YAML"]),
    "rel_unknown_field": (
        {"odd.rel": "type: release\nname: odd\nversion: '1'\ncolour: red\napps: []\n"},
        ["odd.rel"],
        ["odd.rel:4:", "field 'colour'", "unknown field"],
    ),
    "rel_missing_app": ({"r.rel": REL % "nosuch"}, ["r.rel"], ["r.rel", "app 'nosuch' not found"]),
    "malformed_app_in_res": (
        {"res/apps/foo.app": "type: application\nname: foo\nversion: [1\n", "r.rel": REL % "foo"},
        ["r.rel"],
        ["res/apps/foo.app:", "malformed YAML"],
    ),
    "broken_ioncore_in_res": (
        {"res/apps/ioncore.app": "type: application\nname: ioncore\nversion: '1'\nflavour: x\n"},
        [],
        ["res/apps/ioncore.app:4:", "field 'flavour'"],
    ),
    "pack_root_not_a_directory": ({}, ["--pack-root", "nosuch"], ["--pack-root nosuch"]),
    "app_unknown_field": (
        {"odd.app": "type: application\nname: odd\nversion: '1'\nflavour: mint\n"},
        ["odd.app"],
        ["odd.app:4:", "field 'flavour'"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_boot_error_is_one_line_and_exit_1(tmp_path: Path, case: str) -> None:
    files, args, words = CASES[case]
    for name, text in files.items():
        write(tmp_path / name, text)
    done = run(tmp_path, *args)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("twistd cc: ")
    for word in words:
        assert word in line, line


def test_ion_debug_adds_the_traceback(tmp_path: Path) -> None:
    write(tmp_path / "res/config/ion.yml", "container: [\n")
    done = run(tmp_path, ION_DEBUG="1")
    assert done.returncode == 1
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("twistd cc: ")
    assert "res/config/ion.yml: malformed YAML" in done.stderr.splitlines()[-1]


def test_an_app_that_cannot_start_is_one_critical_line_and_its_traceback_with_ion_debug(
    tmp_path: Path,
) -> None:
    """Found as the app starts (its module is imported then): one CRITICAL line, exit 1;
    ION_DEBUG=1 logs the traceback with it."""
    app = "type: application\nname: nomod\nversion: '1'\nmod: [no_such_module_here]\n"
    write(tmp_path / "nomod.app", app)
    plain = run(tmp_path, "nomod.app")
    debug = run(tmp_path, "nomod.app", ION_DEBUG="1")
    for done in (plain, debug):
        assert done.returncode == 1, done.stdout + done.stderr
        critical = [line for line in done.stdout.splitlines() if " CRITICAL: " in line]
        assert len(critical) == 1 and "nomod.app:4: field 'mod'" in critical[0]
    assert "Traceback" not in plain.stdout + plain.stderr
    assert "Traceback (most recent call last)" in debug.stdout


def test_a_failed_start_leaves_no_pidfile(tmp_path: Path) -> None:
    """twistd writes twistd.pid; a container whose app cannot start exits 1 and
    removes it, as a clean stop does: the next start finds no stale pidfile."""
    app = "type: application\nname: nomod\nversion: '1'\nmod: [no_such_module_here]\n"
    write(tmp_path / "nomod.app", app)
    command = [arg for arg in cc_command("pidfile", "-n", "nomod.app") if arg != "--pidfile="]
    done = subprocess.run(
        command, cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert not (tmp_path / "twistd.pid").exists()
