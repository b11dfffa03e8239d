"""The cc shell: a Python prompt that runs inside the container's reactor.

    ><> ps()
    ><> rpc_send('hello', 'hello', 'you')
    {'value': 'Hello there, you'}
    ><> p = await cc.spawn('hello', name='hello2')
    ><> ps?

A line whose value is a Deferred or a coroutine is awaited: the prompt comes
back when it fires, with its result shown (Ctrl-C stops waiting and cancels
it). C{await} works at the prompt. Tab completes names and attributes;
C{expr?} shows the help of C{expr}; the up and down arrows walk the history,
which is kept in C{~/.cchistory} (prompt C{><> }; without history C{--> }).
An error is shown (an ion error as one line, anything else as a traceback)
and the shell goes on. Ctrl-D on an empty line leaves: on the terminal that
stops the container; attached through a manhole it only detaches.

L{ShellProtocol} is the protocol (a conch L{ColoredManhole});
L{ion.core.cc.console} serves it on the terminal, L{ion.core.cc.manhole} on a
UNIX socket.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.conch.insults.insults import ServerProtocol
from twisted.conch.manhole import CTRL_C, ColoredManhole
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

import ion
from ion.core.cc.interpreter import (
    Help,
    Leave,
    ShellInterpreter,
    completions,
    format_error,
    help_text,
    is_expression,
)

log = Logger()

HISTORY_LINES = 2500


class ShellProtocol(ColoredManhole):
    """The shell on one terminal.

    @param namespace: the names a session starts with (copied).
    @param history: the history file, or None for none.
    @param banner: written above the first prompt.
    @param on_close: called once the terminal is gone (Ctrl-D, EOF or hang-up).
    @param reactor: runs keys typed ahead; by default the namespace's container's.
    """

    def __init__(
        self,
        namespace: dict[str, Any],
        history: str | None = None,
        banner: str = "",
        on_close: Callable[[], None] | None = None,
        reactor: Any = None,
    ) -> None:
        super().__init__(namespace)
        self.history = history
        self.banner = banner
        self.on_close = on_close
        if reactor is None:
            reactor = getattr(namespace.get("container"), "reactor", None)
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415 - no import-time reactor
        self.reactor = reactor
        self.ps = (b"><> ", b"... ") if history else (b"--> ", b"... ")
        self.width = 80
        self._busy = True  # running a line or waiting: output is not drawn above a prompt
        self._waiting: Deferred[Any] | None = None
        self._queued: deque[tuple[bytes, Any]] = deque()
        self._replay: Any = None  # the DelayedCall that will run the queued keys
        self._gone = False

    # -- connection -----------------------------------------------------------------

    def connectionMade(self) -> None:
        super().connectionMade()
        for name in ("exit", "quit"):  # not site's, which would close stdin
            self.namespace.setdefault(name, Leave(name))
        self.namespace.setdefault("help", Help())  # not site's, which would read stdin
        self.interpreter = ShellInterpreter(self, self.namespace)
        self.historyLines = self._load_history()
        self.historyPosition = len(self.historyLines)

    def initializeScreen(self) -> None:
        # Not conch's reset, which would clear the user's screen.
        if self.banner:
            self.terminal.write(self.banner.rstrip("\n").encode() + b"\n")
        self.terminal.write(self.ps[self.pn])
        self.setInsertMode()
        self._busy = False

    def connectionLost(self, reason: Any) -> None:
        self._gone = True
        if self._replay is not None and self._replay.active():
            self._replay.cancel()
        if self._waiting is not None:
            self._waiting.cancel()
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()

    # -- output -------------------------------------------------------------------------

    def out(self, text: str | bytes) -> None:
        """Write to the terminal (newlines are translated)."""
        if not self._gone and getattr(self, "terminal", None) is not None:
            self.terminal.write(text if isinstance(text, bytes) else text.encode("utf-8"))

    def show_async(self, text: str) -> None:
        """Show text that did not come from the current line (a log line) without
        mangling the line being typed."""
        if self._gone or getattr(self, "terminal", None) is None:
            return
        if self._busy:
            self.out(text)
            return
        self.terminal.eraseLine()
        self.terminal.write(b"\r")
        self.out(text)
        if self._needsNewline():
            self.terminal.nextLine()
        self.drawInputLine()
        back = len(self.lineBuffer) - self.lineBufferIndex
        if back:
            self.terminal.cursorBackward(back)

    def _prompt(self) -> None:
        if self._needsNewline():
            self.terminal.nextLine()
        self.terminal.write(self.ps[self.pn])
        self._busy = False

    # -- input --------------------------------------------------------------------------

    def keystrokeReceived(self, keyID: bytes, modifier: Any) -> None:
        if self._waiting is not None:
            if keyID == CTRL_C:
                self._cancel()
            else:
                self._queued.append((keyID, modifier))
            return
        if self._replay is not None:  # keys typed earlier go first
            self._queued.append((keyID, modifier))
            return
        super().keystrokeReceived(keyID, modifier)

    def lineReceived(self, line: bytes) -> None:
        self._busy = True
        self._remember(line)
        text = line.decode("utf-8", "replace").strip()
        if self.pn == 0 and text.endswith("?") and is_expression(text.rstrip("?")):
            self._help(text.rstrip("?").strip())
            self._prompt()
            return
        self.pn = int(bool(self.interpreter.push(line)))
        self._next()

    def _help(self, expr: str) -> None:
        try:
            obj = eval(expr, self.interpreter.locals)  # noqa: S307 - the user's own input
            self.out(help_text(expr, obj))
        except BaseException as e:  # noqa: B036
            self.out(format_error(e))

    def _next(self) -> None:
        """Wait on the next awaitable of the line, or show the prompt."""
        if self.interpreter.waits:
            d = self.interpreter.waits.pop(0)
            self._waiting = d
            d.addBoth(self._waited, d)
        else:
            self._prompt()
            if self._queued and self._replay is None:
                # On a later turn, not here: this may run in the errback of a failed
                # call, where a replayed line's exception would take that failure as
                # its context ("During handling of the above exception...").
                self._replay = self.reactor.callLater(0, self._run_queued)

    def _run_queued(self) -> None:
        """Run the keys typed while waiting, until one starts a new wait."""
        while self._queued and self._waiting is None and not self._gone:
            key, modifier = self._queued.popleft()
            super().keystrokeReceived(key, modifier)
        self._replay = None

    def _waited(self, result: Any, d: Deferred[Any]) -> None:
        if self._waiting is not d:
            return None
        self._waiting = None
        if isinstance(result, Failure):
            if result.check(CancelledError):
                self.out("KeyboardInterrupt: stopped waiting (cancelled)\n")
            else:
                self.out(format_error(result.value))
        else:
            self.interpreter.display(result)
        if not self._gone:
            self._next()
        return None

    def _cancel(self) -> None:
        self.interpreter.waits.clear()
        self._queued.clear()
        waiting = self._waiting
        assert waiting is not None
        waiting.cancel()  # _waited reports it and moves on, if it honours the cancel
        if self._waiting is waiting:
            self._waiting = None
            self.out("KeyboardInterrupt: stopped waiting\n")
            self._next()

    def handle_TAB(self) -> None:
        head = b"".join(self.lineBuffer[: self.lineBufferIndex]).decode("utf-8", "replace")
        word = re.search(r"[\w.]*$", head).group()  # type: ignore[union-attr]
        if not word:
            super().handle_TAB()  # indentation
            return
        found = completions(word, self.interpreter.locals)
        common = os.path.commonprefix(found)
        if len(common) > len(word):
            rest = common[len(word) :].encode()
            for i in range(len(rest)):
                self.characterReceived(rest[i : i + 1], i < len(rest) - 1)
        elif len(found) > 1:
            self._list(found)
        else:
            self.terminal.write(b"\a")

    def _list(self, words: list[str]) -> None:
        cell = max(len(w) for w in words) + 2
        per_row = max(1, self.width // cell)
        rows = [words[i : i + per_row] for i in range(0, len(words), per_row)]
        self.terminal.nextLine()
        self.out("\n".join("".join(w.ljust(cell) for w in row).rstrip() for row in rows) + "\n")
        self.drawInputLine()
        back = len(self.lineBuffer) - self.lineBufferIndex
        if back:
            self.terminal.cursorBackward(back)

    # -- history ------------------------------------------------------------------------

    def _load_history(self) -> list[bytes]:
        if not self.history:
            return []
        path = Path(self.history).expanduser()
        try:
            lines = path.read_bytes().splitlines()
        except FileNotFoundError:
            return []
        except OSError as e:
            log.warn("shell history {path} unreadable: {why}", path=str(path), why=e.strerror)
            return []
        if len(lines) > HISTORY_LINES:
            lines = lines[-HISTORY_LINES:]
            self._write_history(path, b"".join(line + b"\n" for line in lines), "wb")
        return lines

    def _remember(self, line: bytes) -> None:
        if self.history and line.strip():
            self._write_history(Path(self.history).expanduser(), line + b"\n", "ab")

    def _write_history(self, path: Path, data: bytes, mode: str) -> None:
        try:
            with open(path, mode) as f:
                f.write(data)
        except OSError as e:
            log.warn("shell history {path} not written: {why}", path=str(path), why=e.strerror)
            self.history = None


class Terminal(ServerProtocol):
    """conch's terminal, without the full reset (which clears the screen) on close."""

    def loseConnection(self) -> None:
        self.write(b"\x1b[4l")  # leave insert mode
        if self.transport is not None:
            self.transport.loseConnection()


def banner(container: Any, leave: str) -> str:
    """The first lines of a session."""
    return (
        f"ion {ion.__version__} cc shell: container {container.id}, sysname {container.sysname}\n"
        f"info() lists the helpers, expr? shows help, Tab completes, Ctrl-D {leave}.\n"
    )
