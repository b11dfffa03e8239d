"""The service C{twistd cc} runs: one container, the files it starts, and the exit status.

C{FILE}s are started in order once the container (and its C{ioncore} app) is
ready: a C{.app} with L{Container.start_app}, a C{.rel} with
L{Container.start_rel}, and a C{.py} runs as a boot script (L{run_script}).
When all have started, the ready file is written (atomically). A container
that cannot boot, or a file that cannot start, logs one line saying why and
exits with status 1, after stopping whatever had started; so does one whose
permanent (or transient) app fails later (L{ion.core.pack.app_exit}). A
container asked to stop by SIGINT or SIGTERM exits 0 once it has stopped.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.logger import ILogObserver, Logger

from ion.core.cc.console import ConsoleShell, LogStream
from ion.core.cc.container import Container
from ion.core.config import Config
from ion.core.exception import ConfigurationError, IonError, StartupError

if TYPE_CHECKING:
    from ion.core.cc.shell_api import ShellApi

log = Logger()


class ContainerRunner(MultiService):
    """The top service twistd runs: one container, its boot files, and the exit status.

    With C{take_signals} (as under twistd), SIGINT and SIGTERM stop the reactor
    as twistd's own handlers do, but twistd is not asked to raise the signal
    again once the container has stopped, so the exit status is 0 (also when
    the stop comes while it boots). SIGINT ignored at launch (a shell's
    background job ignores it) stays ignored, as twistd leaves it.
    """

    def __init__(
        self,
        container: Container | Callable[[], Container],
        config: Config,
        files: list[str],
        ready_file: str | None = None,
        shell: bool = False,
        manhole: str | None = None,
        *,
        take_signals: bool = False,
        log_file: IO[str] | None = None,
        own_logging: bool = True,
        pidfile: str | None = None,
    ) -> None:
        super().__init__()
        self.take_signals = take_signals
        self.pidfile = pidfile  # twistd's, removed on a failed start as at a clean stop
        self.config = config
        self.files = files
        self.ready_file = ready_file
        self.shell = shell
        self.manhole = manhole
        # The log goes to log_file (twistd's -l FILE, or twistd.log for a daemon),
        # else stdout, where a console shell keeps it above its prompt.
        self.log_stream = LogStream(sys.stdout if log_file is None else log_file)
        self._log_to_terminal = log_file is None or log_file is sys.stdout
        self.own_logging = own_logging
        if isinstance(container, Container):
            self._make_container: Callable[[], Container] | None = None
            self.container = container
            container.setServiceParent(self)
        else:
            # Made as the service starts: after twistd daemonized, so a daemon's
            # container id names its own pid.
            self._make_container = container

    def setServiceParent(self, parent: Any) -> None:
        # twistd starts logging after makeService, from the application's
        # ILogObserver component: install ion's formatting and levels there
        # (unless twistd was asked for syslog).
        set_component = getattr(parent, "setComponent", None)
        if set_component is not None and self.own_logging:
            from ion.core.log import make_observer

            set_component(ILogObserver, make_observer(self.config, self.log_stream))
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        if self._make_container is not None:
            self.container = self._make_container()
            self._make_container = None
            self.container.setServiceParent(self)
        super().privilegedStartService()

    def startService(self) -> None:
        # A ready file left by an earlier run must not tell a launcher we are up.
        self._remove_ready_file()
        super().startService()
        # A permanent app whose top supervisor gives up stops the container, exit 1.
        self.container.app_manager.on_fatal = self._app_failed
        if self.take_signals:
            # After the reactor's own handlers are installed, which it does as it starts.
            self.container.reactor.callWhenRunning(self._take_signals)
        self.container.when_ready().addCallbacks(self._ready, self._failed)

    def stopService(self) -> Deferred[None]:
        self._remove_ready_file()
        return super().stopService()

    def _take_signals(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if callable(signal.getsignal(signum)):  # not SIG_IGN: that stays
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        log.info("{signal}: stopping", signal=signal.Signals(signum).name)
        self.container.reactor.callFromThread(self._stop_reactor)

    def _stop_reactor(self) -> None:
        try:
            self.container.reactor.stop()
        except ReactorNotRunning:
            pass  # a second signal while stopping

    def _ready(self, _: object) -> None:
        # Boot can finish while twistd is still starting the reactor, before its
        # signal handlers exist; a launcher that sees the ready file may SIGINT
        # at once, so start the files (and write the file) once it runs.
        self.container.reactor.callWhenRunning(self._start)

    def _start(self) -> None:
        Deferred.fromCoroutine(self._start_files()).addErrback(self._start_failed)

    async def _start_files(self) -> None:
        api: ShellApi | None = None
        if self.manhole or self.shell:
            # The shell's modules (conch, pydoc, rlcompleter) load only when a shell
            # is served: a headless container boots without them.
            from ion.core.cc.shell_api import ShellApi

            api = ShellApi(self.container)
        if self.manhole:
            from ion.core.cc.manhole import ManholeServer

            ManholeServer(self.manhole, api, self._history()).setServiceParent(self)
        for path in self.files:
            try:
                if path.endswith(".app"):
                    await self.container.start_app(path)
                elif path.endswith(".rel"):
                    await self.container.start_rel(path)
                else:
                    await run_script(path, self.container)
            except IonError as exc:
                if path in str(exc):
                    raise
                # Say which file the error came from when it does not.
                raise StartupError(f"{path}: {exc}") from exc
        self.container.announce(
            1076, self.container.id, container_id=self.container.id, startup_names=self.files
        )
        if self.ready_file:
            write_ready_file(self.ready_file, self.container)
        log.info(
            "container {id} started: {apps}",
            id=self.container.id,
            apps=", ".join(a.name for a in self.container.apps()),
        )
        if self.shell:
            from ion.core.cc.shell import banner
            from ion.core.cc.shell_api import namespace

            shell = ConsoleShell(
                namespace(api),
                self._history(),
                banner(self.container, "stops the container"),
                self.log_stream if self._log_to_terminal else None,
                self.container.reactor,
            )
            shell.setServiceParent(self)

    def _history(self) -> str | None:
        history = self.config.get("shell.history")
        return str(history) if history else None

    def _start_failed(self, failure: Any) -> None:
        if not self.running:
            # Stopped (SIGINT) while files were starting: what started is stopped.
            log.info("stopped before every file had started: {why}", why=failure.value)
            return
        if isinstance(failure.value, IonError) and not debug_enabled():
            log.critical("{why}", why=failure.value)
        elif isinstance(failure.value, IonError):
            log.failure("{why}", failure, why=failure.value)
        else:
            log.failure("starting {files} failed", failure, files=" ".join(self.files))
        self._fail_exit()

    def _remove_ready_file(self) -> None:
        # Only a ready file: the path may have become something else meanwhile.
        if self.ready_file and read_ready_file(self.ready_file) is not None:
            try:
                os.unlink(self.ready_file)
            except FileNotFoundError:
                pass

    def _failed(self, failure: Any) -> None:
        if self.container.stopping:
            # Asked to stop (SIGTERM, say) while booting: that is a stop, not a failure.
            log.info("stopped while booting: {why}", why=failure.value)
            return
        log.critical(
            "container {id} could not start: {why}", id=self.container.id, why=failure.value
        )
        self._fail_exit()

    def _app_failed(self, why: str) -> None:
        if self.running:  # (the app manager has logged why)
            self._fail_exit()

    def _fail_exit(self) -> None:
        reactor = self.container.reactor
        reactor.addSystemEventTrigger("after", "shutdown", _exit, 1, self.pidfile)
        # A failure can come while twistd is still starting the reactor, when
        # stop() would be lost: stop once it runs (at once if it does).
        reactor.callWhenRunning(reactor.stop)


def debug_enabled() -> bool:
    """Whether C{ION_DEBUG} is set (not empty or 0): errors at boot show their traceback."""
    return os.environ.get("ION_DEBUG", "") not in ("", "0")


class ScriptError(IonError):
    """A boot script raised; names the script and its line."""


async def run_script(path: str | os.PathLike[str], container: Container) -> None:
    """Run the user's boot script C{path} with C{container} and C{cc} in its namespace.

    Top-level C{await} is allowed. This runs the file the user named, as
    C{python FILE} would; nothing else is ever evaluated.
    """
    where = str(path)
    try:
        source = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{where}: cannot read the boot script: {exc}") from None
    namespace: dict[str, Any] = {
        "__name__": "__ion_boot__",
        "__file__": where,
        "container": container,
        "cc": container,
    }
    try:
        code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # noqa: S307 - the user's own boot script
        if result is not None:
            await result
    except SyntaxError as exc:
        raise ScriptError(f"{where}:{exc.lineno}: syntax error: {exc.msg}") from exc
    except (Exception, SystemExit) as exc:
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == where]
        line = f":{frames[-1].lineno}" if frames else ""
        raise ScriptError(
            f"{where}{line}: boot script failed: {type(exc).__name__}: {exc}"
        ) from exc


def write_ready_file(path: str, container: Container) -> None:
    """Write C{path} atomically (a temporary file renamed), so readers never see half of it."""
    text = json.dumps(
        {
            "pid": os.getpid(),
            "container": container.id,
            "sysname": container.sysname,
            "apps": [a.name for a in container.apps()],
            "web": container.web.url if container.web is not None else None,
        }
    )
    # A new file of our own (O_EXCL, never through a link someone planted), renamed.
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o644)  # as a file written plainly would be: launchers may read it
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def read_ready_file(path: str) -> dict[str, Any] | None:
    """The contents of the ready file at C{path}, or None if there is none there
    (nothing, or something that is not a ready file)."""
    try:
        if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 65536:
            return None
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and {"pid", "container", "apps"} <= data.keys() else None


def check_ready_file(path: str) -> None:
    """Refuse a C{--ready-file} path ion could not write, or would write over
    something else: only a ready file of an earlier run is replaced.

    @raise ConfigurationError: naming the path and the reason.
    """
    parent = Path(path).parent
    if not parent.is_dir():
        raise ConfigurationError(f"--ready-file {path}: no directory {str(parent)!r}")
    if os.path.lexists(path) and read_ready_file(path) is None:
        raise ConfigurationError(
            f"--ready-file {path}: exists and is not a ready file; not replacing it"
        )


def _exit(code: int, pidfile: str | None = None) -> None:
    """Exit at once with C{code}. twistd removes its pidfile only after a run that
    ends normally, so C{pidfile} is removed here, when it names this process:
    else the next start of a container in the directory finds it stale."""
    if pidfile:
        try:
            with open(pidfile) as f:
                mine = f.read().strip() == str(os.getpid())
            if mine:
                os.unlink(pidfile)
        except (OSError, ValueError):
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
