"""The C{twistd cc} command: options and the service it runs.

    twistd -n cc [options] [FILE ...]

C{FILE}s (C{.app}, C{.rel}, C{.py}) are started in order once the container is
ready. A container that cannot boot logs why and exits with status 1.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.application.service import MultiService
from twisted.logger import ILogObserver, Logger
from twisted.python import usage

import ion
from ion.core.cc.container import Container
from ion.core.config import Config, load_config, parse_args_option
from ion.core.exception import ConfigurationError

log = Logger()


class Options(usage.Options):
    """Options of C{twistd cc}."""

    synopsis = "[options] [FILE.app|FILE.rel|FILE.py ...]"
    longdesc = "Run an ion capability container, starting the apps and releases given."

    optParameters = [
        ["broker", None, None, "Broker: 'local' (embedded, the default)."],
        ["sysname", "s", None, "The system this container joins (default: its own id)."],
        ["args", "a", None, "Config overrides: k=v,k2=v2 or a YAML/JSON mapping."],
        ["config", None, None, "A YAML config file layered over res/config."],
        ["container-id", None, None, "Override the container id (default: host and pid)."],
        ["log-format", None, None, "Log output: text or json."],
    ]
    optFlags = [
        ["no_shell", "n", "Run headless, without the interactive shell."],
        ["show-config", None, "Print the effective configuration and exit."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self.files: list[str] = []

    def opt_version(self) -> None:
        """Print ion's version and exit."""
        print(f"ion {ion.__version__}")
        sys.exit(0)

    def parseArgs(self, *files: str) -> None:
        self.files = list(files)

    def postOptions(self) -> None:
        try:
            cli: dict[str, Any] = parse_args_option(self["args"]) if self["args"] else {}
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from e
        if self["sysname"]:
            cli["sysname"] = self["sysname"]
        if self["broker"]:
            cli.setdefault("broker", {})["url"] = self["broker"]
        if self["log-format"]:
            cli.setdefault("logging", {})["format"] = self["log-format"]
        try:
            self.config = load_config(
                root=os.getcwd(), environ=os.environ, config_file=self["config"], cli_args=cli
            )
        except ConfigurationError as e:
            raise usage.UsageError(str(e)) from e
        if self["show-config"]:
            import yaml

            print(yaml.safe_dump(self.config.as_dict(), sort_keys=True), end="")
            sys.exit(0)
        url = str(self.config.get("broker.url", "local"))
        if url != "local":
            raise usage.UsageError(
                f"--broker {url.split('://')[0]}://...: only the embedded broker ('local') "
                "is available in this version"
            )
        for path in self.files:
            if not path.endswith((".app", ".rel", ".py")):
                raise usage.UsageError(f"{path}: expected a .app, .rel or .py file")
            if not os.path.exists(path):
                raise usage.UsageError(f"{path}: no such file")


class ContainerRunner(MultiService):
    """The top service twistd runs: one container, its boot files, and the exit status."""

    def __init__(self, container: Container, config: Config, files: list[str]) -> None:
        super().__init__()
        self.container = container
        self.config = config
        self.files = files
        container.setServiceParent(self)

    def setServiceParent(self, parent: Any) -> None:
        # twistd starts logging after makeService, from the application's
        # ILogObserver component: install ion's formatting and levels there.
        set_component = getattr(parent, "setComponent", None)
        if set_component is not None:
            from ion.core.log import make_observer

            set_component(ILogObserver, make_observer(self.config, sys.stdout))
        super().setServiceParent(parent)

    def startService(self) -> None:
        super().startService()
        self.container.when_ready().addCallbacks(self._ready, self._failed)

    def _ready(self, _: object) -> None:
        if self.files:
            log.error("starting files needs the app manager: {files}", files=self.files)
            self._fail_exit()

    def _failed(self, failure: Any) -> None:
        log.critical(
            "container {id} could not start: {why}", id=self.container.id, why=failure.value
        )
        self._fail_exit()

    def _fail_exit(self) -> None:
        reactor = self.container.reactor
        reactor.addSystemEventTrigger("after", "shutdown", _exit, 1)
        reactor.stop()


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def makeService(options: Options) -> ContainerRunner:
    """Build the container for C{twistd cc}."""
    config: Config = options.config
    container = Container(config=config, container_id=options["container-id"])
    return ContainerRunner(container, config, options.files)
