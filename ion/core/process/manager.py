"""The process manager: spawns, finds and terminates a container's processes."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from ion.core.config import Config
from ion.core.deadline import ended_within
from ion.core.exception import MessageFormatError, ProcessError, ProcessExit, SpawnError
from ion.core.id import ProcessId, check_name
from ion.core.messaging.message import CONV_ID, SENDER, decode
from ion.core.process.exit import KILLED, SHUTDOWN, of_exception
from ion.core.process.lookup import resolve_process_class
from ion.core.process.process import Process
from ion.core.process.remote import RemoteLinks

if TYPE_CHECKING:
    from ion.core.cc.container import Container

log = Logger()


class ProcessManager(Service):
    """Spawns processes with unique ids and terminates them in reverse order."""

    name = "process"

    def __init__(self, container: Container) -> None:
        self.container = container
        self.processes: dict[str, Process] = {}
        self._numbers = itertools.count(1)
        self._spawning = 0  # spawns under way; stopping lets them end first
        self._spawns_ended: list[Deferred[None]] = []
        self.remote = RemoteLinks(self)  # links and monitors into other containers
        broker: Any = container.exchange.broker  # an IBroker (mypy reads zope methods as unbound)
        broker.on_connection_lost(self._broker_lost)
        broker.on_reconnected(self.remote.reconnected)
        broker.on_returned(self._returned)
        broker.on_consumer_failed(self._consumer_failed)

    def _consumer_failed(self, tag: str, queue: str, error: Exception) -> None:
        """The broker delivers nothing more to consumer C{tag}: its process fails."""
        for proc in list(self.processes.values()):
            if proc.consumes(tag):
                proc.intake_failed(queue, error)

    def _returned(self, exchange: str, key: str, body: bytes) -> None:
        """A request nobody could take came back: fail its caller's call at once."""
        try:
            headers = decode(body).headers
        except MessageFormatError:
            return
        proc = self.processes.get(str(headers.get(SENDER)))
        if proc is not None:
            proc.returned(str(headers.get(CONV_ID)), key)

    def _broker_lost(self, error: Exception) -> None:
        """Fail every open call at once: replies cannot come back over a lost
        connection, and waiting for each deadline would only hide that. Links
        and monitors into other containers end C{noconnection}."""
        log.warn("broker connection lost: {why}; failing open calls", why=error)
        for proc in list(self.processes.values()):
            proc.broker_lost(error)
        self.remote.connection_lost()

    def container_lost(self, container_id: str, epoch: int | None = None) -> int:
        """Epoch C{epoch} of container C{container_id} has ended (None: the
        container is gone): links and monitors made with it end C{noconnection}
        (L{RemoteLinks.container_lost}); how many ended."""
        return self.remote.container_lost(container_id, epoch)

    async def spawn(
        self,
        target: Any,
        name: str | None = None,
        args: dict[str, Any] | None = None,
        config: Config | dict[str, Any] | None = None,
        parent: Process | None = None,
        link: Process | None = None,
        number: int | None = None,
    ) -> Process:
        """Create, initialize and activate a process; return it ACTIVE, linked
        with C{link} if given (from the moment it is ACTIVE). C{number} sets
        the local number of its id (the container's agent is 0); by default
        the next one.

        @raise SpawnError: it could not be created or a hook failed (it is
            terminated again with the exit reason the error makes, which the
            SpawnError carries, and the cause is chained).
        """
        if self.container.stopping:
            raise ProcessError(
                f"container {self.container.id} is stopping; not spawning {target!r}"
            )
        self._spawning += 1
        try:
            return await self._spawn(target, name, args, config, parent, link, number)
        finally:
            self._spawning -= 1
            if not self._spawning:
                ended, self._spawns_ended = self._spawns_ended, []
                for d in ended:
                    d.callback(None)

    async def _spawn(
        self,
        target: Any,
        name: str | None,
        args: dict[str, Any] | None,
        config: Config | dict[str, Any] | None,
        parent: Process | None,
        link: Process | None = None,
        number: int | None = None,
    ) -> Process:
        cls = resolve_process_class(target)
        proc_config = self.container.config
        if isinstance(config, Config):
            proc_config = config
        elif config:
            proc_config = proc_config.merged(config)
        proc = cls(name=name, args=args, config=proc_config)
        check_name(proc.proc_name, "process name")
        local = next(self._numbers) if number is None else number
        pid = ProcessId(proc.proc_name, local, self.container.id)
        proc.attach(self.container, pid)
        proc.parent = parent
        self.processes[str(pid)] = proc
        try:
            await proc.initialize()
            await proc.activate()
        except Exception as e:
            reason = of_exception(e)
            if not isinstance(e, CancelledError | ProcessExit):  # (asked for)
                log.failure("spawn of {pid} failed", pid=str(pid))
            await self._discard(proc, reason)
            raise SpawnError(f"spawn of {pid} ({cls.__name__}) failed: {e}", reason) from e
        if link is not None:
            proc.link(link.id)  # type: ignore[arg-type]
        if parent is not None:
            if parent.winding_down:
                # Its terminate has passed (or is past) the children: nobody
                # would ever terminate this one.
                await self._discard(proc, SHUTDOWN)
                raise SpawnError(
                    f"spawn of {pid}: its parent {parent} terminated meanwhile", SHUTDOWN
                )
            parent.children.append(proc)
        log.debug("spawned {pid}", pid=str(pid))
        return proc

    async def _discard(self, proc: Process, reason: str) -> None:
        try:
            if not proc.terminated:
                await proc.terminate(reason)
        except Exception:
            log.failure("cleanup of {pid} failed", pid=str(proc.id))
        self.processes.pop(str(proc.id), None)

    async def terminate(self, proc_or_id: Process | str, reason: str = SHUTDOWN) -> None:
        """Terminate a process (and its children) with C{reason} and forget it."""
        proc = self._named(proc_or_id)
        try:
            await proc.terminate(reason)
        finally:
            self._forget(proc)

    async def kill(self, proc_or_id: Process | str, reason: str = KILLED) -> None:
        """Kill a process (L{Process.kill}: no terminate hook) and forget it."""
        proc = self._named(proc_or_id)
        try:
            await proc.kill(reason)
        finally:
            self._forget(proc)

    def _named(self, proc_or_id: Process | str) -> Process:
        proc = proc_or_id if isinstance(proc_or_id, Process) else self.find(proc_or_id)
        if proc is None:
            raise ProcessError(f"no process {proc_or_id!r} in container {self.container.id}")
        return proc

    def _forget(self, proc: Process) -> None:
        self.processes.pop(str(proc.id), None)
        if proc.parent is not None:
            _forget(proc.parent.children, proc)

    def find(self, key: str | int) -> Process | None:
        """A process by full id, by local number, or by name (the newest of that name)."""
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            number = int(key)
            for proc in self.processes.values():
                if proc.id is not None and proc.id.local == number:
                    return proc
            return None
        found = self.processes.get(str(key))
        if found is not None:
            return found
        for proc in reversed(list(self.processes.values())):
            if proc.proc_name == key:
                return proc
        return None

    def stopService(self) -> Deferred[None]:
        """Terminate every process, newest first (children go with their parents)."""
        super().stopService()
        return Deferred.fromCoroutine(self._terminate_all())

    async def _terminate_all(self) -> None:
        if self._spawning:
            # A process is terminated once its spawn has ended (its on_init and
            # on_activate ran), not in the middle of it; a hung one for at most
            # container.terminate_timeout.
            timeout = float(self.container.config.get("container.terminate_timeout", 10.0))
            ended: Deferred[None] = Deferred()
            self._spawns_ended.append(ended)
            if not await ended_within(ended, timeout, self.container.reactor):
                log.warn("{n} spawns still under way after {t}s; terminating anyway",
                         n=self._spawning, t=timeout)  # fmt: skip
        for proc in reversed(list(self.processes.values())):
            if str(proc.id) in self.processes and proc.parent is None:
                try:
                    await self.terminate(proc)
                except Exception:
                    log.failure("terminating {pid} failed", pid=str(proc.id))
        for proc in reversed(list(self.processes.values())):
            try:
                await self.terminate(proc)
            except Exception:
                log.failure("terminating {pid} failed", pid=str(proc.id))


def _forget(children: list[Process], proc: Process) -> None:
    """Take C{proc} out of C{children}. Children end newest first (a parent's
    terminate goes backwards), so look from the end: forgetting them all stays
    linear, where C{remove} would make it quadratic."""
    for i in range(len(children) - 1, -1, -1):
        if children[i] is proc:
            del children[i]
            return
