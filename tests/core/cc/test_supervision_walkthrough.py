"""README's "Supervision" walkthrough, run as written: `twistd -n cc supervised.app`
on a pseudo-terminal, tree(), kill() of a worker and of a branch supervisor,
and the restarts seen in tree()."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect

from tests.core.cc.test_shell import PROMPT, run
from tests.launch import TIMEOUT, cc_command, clean_env

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def rows(text: str) -> dict[str, list[str]]:
    """tree()'s rows by child id (the top supervisor under its own name)."""
    found = {}
    for line in ANSI.sub("", text).replace("\r", "").splitlines():
        cells = line.split()
        if cells and cells[0] in ("supervised", "pipeline", "reader", "writer", "audit"):
            found[cells[0]] = cells
    return found


def tree(shell: pexpect.spawn) -> dict[str, list[str]]:
    """Type tree() and read its rows."""
    shell.send("tree()\r")
    shell.expect(r"process\s+child id\s+id\s+state\s+restarts\s+strategy")
    shell.expect("6 processes")  # and the container agent, cc_agent
    table = shell.before
    shell.expect_exact(PROMPT)
    return rows(table)


def test_the_walkthrough(tmp_path: Path) -> None:
    """Killing reader restarts it and (one_for_all) writer, each with a new pid;
    killing pipeline with error:Boom makes the top supervisor restart the branch
    with new workers; audit is untouched throughout; Ctrl-D stops the container."""
    command = cc_command("walk", "supervised.app")
    shell = pexpect.spawn(
        command[0], command[1:], cwd=str(tmp_path), env=clean_env(HOME=str(tmp_path)),
        timeout=TIMEOUT, dimensions=(50, 160), encoding="utf-8",
    )  # fmt: skip
    try:
        shell.expect_exact(PROMPT)
        before = tree(shell)
        assert before["pipeline"][3:6] == ["ACTIVE", "0", "one_for_all"]
        run(shell, "kill('reader')", r"killed reader\.\d+@\S+ \(killed\)",
            r"restarted child reader: reader\.\d+@\S+ \(restart 1\)")  # fmt: skip
        after = tree(shell)
        assert after["reader"][2] != before["reader"][2] and after["reader"][4] == "1"
        assert after["writer"][2] != before["writer"][2] and after["writer"][4] == "0"
        assert after["audit"] == before["audit"] and after["pipeline"] == before["pipeline"]
        run(shell, "kill('pipeline', 'error:Boom')", r"\(error:Boom\)",
            r"restarted child pipeline: pipeline\.\d+@\S+ \(restart 1\)")  # fmt: skip
        last = tree(shell)
        assert last["pipeline"][2] != before["pipeline"][2] and last["pipeline"][4] == "1"
        assert last["reader"][2] not in (before["reader"][2], after["reader"][2])
        assert last["audit"] == before["audit"]
        shell.sendeof()
        shell.expect(pexpect.EOF)
        shell.close()
        assert shell.exitstatus == 0
    finally:
        if shell.isalive():
            shell.terminate(force=True)
