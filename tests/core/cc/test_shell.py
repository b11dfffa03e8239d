"""The cc shell: the real C{twistd -n cc} driven through a pseudo-terminal, and the
shell protocol in process on a fake terminal."""

from __future__ import annotations

import io
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport

from ion.core.cc.console import LogStream
from ion.core.cc.container import Container
from ion.core.cc.shell import HISTORY_LINES, ShellProtocol, Terminal
from ion.core.cc.shell_api import ShellApi, namespace
from ion.core.exception import NoSuchServiceError
from ion.services.hello import HelloService
from tests.helpers import Collector, wait_for
from tests.launch import REPO, TIMEOUT, cc_command, clean_env

PROMPT = "><> "


def start_shell(home: Path, *args: str) -> pexpect.spawn:
    """C{twistd -n cc ARGS res/deploy/hello.rel} on a pseudo-terminal, HOME at C{home}."""
    command = cc_command("shell", *args, "res/deploy/hello.rel")
    child = pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(REPO),
        env=clean_env(HOME=str(home)),
        timeout=TIMEOUT,
        dimensions=(50, 160),
        encoding="utf-8",
        codec_errors="replace",
    )
    return child


def run(child: pexpect.spawn, line: str, *expected: str) -> str:
    """Type C{line}; expect each pattern in turn, then the prompt; what came before the prompt."""
    child.send(line + "\r")
    for pattern in expected:
        child.expect(pattern)
    child.expect_exact(PROMPT)
    return child.before


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[pexpect.spawn]:
    """A container with hello.rel, its shell on a pseudo-terminal, at its first prompt."""
    child = start_shell(tmp_path)
    try:
        child.expect(r"ion \S+ cc shell: container t-shell-\d+")
        child.expect_exact(PROMPT)
        yield child
    finally:
        if child.isalive():
            child.terminate(force=True)


def test_ps_lists_the_release_processes(shell: pexpect.spawn) -> None:
    """ps() at the prompt prints the container's agent and the hello process of
    hello.rel in an aligned table."""
    shell.send("ps()\r")
    shell.expect(r"#\s+name\s+id\s+state\s+service\s+class")
    shell.expect(r"0\s+cc_agent\s+cc_agent\.0@t-shell-\d+\s+ACTIVE\s+ContainerAgent")
    shell.expect(r"1\s+hello\s+hello\.1@t-shell-\d+\s+ACTIVE\s+hello\s+HelloService")
    shell.expect("2 processes")
    shell.expect_exact(PROMPT)


def test_spawn_then_rpc_send_prints_the_reply(shell: pexpect.spawn) -> None:
    """cc.spawn starts another HelloService, and rpc_send to it prints the reply content."""
    run(
        shell,
        "cc.spawn('ion.services.hello.HelloService', name='hello2')",
        r"<HelloService hello2\.2@",
    )
    run(shell, "rpc_send('hello2', 'hello', 'you')", re.escape("{'value': 'Hello there, you'}"))
    run(shell, "ps()", r"hello2\.2@\S+\s+ACTIVE", "4 processes")  # agent, hello, hello2, shell


def test_await_works_at_the_prompt(shell: pexpect.spawn) -> None:
    """A line with await runs, and its value is shown."""
    run(shell, "p = await cc.spawn('hello', name='viaawait')")
    run(shell, "(await p.rpc_send('hello', 'hello', 'me'))['value'].upper()", "'HELLO THERE, ME'")


def test_tab_completes_cc_sp_and_lists_cc_s(shell: pexpect.spawn) -> None:
    """Tab completes cc.sp to cc.spawn( and lists the candidates of cc.s."""
    shell.send("cc.s\t")
    shell.expect(r"cc\.spawn\(\s+cc\.start_app\(\s+cc\.start_rel\(\s+cc\.stop_app\(")
    shell.send("\x03")  # Ctrl-C: drop the line
    shell.expect("KeyboardInterrupt")
    shell.expect_exact(PROMPT)
    shell.send("cc.sp\t")
    run(shell, "'ion.services.hello.HelloService', name='tabbed')", r"<HelloService tabbed\.\d+@")


def test_question_mark_prints_help(shell: pexpect.spawn) -> None:
    """ps? prints the help of ps, its docstring included, instead of running it."""
    out = run(shell, "ps?", r"ps: method ps", "Print a table of this container's processes")
    assert "1 process" not in out


def test_kill_removes_the_process_from_ps(shell: pexpect.spawn) -> None:
    """kill(1) kills hello.1, and ps() lists only the container's agent; kill(0),
    the agent, is refused: it stops with its container."""
    run(shell, "kill(1)", r"killed hello\.1@\S+ \(killed\)")
    shell.send("ps()\r")
    shell.expect("1 process")
    assert "hello.1@" not in shell.before and "cc_agent.0@" in shell.before
    shell.expect_exact(PROMPT)
    run(shell, "kill(0)", r"NotAllowed: cc_agent\.0@\S+ is the container agent")


def test_bad_input_is_answered_and_the_shell_goes_on(shell: pexpect.spawn) -> None:
    """A syntax error, an exception, a call to a missing service and a spawn of a missing
    module each print a clear error, and the shell and container keep working."""
    run(shell, "def f(:", "SyntaxError: invalid syntax")
    run(shell, "1/0", "Traceback", "ZeroDivisionError: division by zero")
    run(
        shell, "rpc_send('nosuch', 'x')", "NoSuchServiceError: no process or service named 'nosuch'"
    )
    run(
        shell,
        "spawn('no.such.module')",
        r"ProcessError: cannot spawn 'no\.such\.module': no module",
    )
    run(shell, "rpc_send('hello', 'hello', 42)", r"ReceivedApplicationError: \[400\] BadRequest")
    run(shell, "rpc_send('hello', 'hello', 'still here')", "Hello there, still here")
    assert shell.isalive()


def test_ctrl_d_stops_the_container_and_exits_0(shell: pexpect.spawn, tmp_path: Path) -> None:
    """Ctrl-D leaves the shell, the container stops cleanly, twistd exits 0 and the
    lines typed are in ~/.cchistory."""
    run(shell, "ps()", "2 processes")
    shell.send("\x04")
    shell.expect("shell closed; stopping the container")
    shell.expect("stopped app ioncore")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0, shell.before
    assert (tmp_path / ".cchistory").read_text() == "ps()\n"


def test_hangup_stops_the_container_cleanly(shell: pexpect.spawn) -> None:
    """SIGHUP (the terminal window closed) stops the container as Ctrl-D does, exit 0."""
    shell.kill(signal.SIGHUP)
    shell.expect("shell closed; stopping the container")
    shell.expect("stopped app ioncore")
    shell.expect(pexpect.EOF)
    shell.close()
    assert shell.exitstatus == 0


def test_history_is_recalled_with_up_arrow(tmp_path: Path) -> None:
    """Lines in ~/.cchistory come back with the up arrow in the next session."""
    (tmp_path / ".cchistory").write_text("rpc_send('hello', 'hello', 'from history')\n")
    child = start_shell(tmp_path)
    try:
        child.expect_exact(PROMPT)
        run(child, "\x1b[A", "Hello there, from history")
    finally:
        child.terminate(force=True)


def test_no_history_keeps_none_and_shows_the_other_prompt(tmp_path: Path) -> None:
    """With -i (--no-history) the prompt is '--> ' and no history file is written."""
    child = start_shell(tmp_path, "-i")
    try:
        child.expect_exact("--> ")
        child.send("ps()\r")
        child.expect("2 processes")
        child.expect_exact("--> ")
        child.send("\x04")
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0
        assert not (tmp_path / ".cchistory").exists()
    finally:
        if child.isalive():
            child.terminate(force=True)


def test_no_shell_flag_runs_headless_on_a_terminal(tmp_path: Path) -> None:
    """With -n there is no prompt even on a terminal; SIGINT stops it with exit 0."""
    ready = tmp_path / "ready"
    child = start_shell(tmp_path, "-n", "--ready-file", str(ready))
    child.logfile_read = seen = io.StringIO()
    try:
        child.expect("container t-shell-\\d+ started: ioncore, hello")
        assert ready.exists()
        child.sendintr()  # the tty is in cooked mode: Ctrl-C is SIGINT
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == 0 and PROMPT not in seen.getvalue()
    finally:
        if child.isalive():
            child.terminate(force=True)


# -- the protocol in process, on a fake terminal -------------------------------------------


class _Transport(StringTransport):
    """A StringTransport that tells C{writes} of each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: Collector[bytes] = Collector()

    def write(self, data: bytes) -> None:
        super().write(data)
        self.writes(data)


class FakeTerminal:
    """A shell on a StringTransport: type bytes, read what the terminal got."""

    def __init__(self, container: Container, history: str | None = None) -> None:
        self.closed = 0
        self.transport = _Transport()
        self.server = Terminal(
            ShellProtocol, namespace(ShellApi(container)), history, "banner\n", self._closed
        )
        self.server.makeConnection(self.transport)
        self.shell: ShellProtocol = self.server.terminalProtocol
        self.prompt = self.shell.ps[0].decode()  # "--> " without history

    def _closed(self) -> None:
        self.closed += 1

    def type(self, data: bytes) -> str:
        self.transport.clear()
        self.server.dataReceived(data)
        return self.text()

    def text(self) -> str:
        # Strip escape sequences, as a reader of the screen sees it.
        return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", self.transport.value().decode())

    async def shown(self, ending: str, timeout: float = 5.0) -> str:
        """What the terminal got, once it ends with C{ending}."""
        if not self.text().endswith(ending):
            await self.transport.writes.wait_until(lambda _: self.text().endswith(ending), timeout)
        return self.text()


@pytest_twisted.ensureDeferred
async def test_keys_typed_while_waiting_run_after_the_reply(container: Container) -> None:
    """A line typed while a call is pending runs once the call's result has been shown."""
    term = FakeTerminal(container)
    gate: Deferred[str] = Deferred()
    term.shell.interpreter.locals["gate"] = gate
    assert term.type(b"gate\r").endswith("gate\r\n")  # no prompt: waiting
    assert term.prompt not in term.type(b"1+1\r")
    term.transport.clear()
    gate.callback("opened")
    out = await term.shown(f"2\r\n{term.prompt}")
    assert out.index("'opened'") < out.index("2")


@pytest_twisted.ensureDeferred
async def test_a_typed_ahead_error_does_not_chain_an_earlier_failed_call(
    container: Container,
) -> None:
    """A line typed while a call is pending runs after the call fails, and its error's
    traceback does not show the call's failure as what it happened while handling."""
    term = FakeTerminal(container)
    gate: Deferred[None] = Deferred()

    async def call() -> None:
        await gate
        raise NoSuchServiceError("no process or service named 'nosuch'")

    term.shell.interpreter.locals["call"] = call
    term.type(b"call()\r")
    term.type(b"1/0\r")
    term.transport.clear()
    gate.callback(None)
    out = await term.shown(f"ZeroDivisionError: division by zero\r\n{term.prompt}")
    assert out.index("NoSuchServiceError") < out.index("Traceback")
    assert "During handling" not in out and out.count("NoSuchServiceError") == 1


@pytest_twisted.ensureDeferred
async def test_ctrl_c_cancels_a_pending_call(container: Container) -> None:
    """Ctrl-C while a call is pending cancels it and brings the prompt back."""
    term = FakeTerminal(container)
    gate: Deferred[str] = Deferred()
    term.shell.interpreter.locals["gate"] = gate
    term.type(b"gate\r")
    out = term.type(b"\x03")
    assert "KeyboardInterrupt: stopped waiting (cancelled)" in out and out.endswith(term.prompt)
    assert gate.called


@pytest_twisted.ensureDeferred
async def test_log_lines_appear_above_the_line_being_typed(container: Container) -> None:
    """A log line written while the user types is shown, and the typed line is redrawn."""
    term = FakeTerminal(container)
    stream = LogStream(None)
    stream.shell = term.shell
    term.type(b"ps(")
    term.transport.clear()
    stream.write("a log line\n")
    assert term.text().endswith(f"a log line\r\n{term.prompt}ps(")


@pytest_twisted.ensureDeferred
async def test_history_file_is_loaded_appended_and_trimmed(
    container: Container, tmp_path: Path
) -> None:
    """The history file's last lines are loaded, each line typed is appended, and a file
    longer than the limit is cut to it."""
    path = tmp_path / "hist"
    path.write_text("".join(f"x = {i}\n" for i in range(HISTORY_LINES + 10)))
    term = FakeTerminal(container, str(path))
    assert len(term.shell.historyLines) == HISTORY_LINES
    assert term.shell.historyLines[-1] == f"x = {HISTORY_LINES + 9}".encode()
    term.type(b"y = 1\r")
    lines = path.read_text().splitlines()
    assert len(lines) == HISTORY_LINES + 1 and lines[-1] == "y = 1" and lines[0] == "x = 10"


@pytest_twisted.ensureDeferred
async def test_help_prints_the_doc_without_a_pager(container: Container) -> None:
    """help(obj) prints obj's documentation in the shell, and help() says how to get help."""
    term = FakeTerminal(container)
    assert "Print a table of this container's processes" in term.type(b"help(ps)\r")
    assert "obj? for help on obj" in term.type(b"help()\r")


@pytest_twisted.ensureDeferred
async def test_question_mark_after_a_statement_is_not_help(container: Container) -> None:
    """A statement whose comment ends in ? runs as code; only an expression? asks for help."""
    term = FakeTerminal(container)
    term.type(b"x = 41 + 1  # right?\r")
    assert term.shell.interpreter.locals["x"] == 42
    assert "class int" in term.type(b"x?\r")


@pytest_twisted.ensureDeferred
async def test_exit_and_ctrl_d_close_the_session(container: Container) -> None:
    """exit() closes the session as Ctrl-D does, and the owner is told once."""
    term = FakeTerminal(container)
    term.type(b"exit()\r")
    assert term.transport.disconnecting
    term.server.connectionLost(None)
    assert term.closed == 1


@pytest_twisted.ensureDeferred
async def test_a_later_reply_is_shown_and_kept_as_underscore(container: Container) -> None:
    """An rpc reply that comes later is shown before the next prompt, and _ holds it."""
    await container.spawn(HelloService)
    term = FakeTerminal(container)
    term.type(b"rpc_send('hello', 'hello', 'x')\r")
    waiting = term.shell._waiting
    if waiting is not None:  # the reply comes in a later reactor turn
        await wait_for(waiting)
    assert term.text().endswith(term.prompt)
    assert "{'value': 'Hello there, x'}" in term.text()
    assert term.shell.interpreter.locals["_"] == {"value": "Hello there, x"}
