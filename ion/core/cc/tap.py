"""The C{twistd cc} command: its options, and L{makeService} (the service it runs
is L{ion.core.cc.runner.ContainerRunner}).

    twistd -n cc [options] [FILE ...]

A C{FILE} named without a directory that is not in the working directory
(C{hello.rel}, C{hello.app}) is looked up in C{pack.rel_path} / C{pack.app_path},
then among ion's own (L{ion.core.pack.places}).
C{FILE}s are started in order once the container (and its C{ioncore} app) is
ready: a C{.app} with L{Container.start_app}, a C{.rel} with
L{Container.start_rel}, and a C{.py} runs as a boot script with C{container}
(also C{cc}) in its namespace; it may C{await} at top level. When all have
started, C{--ready-file PATH} is written (atomically), for launchers to wait on.
A configuration or file error found before anything starts (bad YAML in
C{ion.yml}, C{--config} or C{-a}, a missing or malformed C{.app}/C{.rel}, an
unknown field, a missing app) is one line on stderr naming the file and field,
exit status 1, no traceback (C{ION_DEBUG=1} adds it). A container that cannot
boot, or a file that cannot start, logs one line saying why (the file, and
the field or line) and exits with status 1, after stopping whatever had
started.

With stdin and stdout on a terminal and without C{-n/--no_shell}, the shell
(L{ion.core.cc.shell}) opens on it once every file has started; Ctrl-D there
stops the container. Its history is C{--history PATH} (config key
C{shell.history}, default C{~/.cchistory}); C{-i/--no-history} (or
C{shell.history: false}) keeps none. C{--manhole PATH} serves the same shell
on a UNIX socket (mode 0600) for C{ion-shell PATH} to attach to. C{--web
HOST:PORT} (C{web.listen}; PORT alone: 127.0.0.1) serves the observer's web
view (L{ion.core.observe.web}). C{--http HOST:PORT} (C{gateway.http}) runs the
HTTP gateway there (L{ion.gateway}): it starts C{gateway.app} after the FILEs
unless one of them starts it already.

The log goes where twistd sends a plugin's: stdout under C{-n}, C{-l FILE}
(rotated as twistd rotates, also on SIGUSR1), or C{twistd.log} for a daemon;
in C{logging.format} (C{--log-format json} too). A daemon's container is made
after twistd forks, so its id and ready file name the daemon's own pid.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

from twisted.logger import Logger
from twisted.python import usage

import ion
from ion.core.cc.container import Container
from ion.core.cc.runner import ContainerRunner, check_ready_file, debug_enabled
from ion.core.config import (
    Config,
    check_settings,
    config_layers,
    merge,
    parse_args_option,
    value_sources,
)
from ion.core.exception import ConfigurationError, IonError
from ion.core.id import InvalidNameError, check_name, check_sysname
from ion.core.log import (
    FORMATS,
    MASK,
    is_secret_key,
    level_predicate,
    redact_url,
    twistd_log_file,
)
from ion.core.messaging.connect import amqp_parameters, queue_type
from ion.core.pack.appfile import AppDefinition, AppRef, load_release
from ion.core.pack.places import find_named
from ion.core.pack.resolve import FileAppLoader, load_app_file, plan_release, resolve
from ion.core.security.identity import shell_user
from ion.core.security.policy import load_policy
from ion.core.security.signing import signer_from_config

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
        ["config", None, None, "A YAML config file layered over res/config."],
        [
            "pack-root",
            None,
            None,
            "The directory holding res/apps, res/deploy, res/config (default: here).",
        ],
        ["container-id", None, None, "Override the container id (default: host and pid)."],
        ["log-format", None, None, "Log output: text or json."],
        ["ready-file", None, None, "Write this file once every FILE has started."],
        ["manhole", None, None, "Serve the shell on this UNIX socket (mode 0600), for ion-shell."],
        ["history", None, None, "The shell's history file (default ~/.cchistory)."],
        ["web", None, None, "Serve the observer's web view on HOST:PORT (PORT: 127.0.0.1)."],
        ["http", None, None, "Run the HTTP gateway (gateway.app) on HOST:PORT (PORT: 127.0.0.1)."],
    ]
    optFlags = [
        ["no_shell", "n", "Run headless, without the interactive shell."],
        ["no-history", "i", "Keep no shell history."],
        ["show-config", None, "Print the effective configuration (and sources) and exit."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []
        self["args"] = []

    def opt_args(self, text: str) -> None:
        """Config overrides: k=v,k2=v2 or a YAML/JSON mapping (may be repeated)."""
        self["args"].append(text)

    opt_a = opt_args

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
            self._check_options()
        except usage.UsageError as e:
            if getattr(self, "parent", None) is None:
                raise  # parsed on its own (tests, tools): the caller decides
            boot_error(e)

    def _check_options(self) -> None:
        cli: dict[str, Any] = {}
        try:
            for text in self["args"]:  # each -a over the ones before
                cli = merge(cli, parse_args_option(text))
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
        if self["pack-root"]:
            if not os.path.isdir(self["pack-root"]):
                raise usage.UsageError(f"--pack-root {self['pack-root']}: not a directory")
            cli = merge(cli, {"pack": {"root": os.path.abspath(self["pack-root"])}})
        if self["log-format"]:
            cli.setdefault("logging", {})["format"] = self["log-format"]
        if self["web"] is not None:
            cli.setdefault("web", {})["listen"] = self["web"]
        if self["http"] is not None:
            cli.setdefault("gateway", {})["http"] = self["http"]
        if self["history"] or self["no-history"]:
            cli.setdefault("shell", {})["history"] = not self["no-history"] and self["history"]
        try:
            layers = config_layers(
                root=self["pack-root"] or os.getcwd(),
                environ=os.environ,
                config_file=self["config"],
                cli_args=cli,
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
            check_settings(layers)
            _check_names_and_logging(self.config, self["container-id"])
            amqp_parameters(self.config)
            queue_type(self.config)
            load_policy(self.config)  # read again by the container: a bad file stops it here
            shell_user(self.config)
            signer_from_config(self.config, time.time)  # a signing key that will not load
            if self["ready-file"]:
                check_ready_file(self["ready-file"])
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from e
        if self["broker"] and "@" in self["broker"].partition("://")[2]:
            log.warn("--broker: credentials in a URL show in `ps`; put them in "
                     "--broker_credfile or ION_BROKER__USERNAME/PASSWORD")  # fmt: skip
        for i, path in enumerate(self.files):
            if not path.endswith((".app", ".rel", ".py")):
                raise usage.UsageError(f"{path}: expected a .app, .rel or .py file")
            if not os.path.exists(path):
                # A bare NAME.rel / NAME.app: the user's res/deploy or res/apps, then ion's own.
                found = find_named(path, self.config)
                if found is None:
                    raise usage.UsageError(f"{path}: no such file")
                self.files[i] = str(found)
        if self["http"] is not None:
            self.files = with_gateway(self.files, self.config)
        try:
            check_boot_files(self.files, self.config)
        except IonError as e:
            raise usage.UsageError(str(e)) from e


def with_gateway(files: list[str], config: Config) -> list[str]:
    """C{files} with C{gateway.app} last, unless one of them starts the gateway already
    (C{--http}: the gateway app runs, on the address given).

    @raise usage.UsageError: a file cannot be read, or no gateway.app is found.
    """
    try:
        for path in files:
            if path.endswith(".rel") and any(
                entry.name == "gateway" for entry in load_release(path).apps
            ):
                return files
            if path.endswith(".app") and load_app_file(Path(path)).name == "gateway":
                return files
    except IonError as e:
        raise usage.UsageError(str(e)) from e
    found = find_named("gateway.app", config)
    if found is None:
        raise usage.UsageError("--http: no gateway.app found (pack.app_path, then ion's own)")
    return [*files, str(found)]


def boot_error(error: Exception) -> NoReturn:
    """Refuse to start: one line on stderr naming what is wrong, exit status 1.
    With C{ION_DEBUG=1} in the environment the traceback comes first."""
    if debug_enabled():
        traceback.print_exception(error)
    sys.stderr.write(f"twistd cc: {error}\n")
    sys.exit(1)


def check_boot_files(files: Sequence[str], config: Config) -> None:
    """Read every C{.app} and C{.rel} FILE and resolve the apps it needs, as the
    container will: a malformed file, an unknown field or a missing app is found
    before anything starts. (Imports and starts are checked as they start.)

    @raise IonError: naming the file and the field or line.
    """
    root = Path(config.get("pack.root") or os.getcwd())
    files_loader = FileAppLoader.from_config(config, root)
    given: dict[str, AppDefinition] = {}  # apps given as FILEs, for the FILEs after them

    def load(name: str) -> AppDefinition:
        return given[name] if name in given else files_loader(name)

    resolve(["ioncore"], load, "the container")  # what every container starts first
    for path in files:
        if path.endswith(".rel"):
            plan_release(load_release(path), load)
        elif path.endswith(".app"):
            app = load_app_file(Path(path))
            given.setdefault(app.name, app)
            resolve([AppRef(app.name)], load, f"app {app.name!r} ({path})")


def _check_names_and_logging(config: Config, container_id: str | None) -> None:
    """What the container checks as it is built, checked before: a usage error
    instead of a traceback."""
    try:
        if container_id is not None:
            check_name(container_id, "--container-id")
        if config.get("sysname") is not None:
            check_sysname(config.get("sysname"))
    except InvalidNameError as e:
        raise ConfigurationError(str(e)) from None
    if config.get("logging.format", "text") not in FORMATS:
        raise ConfigurationError(
            f"logging.format: {config.get('logging.format')!r} is not one of {', '.join(FORMATS)}"
        )
    level_predicate(config)
    if config.get("web.listen") is not None:
        from ion.core.observe.web.service import parse_listen

        parse_listen(config.get("web.listen"))
    if config.get("gateway.http") is not None:
        from ion.core.observe.web.service import parse_listen

        parse_listen(config.get("gateway.http"), "gateway.http (--http)")
    for key in ("pack.app_path", "pack.rel_path"):
        paths = config.get(key)
        if paths is not None and not (
            isinstance(paths, str)
            or (isinstance(paths, list) and all(isinstance(p, str) for p in paths))
        ):
            raise ConfigurationError(
                f"{key}: expected a directory or a list of them, not {paths!r}"
            )


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

    from ion.core.safe_yaml import load_yaml

    try:
        data = load_yaml(text)
    except yaml.YAMLError:  # YAMLRefused too
        data = None
    if isinstance(data, dict) and {"username", "password"} <= set(data):
        return {"username": str(data["username"]), "password": str(data["password"])}
    raise ConfigurationError(
        f"--broker_credfile {path}: expected user:password, two lines, or username/password keys"
    )


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
                if is_secret_key(key):
                    value = MASK
                elif isinstance(value, str):
                    value = redact_url(value)
                elif isinstance(value, list):  # broker.url: a cluster's nodes
                    value = [redact_url(v) if isinstance(v, str) else v for v in value]
                lines.append(f"{indent}{scalar(key)}: {scalar(value)}  # {source}")

    walk(merged, "", "")
    return "\n".join(lines) + "\n"


def makeService(options: Options) -> ContainerRunner:
    """Build the container for C{twistd cc}; it takes SIGINT and SIGTERM (see L{ContainerRunner})."""
    config: Config = options.config
    twistd = getattr(options, "parent", None) or {}  # twistd's own options (-n, -l, --syslog)
    nodaemon = bool(twistd.get("nodaemon", True))
    syslog = bool(twistd.get("syslog"))
    log_file = None if syslog else twistd_log_file(twistd.get("logfile"), nodaemon)
    shell = not options["no_shell"] and nodaemon and os.isatty(0) and os.isatty(1)
    return ContainerRunner(
        lambda: Container(config=config, container_id=options["container-id"]),
        config,
        options.files,
        options["ready-file"],
        shell,
        options["manhole"],
        take_signals=True,
        log_file=None if log_file is sys.stdout else log_file,
        own_logging=not syslog,
        pidfile=twistd.get("pidfile") or None,
    )
