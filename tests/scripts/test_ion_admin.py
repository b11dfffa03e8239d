"""ion-admin: bad input is a usage error naming the field; passwords reach rabbitmqctl
on its stdin only and land in 0600 files; on a real node (the suite's C{tls_node}) it
makes the vhost, users, permissions and tags, refuses a taken name, and tears down."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from ion.scripts.ion_admin import EX_FAILED, EX_USAGE, main
from tests.broker_users import setup_system
from tests.rabbit_node import RabbitNode


@pytest.mark.parametrize(
    "argv, field",
    [
        (["setup", "amq.x", "--container", "a"], "SYSNAME"),
        (["setup", "lab*", "--container", "a"], "SYSNAME"),
        (["setup", "lab", "--container", "a.b"], "--container"),
        (["setup", "lab", "--container", "a", "--observer", "o#"], "--observer"),
        (["setup", "lab"], "--container"),
        (["setup", "lab", "--container", "a", "--container", "a"], "given twice"),
        (["setup", "lab", "--container", "a", "--url", "amqp://u:p@h:1"], "--url"),
        (["teardown", "bad name"], "SYSNAME"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_a_usage_error_naming_the_field(
    argv: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--rabbitmqctl", "/nonexistent"]) == EX_USAGE
    assert field in capsys.readouterr().err


def _fake_rabbitmqctl(tmp_path: Path) -> tuple[Path, Path]:
    """A rabbitmqctl that logs its arguments and its stdin, and knows no users nor vhosts."""
    log = tmp_path / "calls.log"
    script = tmp_path / "rabbitmqctl"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "ARGS $*" >> {log}\n'
        f'echo "STDIN $(cat)" >> {log}\n'
        'case "$1" in list_users|list_vhosts) echo "[]";; esac\n'
    )
    script.chmod(0o755)
    return script, log


def test_passwords_only_on_stdin_and_in_private_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script, log = _fake_rabbitmqctl(tmp_path)
    out = tmp_path / "creds"
    argv = ["setup", "lab", "--container", "cc1", "--observer", "obs", "--out", str(out)]
    assert main([*argv, "--rabbitmqctl", str(script)]) == 0
    printed = capsys.readouterr().out
    calls = log.read_text().splitlines()
    for user in ("cc1", "obs"):
        path = out / f"{user}.yml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        broker = yaml.safe_load(path.read_text())["broker"]
        assert broker["username"] == user and broker["secure"] is True
        assert broker["url"] == "amqp://127.0.0.1:5672/lab"
        password = broker["password"]
        assert len(password) >= 32
        assert password not in printed
        assert not [c for c in calls if c.startswith("ARGS") and password in c]
        assert f"STDIN {password}" in calls
    assert "ARGS set_topic_permissions -p lab cc1 ion.lab .* " in "\n".join(calls)


def test_rabbitmqctl_missing_is_a_clear_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["setup", "lab", "--container", "a", "--out", str(tmp_path)]
    assert main([*argv, "--rabbitmqctl", str(tmp_path / "nope")]) == EX_FAILED
    assert "rabbitmqctl not found" in capsys.readouterr().err


@pytest.mark.rabbitmq
def test_setup_and_teardown_on_a_node(tls_node: RabbitNode, tmp_path: Path) -> None:
    """setup makes the vhost, the tagged users and their permissions; a second
    setup with a taken user changes nothing and says so; teardown removes all."""
    system = setup_system(tls_node, tmp_path / "one", ("a",))
    a, obs = system.users["a"], system.users["obs"]
    try:
        assert system.sysname in tls_node.ctl("list_vhosts", "--silent").split()
        perms = json.loads(tls_node.ctl("list_permissions", "-p", system.sysname, "--formatter",
                                        "json", "--silent"))  # fmt: skip
        assert {p["user"] for p in perms} == {a, obs}
        topic = json.loads(tls_node.ctl("list_topic_permissions", "-p", system.sysname,
                                        "--formatter", "json", "--silent"))  # fmt: skip
        read = {t["user"]: t["read"] for t in topic}
        assert "{username}" in read[a] and read[obs] == ".*"
        again = ["setup", "other-sys", "--container", a, "--out", str(tmp_path / "two")]
        assert system.admin(*again) == EX_FAILED
        assert "other-sys" not in tls_node.ctl("list_vhosts", "--silent").split()
        assert not (tmp_path / "two" / f"{a}.yml").exists()
        # A vhost that exists (another system's, say) is refused, never touched.
        taken = [
            "setup",
            system.sysname,
            "--container",
            "fresh-user",
            "--out",
            str(tmp_path / "three"),
        ]
        assert system.admin(*taken) == EX_FAILED
        assert system.sysname in tls_node.ctl("list_vhosts", "--silent").split()
        perms = json.loads(tls_node.ctl("list_permissions", "-p", system.sysname, "--formatter",
                                        "json", "--silent"))  # fmt: skip
        assert {p["user"] for p in perms} == {a, obs}
    finally:
        assert system.admin("teardown", system.sysname) == 0
    users = {u["user"] for u in json.loads(tls_node.ctl("list_users", "--formatter", "json"))}
    assert not users & {a, obs}
    assert system.sysname not in tls_node.ctl("list_vhosts", "--silent").split()


def test_failed_step_undone_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A step that fails half way: exit 1 with rabbitmqctl's reason; the files written
    are removed and the users and vhost made are deleted again."""
    script, log = _fake_rabbitmqctl(tmp_path)
    script.write_text(
        script.read_text()
        + 'case "$1" in set_topic_permissions) echo "Error: no topic for you" >&2; exit 70;; esac\n'
    )
    out = tmp_path / "creds"
    argv = ["setup", "lab", "--container", "cc1", "--out", str(out), "--rabbitmqctl", str(script)]
    assert main(argv) == EX_FAILED
    assert "rabbitmqctl set_topic_permissions lab cc1: no topic for you" in capsys.readouterr().err
    assert not list(out.iterdir())
    calls = log.read_text()
    assert "ARGS delete_user cc1" in calls and "ARGS delete_vhost lab" in calls
