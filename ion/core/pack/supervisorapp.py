"""The supervisor app: an app that is one supervision tree (its C{supervisor:} block).

Starting the app spawns its top L{Supervisor}, a process named after the app,
which starts the children in order (a failing child fails the app's start);
stopping the app terminates it, and it stops its children in reverse. The
tree's supervisors count restart intensity on the app manager's clock. Every
child's class is looked up before any app of the request starts (L{check}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from ion.core.config import Config
from ion.core.exception import AppFileError, IonError
from ion.core.pack.appfile import AppDefinition
from ion.core.pack.fileformat import field_line
from ion.core.pack.supervision import SupervisorDefinition
from ion.core.process import child_spec as cs
from ion.core.process.lookup import resolve_process_class
from ion.core.process.supervisor import Supervisor

if TYPE_CHECKING:
    from ion.core.cc.container import Container

log = Logger()


def _tree(app: AppDefinition) -> SupervisorDefinition:
    if app.supervisor is None:
        raise ValueError(f"app {app.name!r} has no supervisor block")
    return app.supervisor


def check(app_definition: AppDefinition, **spawn_args: Any) -> None:
    """Before anything starts: each child's class must be a process class (a
    supervisor child's a L{Supervisor}); else an L{AppFileError} at its C{start}."""
    path = str(app_definition.path or f"app {app_definition.name!r}")
    for child in _tree(app_definition).walk():
        where = f"{child.where}.start"
        line = child.start_line or field_line(app_definition.path, "supervisor")
        try:
            cls = resolve_process_class(child.start)
        except IonError as exc:
            raise AppFileError(path, str(exc), field=where, line=line) from exc
        if child.type == cs.SUPERVISOR and not issubclass(cls, Supervisor):
            raise AppFileError(
                path, f"{child.start} is not a Supervisor (type: supervisor)", where, line
            )


async def start(
    container: Container, starttype: str, app_definition: AppDefinition, **spawn_args: Any
) -> Supervisor:
    """Spawn the app's top supervisor (its children start with it); it is the app's state."""
    args = {**_tree(app_definition).spawn_args(), "clock": container.app_manager.clock}
    top = await container.spawn(
        Supervisor,
        name=app_definition.name,
        args={**args, **spawn_args},
        config=Config(app_definition.config),
    )
    assert isinstance(top, Supervisor)
    return top


async def stop(container: Container, state: Supervisor) -> None:
    """Terminate the top supervisor (children in reverse), unless it has ended already."""
    if str(state.id) not in container.proc_manager.processes:
        return
    await container.terminate(state)
    log.info("terminated supervisor {pid}", pid=str(state.id))
