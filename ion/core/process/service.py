"""Services and their clients.

A L{ServiceProcess} declares a service name; all its instances, in any
container of the system, share the queue C{<sysname>.<service>} and take its
messages round robin. Each instance still answers on its own process id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.internet.defer import Deferred

from ion.core.exception import ProcessError
from ion.core.id import check_name
from ion.core.process import context
from ion.core.process.implicit import ImplicitProcess
from ion.core.process.process import Process


class ServiceProcess(Process):
    """A process that serves a named service.

    Declare it with class attributes (C{service_name}, C{version},
    C{dependencies}) or the original's C{declare = service_declare(name=...)}.
    A spawn argument C{servicename} overrides the name.
    """

    service_name: ClassVar[str | None] = None
    version: ClassVar[str] = "0.0.0"
    dependencies: ClassVar[list[str]] = []
    declare: ClassVar[dict[str, Any] | None] = None

    @staticmethod
    def service_declare(
        name: str, version: str = "0.0.0", dependencies: list[str] | None = None
    ) -> dict[str, Any]:
        """The original's declaration helper: C{declare = ServiceProcess.service_declare(...)}."""
        return {"name": name, "version": version, "dependencies": list(dependencies or [])}

    def __init__(self, name: str | None = None, args: dict[str, Any] | None = None, config=None):
        declared = type(self).declare or {}
        svc = (args or {}).get("servicename") or declared.get("name") or type(self).service_name
        if not svc:
            raise ProcessError(f"{type(self).__name__} declares no service name")
        self.svc_name: str = check_name(svc, "service name")
        self.svc_version: str = declared.get("version", type(self).version)
        self.svc_dependencies: list[str] = list(
            declared.get("dependencies", type(self).dependencies)
        )
        super().__init__(name=name or self.svc_name, args=args, config=config)

    def intake(self) -> list[tuple[str, str]]:
        assert self.container is not None
        own = super().intake()
        return [*own, (self.container.exchange.queue_name(self.svc_name), self.svc_name)]

    def op_http_routes(self, content: Any, headers: dict[str, Any], msg: Any) -> list[Any]:
        """The HTTP routes this service's ops declare (L{ion.gateway.routes.http}),
        which the gateway asks for when it starts."""
        from ion.gateway.routes import routes_of  # (only services that are asked need it)

        return routes_of(type(self))


class ServiceClient:
    """Calls one service on behalf of a process.

    Without C{proc}, an implicit client process is spawned in C{container} on
    first use (and terminated by L{close}). With neither, the client finds
    where it is made (L{ion.core.process.context}): in a process's handler or
    hook it calls from that process; in the shell, an C{IonTestCase} test or a
    test using the C{ion_container} fixture, from an implicit process of that
    container. Anywhere else it raises L{ProcessError}, saying how to pass one.
    """

    targetname: ClassVar[str | None] = None

    def __init__(
        self,
        proc: Process | None = None,
        targetname: str | None = None,
        container: Any = None,
    ) -> None:
        target = targetname or type(self).targetname
        if not target:
            raise ProcessError(f"{type(self).__name__} needs a targetname")
        if proc is None and container is None:
            place = context.here(f"{type(self).__name__}()")
            proc, container = place.process, place.container
        self.target = target
        self.proc = proc
        self.container = container if container is not None else proc.container  # type: ignore[union-attr]
        self._implicit_proc = (
            ImplicitProcess(self.container, type(self).__name__.lower() + "_aproc")
            if proc is None
            else None
        )

    async def attach(self) -> Process:
        """The process calls go out from (spawned on first use when implicit;
        calls that start together share that one spawn)."""
        if self.proc is None:
            assert self._implicit_proc is not None
            self.proc = await self._implicit_proc.get()
        return self.proc

    async def rpc_send(self, op: str, content: Any = None, **kwargs: Any) -> Any:
        """Call C{op} of the target service; return the reply content."""
        proc = await self.attach()
        return await proc.rpc_send(self.target, op, content, **kwargs)

    async def request(self, op: str, content: Any = None, **kwargs: Any) -> Any:
        """Ask the target service to do C{op} in a request conversation."""
        proc = await self.attach()
        return await proc.request(self.target, op, content, **kwargs)

    def send(self, op: str, content: Any = None) -> Deferred[None]:
        """Send a one-off message to the target service."""
        assert self.proc is not None, "client not attached; call attach() first"
        return self.proc.send(self.target, op, content)

    async def close(self) -> None:
        """Terminate the implicit client process, if one was spawned (waiting for a
        spawn under way, which would otherwise outlive the client)."""
        if self._implicit_proc is None:
            return
        proc = await self._implicit_proc.settled()
        self.proc = self._implicit_proc.proc = None
        if proc is not None and not proc.terminated:
            await self.container.terminate(proc)
