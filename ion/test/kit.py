"""L{IonKit}: the containers of one test system, started and torn down without leftovers.

Both the pytest fixtures (L{ion.test.plugin}) and the trial base class
(L{ion.test.trial}) are thin layers over it; use it directly from any other
harness:

    kit = IonKit(broker="local", root="path/holding/res")
    container = await kit.start_container(rel="res/deploy/bank.rel")
    ...
    await kit.stop()            # raises LeftoversError if anything stayed behind
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ion.core.cc.container import Container
from ion.core.config import load_config, merge
from ion.core.process.process import Process
from ion.test.brokers import BrokerFactory, BrokerSpec, parse_broker, unique_sysname
from ion.test.leaks import (
    LeftoversError,
    ReactorState,
    pending_calls,
    reactor_state,
    wait_until_clean,
)

ProcessDescription = Mapping[str, Any] | str | type


def describe_process(desc: ProcessDescription) -> tuple[Any, str | None, dict[str, Any], Any]:
    """C{(target, name, args, config)} from a process description.

    A description is the original's dict C{{'name', 'module', 'class', 'spawnargs'}}
    (C{target: 'module:Class'} may stand for module and class, C{args} for
    spawnargs, and C{config} is optional), a C{'module:Class'} string or a class:
    the layout .app and .rel files share (README.txt, "Process entries").
    """
    if isinstance(desc, str | type):
        return desc, None, {}, None
    if "target" in desc:
        target = desc["target"]
    elif "module" in desc and "class" in desc:
        target = f"{desc['module']}:{desc['class']}"
    else:
        raise ValueError(f"process description {dict(desc)!r} needs 'module' and 'class'")
    args = dict(desc.get("spawnargs") or desc.get("args") or {})
    return target, desc.get("name"), args, desc.get("config")


class IonKit:
    """Starts containers of one test system and tears them all down.

    @param broker: C{local}, C{amqp}, an AMQP URL or a L{BrokerSpec}.
    @param sysname: the system's name (default: a fresh C{test-<hex>}).
    @param root: the directory holding C{res/} (default: the working directory).
    @param config: config every container gets, over the project's C{res/config}.
    @param check_leftovers: make L{stop} raise L{LeftoversError} for leftovers.
    @param leftover_timeout: how long L{stop} waits for sockets and timers to go.
    """

    def __init__(
        self,
        *,
        reactor: Any = None,
        broker: str | BrokerSpec | None = None,
        sysname: str | None = None,
        root: str | os.PathLike[str] | None = None,
        config: Mapping[str, Any] | None = None,
        check_leftovers: bool = True,
        leftover_timeout: float = 2.0,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415 - no reactor at import time
        self.reactor = reactor
        self.broker = parse_broker(broker)
        self.sysname = sysname or unique_sysname()
        self.root = Path(root) if root is not None else Path.cwd()
        self.config = dict(config or {})
        self.check_leftovers = check_leftovers
        self.leftover_timeout = leftover_timeout
        self.containers: list[Container] = []
        self.brokers = BrokerFactory(self.broker, reactor)
        self._before: ReactorState = reactor_state(reactor)
        self._stopped = False

    def __repr__(self) -> str:
        return f"<IonKit {self.sysname} on {self.broker}, {len(self.containers)} containers>"

    @property
    def container(self) -> Container:
        """The first container started."""
        if not self.containers:
            raise LookupError("no container started yet")
        return self.containers[0]

    def container_config(self, overrides: Mapping[str, Any] | None = None) -> Any:
        """The project's config (C{res/config} under L{root}, C{ION_*} variables) with overrides."""
        cli = merge(self.config, overrides or {})
        cli = merge(cli, {"pack": {"root": str(self.root)}})
        return load_config(root=self.root, environ=os.environ, cli_args=cli)

    async def start_container(
        self,
        *,
        apps: Iterable[str | os.PathLike[str]] = (),
        rel: str | os.PathLike[str] | None = None,
        processes: Sequence[ProcessDescription] = (),
        config: Mapping[str, Any] | None = None,
        sysname: str | None = None,
        container_id: str | None = None,
    ) -> Container:
        """Start a container of this system, then its release, apps and processes, in that order.

        C{apps} are names or C{.app} paths; C{rel} a name or a C{.rel} path
        (relative paths are taken from L{root}).
        Every container of a kit shares its broker; on RabbitMQ a C{sysname} other
        than the kit's is shared with anyone who uses that name.
        """
        if self._stopped:
            raise RuntimeError(f"{self!r} has been stopped")
        container = Container(
            reactor=self.reactor,
            config=self.container_config(config),
            container_id=container_id or f"{self.sysname}-c{len(self.containers) + 1}",
            sysname=sysname or self.sysname,
            broker=self.brokers.connection(),
        )
        self.containers.append(container)
        await container.start()
        if rel is not None:
            await container.start_rel(self._path(rel, ".rel"))
        for app in apps:
            await container.start_app(self._path(app, ".app"))
        if processes:
            await self.spawn_processes(processes, container=container)
        return container

    def _path(self, target: str | os.PathLike[str], suffix: str) -> str | os.PathLike[str]:
        """A relative file path taken from L{root} (a bare app or release name stays)."""
        text = os.fspath(target)
        if isinstance(target, str) and not text.endswith(suffix) and os.sep not in text:
            return target
        path = Path(text)
        return path if path.is_absolute() else self.root / path

    async def spawn_processes(
        self,
        descriptions: Sequence[ProcessDescription],
        container: Container | None = None,
        parent: Process | None = None,
    ) -> list[Process]:
        """Spawn each described process (see L{describe_process}), in order; return them."""
        container = container or self.container
        spawned = []
        for desc in descriptions:
            target, name, args, config = describe_process(desc)
            if parent is not None:
                spawned.append(await parent.spawn_child(target, name=name, args=args))
            else:
                spawned.append(await container.spawn(target, name=name, args=args, config=config))
        return spawned

    def find(self, name_or_pid: str | int) -> Process | None:
        """A process of any of this kit's containers, by id, local number or name."""
        for container in self.containers:
            found = container.proc_manager.find(name_or_pid)
            if found is not None:
                return found
        return None

    async def stop(self) -> None:
        """Stop every container (newest first), close the broker connections the test
        left open, remove what the system declared on the broker, and raise
        L{LeftoversError} if connections, queues, delayed calls or sockets stayed.

        Leftovers are what the reactor has beyond what it had when this kit was
        made, so kits alive at once must stop in reverse order of their making.
        A delayed call of the test's still pending once the containers have
        stopped is a leftover whether it is still there at the end or fires
        meanwhile; only its cancelling clears it.

        Every container, connection, queue and exchange is tried whatever failed
        before it; what could not be closed or deleted is reported with the
        rest, even without C{check_leftovers}, as it stays on the broker.
        """
        if self._stopped:
            return
        self._stopped = True
        test_calls = pending_calls(self.reactor, self._before)
        errors: list[BaseException] = []
        for container in reversed(self.containers):
            try:
                await container.stop()
            except Exception as e:  # keep going: the rest must stop too
                errors.append(e)
        # Taken before anything else gets a reactor turn: a timer of the test's that
        # fires from now on ran after the test (see wait_until_clean). Timers made
        # while the containers stopped are the shutdown's own, not the test's.
        watched = test_calls & pending_calls(self.reactor, self._before)
        left_open, failed = await self.brokers.close_connections()
        stale, failed_cleanup = await self.brokers.cleanup(self.sysname)
        failed += failed_cleanup
        if errors:
            for note in failed:
                errors[0].add_note(f"and then: {note}")
            raise errors[0]
        found = list(failed)
        if self.check_leftovers:
            found += left_open + stale
            found += await wait_until_clean(
                self.reactor, self._before, self.leftover_timeout, watched=watched
            )
        if found:
            raise LeftoversError(found)
