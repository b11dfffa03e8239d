"""The shell's interpreter without a terminal: results shown, errors without the shell's frames."""

from __future__ import annotations

import pytest_twisted

from ion.core.cc.interpreter import ShellInterpreter
from ion.core.process import context
from ion.services.hello.service import HelloService, HelloServiceClient


class FakeShell:
    def __init__(self) -> None:
        self.shown: list[str] = []

    def out(self, text: str) -> None:
        self.shown.append(text)


def test_a_result_is_shown_and_kept_as_underscore() -> None:
    shell = FakeShell()
    interpreter = ShellInterpreter(shell, {})  # type: ignore[arg-type]
    interpreter.push(b"6 * 7")
    assert shell.shown == ["42\n"] and interpreter.locals["_"] == 42


def test_a_traceback_shows_the_users_frames_not_the_shells() -> None:
    shell = FakeShell()
    interpreter = ShellInterpreter(shell, {})  # type: ignore[arg-type]
    interpreter.push(b"def f():\n    return 1 / 0\n")
    interpreter.push(b"f()")
    (shown,) = shell.shown
    assert "ZeroDivisionError: division by zero" in shown
    assert 'File "<shell>", line 2, in f' in shown
    assert "interpreter.py" not in shown and "shell.py" not in shown


@pytest_twisted.ensureDeferred
async def test_a_line_runs_in_its_container(container) -> None:
    """A client made at the prompt with no arguments finds the shell's container,
    also in an awaited line."""
    await container.spawn(HelloService)
    shell = FakeShell()
    interpreter = ShellInterpreter(shell, {"container": container, "Hello": HelloServiceClient})  # type: ignore[arg-type]
    interpreter.push(b"Hello().container is container")
    interpreter.push(b"await Hello().hello('prompt')")
    await interpreter.waits[-1]
    assert shell.shown == ["True\n", "'Hello there, prompt'\n"]
    assert context.current() is None  # the place was the line's only
