"""The cc shell on the container's own terminal (stdin and stdout).

C{twistd -n cc} opens it once every file has started, when stdin and stdout
are a terminal and C{-n/--no_shell} is not given. The terminal is in raw mode
while the shell runs and restored when it goes. Log lines are drawn above the
prompt meanwhile (L{LogStream}). Leaving the shell (Ctrl-D, C{exit()}, or the
terminal going away) stops the reactor, so the container stops cleanly and
twistd exits 0.
"""

from __future__ import annotations

import os
import signal
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.logger import Logger

if TYPE_CHECKING:
    from ion.core.cc.shell import ShellProtocol

log = Logger()


class LogStream:
    """Where the container's log goes: its stream, or above the shell's prompt while
    a console shell owns the terminal."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.shell: ShellProtocol | None = None

    def write(self, text: str) -> None:
        if self.shell is not None:
            self.shell.show_async(text)
        else:
            self.stream.write(text)

    def flush(self) -> None:
        if self.shell is None:
            self.stream.flush()


class ConsoleShell(Service):
    """The shell on this process's terminal (stdin and stdout, raw mode while it runs)."""

    name = "shell"

    def __init__(
        self,
        namespace: dict[str, Any],
        history: str | None,
        banner_text: str,
        log_stream: LogStream | None = None,
        reactor: Any = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415 - no import-time reactor
        self.reactor = reactor
        self.namespace = namespace
        self.history = history
        self.banner_text = banner_text
        self.log_stream = log_stream
        self._saved_tty: Any = None
        self._saved_hup: Any = None
        self._stdio: Any = None

    def startService(self) -> None:
        import termios
        import tty

        from twisted.internet.stdio import StandardIO

        # The shell (conch, pydoc, rlcompleter) only once it opens: not for a headless boot.
        from ion.core.cc.shell import ShellProtocol, Terminal

        super().startService()
        self._saved_tty = termios.tcgetattr(0)
        tty.setraw(0)
        # A closed terminal window (SIGHUP) stops the container as Ctrl-D does.
        self._saved_hup = signal.signal(signal.SIGHUP, self._hangup)
        terminal = Terminal(
            ShellProtocol, self.namespace, self.history, self.banner_text, self._closed
        )
        self._stdio = StandardIO(terminal, reactor=self.reactor)
        if self.log_stream is not None:
            self.log_stream.shell = terminal.terminalProtocol

    def _hangup(self, signum: int, frame: Any) -> None:
        self.reactor.callFromThread(self._closed)

    def _restore(self) -> None:
        if self.log_stream is not None:
            self.log_stream.shell = None
        if self._saved_hup is not None:
            signal.signal(signal.SIGHUP, self._saved_hup)
            self._saved_hup = None
        if self._saved_tty is not None:
            import termios

            saved, self._saved_tty = self._saved_tty, None
            try:
                for fd in (0, 1):
                    os.set_blocking(fd, True)
                termios.tcsetattr(0, termios.TCSADRAIN, saved)
                os.write(1, b"\r\n")
            except (OSError, termios.error) as e:  # the terminal is gone
                log.debug("terminal not restored: {why}", why=e)

    def _closed(self) -> None:
        """The terminal is gone (Ctrl-D): stop the container."""
        stopping = not self.running or self._saved_tty is None
        self._restore()
        if not stopping:
            log.info("shell closed; stopping the container")
            self.reactor.stop()

    def stopService(self) -> None:
        super().stopService()
        self._restore()
        if self._stdio is not None:
            stdio, self._stdio = self._stdio, None
            stdio.loseConnection()
