"""The shell's interpreter: runs each line in the container's reactor, awaits what
it returns, and shows results and errors (L{ion.core.cc.shell} is the terminal
side).

A line whose value is a Deferred or a coroutine is awaited; C{await} works at
top level. An ion error shows as one line, anything else as a traceback
without the shell's own frames.
"""

from __future__ import annotations

import ast
import code
import inspect
import os
import pydoc
import rlcompleter
import sys
import traceback
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred

from ion.core.exception import IonError
from ion.core.process import context

if TYPE_CHECKING:
    from ion.core.cc.shell import ShellProtocol

_HERE = os.path.dirname(os.path.abspath(__file__))
# Frames of the shell itself, left out of the tracebacks it shows.
_INTERNAL = (
    os.path.join(_HERE, "interpreter.py"),
    os.path.join(_HERE, "shell.py"),
    code.__file__,
    os.sep + os.path.join("twisted", "internet", "defer.py"),
)


def format_error(error: BaseException) -> str:
    """An ion error as one line; anything else as a traceback without the shell's frames."""
    if isinstance(error, IonError):
        return f"{type(error).__name__}: {error}\n"
    if isinstance(error, SyntaxError):
        return "".join(traceback.format_exception_only(type(error), error))
    tb = traceback.TracebackException.from_exception(error)
    tb.stack = traceback.StackSummary.from_list(
        [f for f in tb.stack if not f.filename.endswith(_INTERNAL)]
    )
    return "".join(tb.format())


def help_text(expr: str, obj: Any) -> str:
    """What C{expr?} shows: the pydoc text of C{obj}."""
    return pydoc.render_doc(obj, title=f"{expr}: %s", renderer=pydoc.plaintext).rstrip() + "\n"


def completions(text: str, namespace: dict[str, Any]) -> list[str]:
    """The rlcompleter completions of C{text} (a name or a dotted attribute) in C{namespace}."""
    completer = rlcompleter.Completer(namespace)
    found: list[str] = []
    for state in range(1000):
        try:
            match = completer.complete(text, state)
        except Exception:
            break
        if match is None:
            break
        if match not in found:
            found.append(match)
    return sorted(found)


def is_expression(text: str) -> bool:
    """Whether C{text} is one expression (so C{text?} asks for help, not C{x = 1  # why?})."""
    try:
        compile(text.strip(), "<shell>", "eval")
    except SyntaxError:
        return False
    return bool(text.strip())


class Output:
    """sys.stdout while a line runs: writes go to the shell's terminal."""

    def __init__(self, shell: ShellProtocol) -> None:
        self.shell = shell

    def write(self, text: str) -> int:
        self.shell.out(text)
        return len(text)

    def flush(self) -> None:
        pass


class Leave:
    """C{exit()} and C{quit()} at the prompt: leave the shell (as Ctrl-D does)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D to leave the shell"

    def __call__(self, code: Any = None) -> None:
        raise SystemExit(code)


class Help:
    """C{help(obj)} at the prompt: the pydoc text, without a pager or a prompt of its own."""

    def __repr__(self) -> str:
        return "Type help(obj) or obj? for help on obj, info() for the shell's helpers"

    def __call__(self, obj: Any = None) -> None:
        print(repr(self) if obj is None else help_text(getattr(obj, "__name__", "help"), obj))


class ShellInterpreter(code.InteractiveInterpreter):
    """Compiles with top-level C{await}; collects awaitable results for the shell to wait on."""

    def __init__(self, shell: ShellProtocol, namespace: dict[str, Any]) -> None:
        super().__init__(namespace)
        self.shell = shell
        self.compile.compiler.flags |= ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        self.buffer: list[bytes] = []
        self.waits: list[Deferred[Any]] = []
        self._depth = 0
        self._saved: tuple[Any, Any] = (None, None)
        container = namespace.get("container")
        # Each line runs in its container: clients made without arguments find it,
        # and their calls carry the shell's user-id.
        user = getattr(namespace.get("cc"), "user", None)
        self._place = context.Here(container, user_id=user) if container is not None else None
        self._token: Any = None

    def resetBuffer(self) -> None:
        self.buffer = []

    def push(self, line: bytes) -> bool:
        """Add a line; run the buffer once complete. True if more input is needed."""
        self.buffer.append(line)
        source = b"\n".join(self.buffer).decode("utf-8", "replace")
        more = self.runsource(source, "<shell>")
        if not more:
            self.resetBuffer()
        return more

    def __enter__(self) -> None:
        # Re-entrant: a coroutine's first step runs inside runcode's own redirect.
        if self._depth == 0:
            self._saved = (sys.stdout, sys.displayhook)
            sys.stdout, sys.displayhook = Output(self.shell), self.displayhook
            if self._place is not None:
                self._token = context.entered(self._place)
        self._depth += 1

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            sys.stdout, sys.displayhook = self._saved
            if self._token is not None:
                token, self._token = self._token, None
                context.left(token)

    def runcode(self, code_obj: Any) -> None:
        with self:
            try:
                if code_obj.co_flags & inspect.CO_COROUTINE:
                    coro = eval(code_obj, self.locals)  # noqa: S307 - the user's own input
                    self.waits.append(Deferred.fromCoroutine(self._stepped(coro)))
                else:
                    exec(code_obj, self.locals)
            except SystemExit:
                self.shell.handle_QUIT()
            except BaseException as e:  # noqa: B036 - show it, the shell goes on
                self.shell.out(format_error(e))

    def _stepped(self, coro: Any) -> Generator[Any, Any, Any]:
        """Drive C{coro} with output redirected to the shell during each step."""
        value: Any = None
        error: BaseException | None = None
        while True:
            with self:
                try:
                    yielded = coro.send(value) if error is None else coro.throw(error)
                except StopIteration as stop:
                    return stop.value
            try:
                value, error = (yield yielded), None
            except BaseException as e:  # noqa: B036 - handed to the coroutine
                value, error = None, e

    def displayhook(self, value: Any) -> None:
        if isinstance(value, Deferred) or inspect.isawaitable(value):
            self.waits.append(ensureDeferred(value))
        else:
            self.display(value)

    def display(self, value: Any) -> None:
        """Show a result as the Python prompt would, and keep it as C{_}."""
        if value is None:
            return
        self.locals["_"] = value
        try:
            text = repr(value)
        except Exception as e:
            text = f"<repr failed: {format_error(e).strip()}>"
        self.shell.out(text + "\n")

    def showsyntaxerror(self, filename: str | None = None, **kw: Any) -> None:
        error = sys.exc_info()[1]
        assert error is not None
        self.shell.out(format_error(error))

    def write(self, data: str) -> None:
        self.shell.out(data)
