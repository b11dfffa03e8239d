"""The C{twistd cc} command: options and the service it runs.

    twistd -n cc [options] [FILE ...]

C{FILE}s are started in order once the container (and its C{ioncore} app) is
ready: a C{.app} with L{Container.start_app}, a C{.rel} with
L{Container.start_rel}, and a C{.py} runs as a boot script with C{container}
(also C{cc}) in its namespace; it may C{await} at top level. When all have
started, C{--ready-file PATH} is written (atomically), for launchers to wait on.
A container that cannot boot, or a file that cannot start, logs one line
saying why (the file, and the field or line) and exits with status 1, after
stopping whatever had started.

With stdin and stdout on a terminal and without C{-n/--no_shell}, the shell
(L{ion.core.cc.shell}) opens on it once every file has started; Ctrl-D there
stops the container. Its history is C{--history PATH} (config key
C{shell.history}, default C{~/.cchistory}); C{-i/--no-history} (or
C{shell.history: false}) keeps none. C{--manhole PATH} serves the same shell
on a UNIX socket (mode 0600) for C{ion-shell PATH} to attach to.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

import ion
from ion.core.cc.console import ConsoleShell, LogStream
from ion.core.cc.container import Container
from ion.core.config import Config, config_layers, merge, parse_args_option, value_sources
from ion.core.exception import ConfigurationError, IonError, StartupError
from ion.core.log import redact_url
from ion.core.messaging.connect import broker_url

if TYPE_CHECKING:
    from ion.core.cc.shell_api import ShellApi

log = Logger()


class Options(usage.Options):
    """Options of C{twistd cc}."""

    synopsis = "[options] [FILE.app|FILE.rel|FILE.py ...]"
    longdesc = "Run an ion capability container, starting the apps and releases given."

    optParameters = [
        [
            "broker",
            None,
            None,
            "Broker: 'local' (embedded, the default) or amqp[s]://host:port/vhost.",
        ],
        ["broker_host", "h", None, "RabbitMQ host (implies amqp://)."],
        ["broker_port", "p", None, "RabbitMQ port (default 5672, amqps 5671)."],
        ["broker_vhost", "v", None, "RabbitMQ virtual host (default /)."],
        ["broker_heartbeat", None, None, "AMQP heartbeat in seconds (default 10)."],
        [
            "broker_credfile",
            None,
            None,
            "File with the broker user and password (user:password, two lines, or YAML).",
        ],
        ["broker_ca", None, None, "amqps: CA certificate file."],
        ["broker_cert", None, None, "amqps: client certificate file."],
        ["broker_key", None, None, "amqps: client key file."],
        ["sysname", "s", None, "The system this container joins (default: its own id)."],
        ["args", "a", None, "Config overrides: k=v,k2=v2 or a YAML/JSON mapping."],
        ["config", None, None, "A YAML config file layered over res/config."],
        ["container-id", None, None, "Override the container id (default: host and pid)."],
        ["log-format", None, None, "Log output: text or json."],
        ["ready-file", None, None, "Write this file once every FILE has started."],
        ["manhole", None, None, "Serve the shell on this UNIX socket (mode 0600), for ion-shell."],
        ["history", None, None, "The shell's history file (default ~/.cchistory)."],
    ]
    optFlags = [
        ["no_shell", "n", "Run headless, without the interactive shell."],
        ["no-history", "i", "Keep no shell history."],
        ["show-config", None, "Print the effective configuration (and sources) and exit."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []

    def opt_version(self) -> None:
        """Print ion's version and exit."""
        print(f"ion {ion.__version__}")
        sys.exit(0)

    def opt_lockfile(self, path: str) -> None:
        """Alias of --ready-file."""
        self["ready-file"] = path

    def parseArgs(self, *files: str) -> None:
        self.files = list(files)

    def postOptions(self) -> None:
        try:
            cli: dict[str, Any] = parse_args_option(self["args"]) if self["args"] else {}
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from e
        if self["sysname"]:
            cli["sysname"] = self["sysname"]
        try:
            broker = broker_options(self)
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from e
        if broker:
            cli["broker"] = merge(cli.get("broker", {}), broker)
        if self["log-format"]:
            cli.setdefault("logging", {})["format"] = self["log-format"]
        if self["history"] or self["no-history"]:
            cli.setdefault("shell", {})["history"] = not self["no-history"] and self["history"]
        try:
            layers = config_layers(
                root=os.getcwd(), environ=os.environ, config_file=self["config"], cli_args=cli
            )
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from e
        data: dict[str, Any] = {}
        for _name, layer in layers:
            data = merge(data, layer)
        self.config = Config(data)
        if self["show-config"]:
            print(show_config(layers), end="")
            sys.exit(0)
        try:
            broker_url(self.config)
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from e
        for path in self.files:
            if not path.endswith((".app", ".rel", ".py")):
                raise usage.UsageError(f"{path}: expected a .app, .rel or .py file")
            if not os.path.exists(path):
                raise usage.UsageError(f"{path}: no such file")


def broker_options(options: Options) -> dict[str, Any]:
    """The C{broker} config the broker options ask for (empty when none is given)."""
    broker: dict[str, Any] = {}
    if options["broker"]:
        broker["url"] = options["broker"]
    if options["broker_host"] or options["broker_port"] or options["broker_vhost"]:
        base = options["broker"] or "amqp://127.0.0.1/"
        if base == "local":
            raise ConfigurationError("--broker local cannot take a host, port or vhost")
        scheme, _, rest = base.partition("://")
        creds, _, hostpart = rest.rpartition("@")
        netloc, _, vhost = hostpart.partition("/")
        host, _, port = netloc.partition(":")
        host = options["broker_host"] or host or "127.0.0.1"
        port = options["broker_port"] or port
        vhost = options["broker_vhost"] if options["broker_vhost"] is not None else vhost
        vhost = quote(vhost.lstrip("/") if vhost != "/" else "/", safe="")
        broker["url"] = (
            f"{scheme}://{creds + '@' if creds else ''}{host}{':' + port if port else ''}/{vhost}"
        )
    if options["broker_heartbeat"]:
        try:
            broker["heartbeat"] = int(options["broker_heartbeat"])
        except ValueError:
            raise ConfigurationError("--broker_heartbeat: expected whole seconds") from None
    if options["broker_credfile"]:
        broker.update(read_credfile(options["broker_credfile"]))
    for key in ("ca", "cert", "key"):
        if options[f"broker_{key}"]:
            broker[key] = options[f"broker_{key}"]
    return broker


def read_credfile(path: str) -> dict[str, str]:
    """Broker credentials from a file: C{user:password}, two lines, or a YAML mapping
    with C{username} and C{password}. They never reach the command line."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigurationError(f"--broker_credfile {path}: {e.strerror}") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and ":" in lines[0] and not lines[0].startswith(("username", "password")):
        user, _, password = lines[0].partition(":")
        return {"username": user, "password": password}
    if len(lines) == 2 and ":" not in lines[0]:
        return {"username": lines[0], "password": lines[1]}
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and {"username", "password"} <= set(data):
        return {"username": str(data["username"]), "password": str(data["password"])}
    raise ConfigurationError(
        f"--broker_credfile {path}: expected user:password, two lines, or username/password keys"
    )


class ContainerRunner(MultiService):
    """The top service twistd runs: one container, its boot files, and the exit status."""

    def __init__(
        self,
        container: Container,
        config: Config,
        files: list[str],
        ready_file: str | None = None,
        shell: bool = False,
        manhole: str | None = None,
    ) -> None:
        super().__init__()
        self.container = container
        self.config = config
        self.files = files
        self.ready_file = ready_file
        self.shell = shell
        self.manhole = manhole
        self.log_stream = LogStream(sys.stdout)
        container.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        # twistd starts logging after makeService, from the application's
        # ILogObserver component: install ion's formatting and levels there.
        set_component = getattr(parent, "setComponent", None)
        if set_component is not None:
            from ion.core.log import make_observer

            set_component(ILogObserver, make_observer(self.config, self.log_stream))
        super().setServiceParent(parent)

    def startService(self) -> None:
        # A ready file left by an earlier run must not tell a launcher we are up.
        self._remove_ready_file()
        super().startService()
        self.container.when_ready().addCallbacks(self._ready, self._failed)

    def stopService(self) -> Deferred[None]:
        self._remove_ready_file()
        d = super().stopService()
        d.addCallback(self._stopped)
        return d

    def _stopped(self, result: Any) -> Any:
        # SIGINT/SIGTERM is how a container is asked to stop: once it has
        # stopped cleanly, exit 0 rather than have twistd re-raise the signal.
        reactor = self.container.reactor
        if getattr(reactor, "_exitSignal", None) is not None:
            reactor._exitSignal = None
        return result

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
                self.log_stream,
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
        if isinstance(failure.value, IonError):
            log.critical("{why}", why=failure.value)
        else:
            log.failure("starting {files} failed", failure, files=" ".join(self.files))
        self._fail_exit()

    def _remove_ready_file(self) -> None:
        if self.ready_file:
            try:
                os.unlink(self.ready_file)
            except FileNotFoundError:
                pass

    def _failed(self, failure: Any) -> None:
        log.critical(
            "container {id} could not start: {why}", id=self.container.id, why=failure.value
        )
        self._fail_exit()

    def _fail_exit(self) -> None:
        reactor = self.container.reactor
        reactor.addSystemEventTrigger("after", "shutdown", _exit, 1)
        # A failure can come while twistd is still starting the reactor, when
        # stop() would be lost: stop once it runs (at once if it does).
        reactor.callWhenRunning(reactor.stop)


class ScriptError(IonError):
    """A boot script raised; names the script and its line."""


async def run_script(path: str | os.PathLike[str], container: Container) -> None:
    """Run the user's boot script C{path} with C{container} and C{cc} in its namespace.

    Top-level C{await} is allowed. This runs the file the user named, as
    C{python FILE} would; nothing else is ever evaluated.
    """
    where = str(path)
    source = Path(path).read_text(encoding="utf-8")
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
    except Exception as exc:
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
        }
    )
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


_SECRET_KEY = re.compile(r"pass|secret|token|credential", re.IGNORECASE)


def show_config(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> str:
    """The effective config as YAML, each value commented with the layer it came from."""
    import yaml

    sources = value_sources(layers)
    merged: dict[str, Any] = {}
    for _name, layer in layers:
        merged = merge(merged, layer)
    lines: list[str] = []

    def scalar(value: Any) -> str:
        return (
            yaml.safe_dump(value, default_flow_style=True, width=10**6)
            .strip()
            .removesuffix("\n...")
        )

    def walk(node: Mapping[str, Any], prefix: str, indent: str) -> None:
        for key in sorted(node, key=str):
            value, dotted = node[key], f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                lines.append(f"{indent}{scalar(key)}:")
                walk(value, dotted + ".", indent + "  ")
            else:
                source = sources.get(dotted, (None, "?"))[1]
                if _SECRET_KEY.search(str(key)):
                    value = "***"
                elif isinstance(value, str):
                    value = redact_url(value)
                lines.append(f"{indent}{scalar(key)}: {scalar(value)}  # {source}")

    walk(merged, "", "")
    return "\n".join(lines) + "\n"


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def makeService(options: Options) -> ContainerRunner:
    """Build the container for C{twistd cc}."""
    config: Config = options.config
    container = Container(config=config, container_id=options["container-id"])
    shell = not options["no_shell"] and os.isatty(0) and os.isatty(1)
    return ContainerRunner(
        container, config, options.files, options["ready-file"], shell, options["manhole"]
    )
