"""Asking container agents from a process: the system's view, remote spawn and stop.

Used by the shell (C{nodes()}, C{ps(all=True)}, C{spawn(..., node=)},
C{kill(pid)} of another container) and by tests. Every call has a deadline;
errors the agent answers with come back as ion's own exceptions
(L{ion.core.exception.rebuilt}: C{ModuleNotFound}, C{SpawnFailed}, C{NotAllowed}...).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import DeferredList, ensureDeferred

from ion.core import exception as exc
from ion.core.process.signals import container_of

if TYPE_CHECKING:
    from ion.core.cc.agent import ContainerAgent
    from ion.core.cc.container import Container
    from ion.core.process.process import Process


def agent_of(container: Container) -> ContainerAgent:
    """The container's agent; L{exc.ProcessError} if it runs none (C{agent.enabled: false})."""
    agent = container.agent
    if agent is None:
        raise exc.ProcessError(f"container {container.id} runs no agent (agent.enabled is false)")
    return agent


def nodes(container: Container) -> list[dict[str, Any]]:
    """This container and the peers it knows (newest epoch of each), from its
    own view: no network."""
    agent = agent_of(container)
    assert agent.membership is not None
    me = {
        **agent.announcement(),
        "state": "UP (this one)",
        "lag_ms": agent._lag_ms,
        "n_procs": len(container.proc_manager.processes),
        "why": "",
    }
    return [me, *(p.record() for p in agent.membership.peers.values())]


async def _call(caller: Process, cid: str, op: str, content: Any, timeout: float | None) -> Any:
    from ion.core.cc.agent_wire import agent_key

    try:
        return await caller.rpc_send(agent_key(cid), op, content, timeout=timeout)
    except exc.NoSuchServiceError:
        raise exc.NotFound(f"no container {cid} in system {caller.sysname}") from None
    except exc.ReceivedError as e:
        raise exc.rebuilt(e) from None


async def get_info(caller: Process, cid: str, timeout: float | None = None) -> dict[str, Any]:
    """C{get_info} of container C{cid} (default deadline C{agent.info_timeout})."""
    wait = agent_of(caller.container).info_timeout if timeout is None else timeout  # type: ignore[arg-type]
    info = await _call(caller, cid, "get_info", None, wait)
    if not isinstance(info, dict):
        raise exc.ProcessError(f"container {cid} answered get_info with {type(info).__name__}")
    return info


async def gather_info(caller: Process, timeout: float | None = None) -> list[tuple[str, Any]]:
    """C{get_info} of every container not known DEAD or LEFT, asked at once:
    (cid, info) pairs, info being the exception for a container that did
    not answer within C{timeout} (default C{agent.info_timeout})."""
    return [(cid, value) for cid, value, _asked, _answered in
            await ask_all(caller, "get_info", None, timeout)]  # fmt: skip


async def ask_all(
    caller: Process,
    op: str,
    content: Any,
    timeout: float | None = None,
    content_for: Callable[[str], Any] | None = None,
) -> list[tuple[str, Any, float, float]]:
    """Ask C{op} of the agent of every container not known DEAD or LEFT, at
    once (with C{content}, or C{content_for(cid)}): (cid, answer or exception,
    asked, answered) per container, times on C{time.time} (the clock a tap
    stamps with)."""
    container = caller.container
    assert container is not None, "the caller is not spawned"
    agent = agent_of(container)
    assert agent.membership is not None
    wait = agent.info_timeout if timeout is None else timeout
    cids = [container.id, *(p.cid for p in agent.membership.up())]
    times: dict[str, tuple[float, float]] = {}

    async def ask(cid: str) -> Any:
        asked = time.time()
        try:
            what = content if content_for is None else content_for(cid)
            return await _call(caller, cid, op, what, wait)
        finally:
            times[cid] = (asked, time.time())

    results = await DeferredList([ensureDeferred(ask(cid)) for cid in cids], consumeErrors=True)
    return [
        (cid, value if ok else value.value, *times[cid])
        for cid, (ok, value) in zip(cids, results, strict=True)
    ]


async def spawn_on(
    caller: Process,
    cid: str,
    module: str,
    name: str | None = None,
    args: dict[str, Any] | None = None,
    restart: str | None = None,
    link_to: str | None = None,
    timeout: float | None = None,
) -> str:
    """Spawn C{module} in container C{cid} through its agent; return the new pid."""
    content: dict[str, Any] = {"module": module}
    for key, value in (("name", name), ("args", args), ("restart", restart), ("link_to", link_to)):
        if value is not None:
            content[key] = value
    reply = await _call(caller, cid, "spawn", content, timeout)
    return str(reply["pid"])


async def stop_remote(
    caller: Process, pid: str, kill: bool = False, reason: str | None = None,
    timeout: float | None = None,
) -> None:  # fmt: skip
    """Terminate (or kill) process C{pid} of another container through its agent."""
    content: dict[str, Any] = {"pid": pid}
    if reason:
        content["reason"] = reason
    await _call(caller, container_of(pid), "kill" if kill else "terminate", content, timeout)
