"""The C{ioncore} base app: every container starts it first, before any other app.

It records when and where the container came up (its id, sysname and the
container args), so the running apps always begin with the core, and a release
can require a core version (its C{ioncore} field).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from ion.core.pack.appfile import AppDefinition

if TYPE_CHECKING:
    from ion.core.cc.container import Container

log = Logger()


@dataclass(frozen=True)
class CoreState:
    """What the core app knows about its container's start."""

    container_id: str
    sysname: str
    version: str
    started_at: float
    kwargs: dict[str, Any]


def start(
    container: Container, starttype: str, app_definition: AppDefinition, **kwargs: Any
) -> CoreState:
    """Record the container's start."""
    state = CoreState(
        container.id, container.sysname, app_definition.version, time.time(), dict(kwargs)
    )
    log.debug(
        "ioncore {version} up in container {id} (sysname {sysname})",
        version=state.version,
        id=state.container_id,
        sysname=state.sysname,
    )
    return state


def stop(container: Container, state: CoreState) -> None:
    """Log how long the core ran."""
    log.debug(
        "ioncore stopping in container {id} after {secs:.3f}s",
        id=state.container_id,
        secs=time.time() - state.started_at,
    )
