"""The generic process app: an app that is one process.

An app file names it as C{mod: [ion.core.pack.processapp, [name, module, Class], {args}]};
a release entry with C{processapp: [name, module, Class]} stands for one. The
process is spawned with the app's kwargs as spawn args and the app's own
config view, and terminated when the app stops. Its class is looked up before
any app of the request starts (L{check}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from ion.core.config import Config
from ion.core.pack.appfile import AppDefinition
from ion.core.process.lookup import resolve_process_class
from ion.core.process.process import Process

if TYPE_CHECKING:
    from ion.core.cc.container import Container

log = Logger()


def check(
    app_definition: AppDefinition, proc_name: str, module: str, cls: str, **spawn_args: Any
) -> None:
    """Before anything starts: the process class must be importable (L{ProcessError} if not)."""
    resolve_process_class(f"{module}:{cls}")


async def start(
    container: Container,
    starttype: str,
    app_definition: AppDefinition,
    proc_name: str,
    module: str,
    cls: str,
    **spawn_args: Any,
) -> Process:
    """Spawn process C{module.cls} named C{proc_name}; the process is the app's state."""
    return await container.spawn(
        f"{module}:{cls}",
        name=proc_name,
        args=spawn_args,
        config=Config(app_definition.config),
    )


async def stop(container: Container, state: Process) -> None:
    """Terminate the app's process, unless it has already gone."""
    if str(state.id) not in container.proc_manager.processes:
        return
    await container.terminate(state)
    log.info("terminated process {pid}", pid=str(state.id))
