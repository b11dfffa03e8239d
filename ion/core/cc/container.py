"""The capability container: a tree of Twisted services hosting ion processes.

Children, started in this order and stopped one after another in reverse: the
exchange manager (broker connection and the system's exchange), the process
manager, the app manager (which starts the C{ioncore} app at boot) and, when
C{web.listen} is set, the observer's web view (L{ion.core.observe.web}), which
listens once the apps have booted. Several containers can share one reactor.
"""

from __future__ import annotations

import itertools
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, cast

from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.cc.agent import ContainerAgent
from ion.core.config import DEFAULTS, Config
from ion.core.deadline import ended_within
from ion.core.drops import Drops, from_config
from ion.core.exception import ConfigurationError, StartupError
from ion.core.id import check_name, check_sysname, default_container_id
from ion.core.messaging import secure
from ion.core.messaging.broker import IBroker
from ion.core.messaging.exchange import ExchangeManager
from ion.core.observe.hub import EventHub
from ion.core.observe.tap import DEFAULT_SIZE as DEFAULT_TAP_SIZE
from ion.core.observe.tap import MessageTap
from ion.core.pack.app_manager import AppInfo, AppManager
from ion.core.process.manager import ProcessManager
from ion.core.process.process import Process
from ion.core.security.join_check import check_join
from ion.core.security.policy import Policy, load_policy
from ion.core.security.signing import signer_from_config

if TYPE_CHECKING:
    from ion.core.observe.web.service import WebView

log = Logger()

_instances = itertools.count(1)

# Set in the context the boot runs in (and so in whatever it awaits, an app's
# on_init say): a stop asked for from there must not wait for the boot to end.
_in_boot: ContextVar[Container | None] = ContextVar("ion_container_in_boot", default=None)


class Container(MultiService):
    """One ion container: an id, a sysname, a broker connection and processes.

    @param reactor: the reactor (defaults to the global one, imported lazily).
    @param config: the container's configuration (defaults: L{DEFAULTS}).
    @param container_id: overrides the host-and-pid based id.
    @param sysname: the system this container belongs to (default: its id).
    @param broker: an L{IBroker} connection (default: a private embedded broker).
    """

    def __init__(
        self,
        *,
        reactor: Any = None,
        config: Config | None = None,
        container_id: str | None = None,
        sysname: str | None = None,
        broker: IBroker | None = None,
    ) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415 - no import-time reactor
        self.reactor = reactor
        self.config = config if config is not None else Config(DEFAULTS)
        n = next(_instances)
        base = default_container_id()
        cid = container_id or (base if n == 1 else f"{base}-{n}")
        self.id = check_name(secure.container_id(self.config, cid), "container id")
        self.sysname = check_sysname(sysname or self.config.get("sysname") or self.id)
        if broker is None:
            from ion.core.messaging.connect import make_broker

            broker = make_broker(reactor, self.config, name=self.id)
        self.exchange = ExchangeManager(broker, self.sysname, self.config, reactor)
        self.tap = _tap(self.id, self.config)
        #: Who may call what (C{security.policy}); None: every request is allowed.
        self.policy: Policy | None = load_policy(self.config)
        self.exchange.tap = self.tap
        #: Messages dropped as bad: counted, logged at a bounded rate (L{ion.core.drops}).
        self.drops: Drops = from_config(reactor, self.config)
        self.exchange.drops = self.drops
        # Raises ConfigurationError (no boot) when signing is on without a good key.
        self.exchange.signer = signer_from_config(self.config, reactor.seconds)
        #: The observer's live events, while something observes (the web view).
        self.hub: EventHub | None = None
        self.exchange.setServiceParent(self)
        self.proc_manager = ProcessManager(self)
        self.proc_manager.setServiceParent(self)
        self.app_manager = AppManager(self)
        self.app_manager.setServiceParent(self)
        #: The observer's web view (C{web.listen}); listens once the apps have booted.
        self.web: WebView | None = None
        if self.config.get("web.listen") is not None:
            from ion.core.observe.web.service import WebView  # twisted.web only when asked

            self.web = WebView(self)
            self.web.setServiceParent(self)
        self._boot_result: Failure | bool | None = None  # None: booting or not started
        self._ready_waiters: list[Deferred[None]] = []
        self.stopping = False  # set when stopping begins: no more booting or spawning
        self.agent: ContainerAgent | None = None  # its member of the system (agent.enabled)
        self._booting = False

    def __repr__(self) -> str:
        return f"<Container {self.id} sysname={self.sysname}>"

    @property
    def broker_node(self) -> str:
        """The broker node the container is connected to, or last tried (its URL,
        password masked); C{local} for the embedded broker."""
        params = getattr(self.exchange.broker, "params", None)
        return "local" if params is None else str(params.url)

    def startService(self) -> None:
        super().startService()
        self._booting = True
        Deferred.fromCoroutine(self._boot()).addBoth(self._booted)

    def stopService(self) -> Deferred[None]:
        # MultiService stops all children at once; apps must be gone before
        # their processes are terminated, and processes before the broker closes.
        self.stopping = True
        self.exchange.abandon_boot()
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        if self._booting:
            await self._end_of_boot()
        for service in reversed(list(self)):
            if service is self.exchange and self._boot_result is True:
                # The last word before the broker connection closes.
                self.announce(1051, self.id, container_id=self.id, state="TERMINATED")
            try:
                await maybeDeferred(service.stopService)
            except Exception:
                log.failure("stopping {service} failed", service=service.name)
        self.drops.close()

    async def _end_of_boot(self) -> None:
        """Stopped while booting: let the step under way end (boot goes no
        further), so nothing is spawned behind the stop's back; a step that
        hangs is given C{container.terminate_timeout} seconds."""
        if _in_boot.get() is self:
            log.info("container {id} stopped from its own boot", id=self.id)
            return
        timeout = float(self.config.get("container.terminate_timeout", 10.0))
        log.info("container {id} stopping while it boots", id=self.id)
        # (The boot's own failure is logged by _booted.)
        if not await ended_within(self.when_ready(), timeout, self.reactor):
            log.warn("container {id}: boot still busy after {t}s; stopping anyway",
                     id=self.id, t=timeout)  # fmt: skip

    async def _boot(self) -> None:
        _in_boot.set(self)
        for service in [*self, None]:
            if self.stopping:
                raise StartupError(f"container {self.id} was stopped while booting")
            if service is self.app_manager and self.config.get("agent.enabled", True):
                # First of the processes, so the last one terminated.
                self.agent = cast(
                    ContainerAgent, await self.proc_manager.spawn(ContainerAgent, number=0)
                )
                # Before any app starts: peers this container cannot verify stop it.
                await check_join(self)
            boot = getattr(service, "boot", None)
            if boot is not None:
                await boot()
        log.info("container {id} ready (sysname {sysname})", id=self.id, sysname=self.sysname)
        self.announce(1051, self.id, container_id=self.id, state="READY")
        if self.agent is not None:
            self.agent.join()

    def _booted(self, result: object) -> None:
        self._booting = False
        self._boot_result = result if isinstance(result, Failure) else True
        if isinstance(result, Failure):
            if self.stopping:
                log.info("container {id} stopped while booting: {why}", id=self.id,
                         why=result.value)  # fmt: skip
            else:
                log.failure("container {id} failed to boot", result, id=self.id)
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            self._fire_ready(d)

    def _fire_ready(self, d: Deferred[None]) -> None:
        if isinstance(self._boot_result, Failure):
            d.errback(self._boot_result)
        else:
            d.callback(None)

    def when_ready(self) -> Deferred[None]:
        """A Deferred that fires once every child has booted (fails if one could not)."""
        d: Deferred[None] = Deferred()
        if self._boot_result is None:
            self._ready_waiters.append(d)
        else:
            self._fire_ready(d)
        return d

    async def start(self) -> Container:
        """Start the container and wait until it is ready (for tests and scripts)."""
        self.startService()
        await self.when_ready()
        return self

    async def stop(self) -> None:
        """Stop the container: processes terminated newest first, then the broker."""
        if self.running:
            await self.stopService()

    def announce(self, event_id: int, origin: str, **fields: Any) -> None:
        """Publish a standard event from the container (a lost one is only logged)."""
        from ion.core import events

        if self.hub is not None:
            self.hub.announced(event_id, origin, fields)

        try:
            event = events.create_event(event_id, origin=origin, **fields)
            d = events.publish(self.exchange, self.id, event, container_id=self.id)
        except Exception:
            log.failure("{id}: could not announce event {eid}", id=self.id, eid=event_id)
            return
        d.addErrback(
            lambda f: log.warn("{id}: event {eid} lost: {f}", id=self.id, eid=event_id, f=f.value)
        )

    async def spawn(
        self,
        target: Any,
        name: str | None = None,
        args: dict[str, Any] | None = None,
        config: Any = None,
    ) -> Process:
        """Spawn a process in this container; see L{ProcessManager.spawn}."""
        return await self.proc_manager.spawn(target, name=name, args=args, config=config)

    async def terminate(self, proc_or_id: Process | str) -> None:
        """Terminate one process of this container."""
        await self.proc_manager.terminate(proc_or_id)

    async def start_app(self, app: Any, **kwargs: Any) -> AppInfo:
        """Start an app by name or path; see L{AppManager.start_app}."""
        return await self.app_manager.start_app(app, **kwargs)

    async def start_rel(self, path: Any) -> list[AppInfo]:
        """Start a release by path or name; see L{AppManager.start_rel}."""
        return await self.app_manager.start_rel(path)

    async def stop_app(self, name: str) -> None:
        """Stop app C{name}; see L{AppManager.stop_app}."""
        await self.app_manager.stop_app(name)

    def apps(self) -> list[AppInfo]:
        """The running apps, in start order."""
        return self.app_manager.apps()


def _tap(container_id: str, config: Config) -> MessageTap | None:
    """The container's message tap (C{observer.tap}), or None: it records nothing."""
    if not config.get("observer.tap", True):
        return None
    size = config.get("observer.tap_size", DEFAULT_TAP_SIZE)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ConfigurationError(f"observer.tap_size must be a positive integer, not {size!r}")
    return MessageTap(container_id, size)
