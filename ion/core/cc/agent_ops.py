"""The operations a container agent serves: ping, get_info, get_trace, spawn,
terminate, kill.

Remote spawns go through the container's C{remote} supervisor (one_for_one,
started on the first one), as temporary children unless the request says
otherwise, and only for modules the C{agent.spawn_allow} globs allow (none
by default: a broker user could otherwise run any code on the path).
"""

from __future__ import annotations

import fnmatch
import time
from typing import TYPE_CHECKING, Any

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.process import child_spec as cs
from ion.core.process.lookup import qualname, resolve_process_class
from ion.core.process.supervisor import Supervisor

if TYPE_CHECKING:
    from ion.core.process.process import Process

REMOTE_SUPERVISOR = "remote"


class AgentOps:
    """The request handlers of L{ion.core.cc.agent.ContainerAgent}."""

    container: Any
    config: Any
    id: Any
    epoch: int
    _remote: Supervisor | None = None

    def op_ping(self, content: Any, headers: dict[str, Any], msg: m.Message) -> dict[str, Any]:
        """Answer that the container is alive: its agent, id and epoch."""
        return {"pong": str(self.id), "container": self.container.id, "epoch": self.epoch}

    def op_get_info(self, content: Any, headers: dict[str, Any], msg: m.Message) -> dict[str, Any]:
        """The container's record, its processes and the peers it knows."""
        from ion.core.cc.shell_tree import supervision_tree

        tree = supervision_tree(self.container.proc_manager.processes.values())
        return {
            **local_info(self.container),
            "container": self.announcement(),  # type: ignore[attr-defined]
            "tree": {"columns": tree.columns, "rows": tree.rows},
            "peers": [p.record() for p in self.membership.peers.values()],  # type: ignore[attr-defined]
            "dropped": self.membership.dropped,  # type: ignore[attr-defined]
            # Signed, verified and refused (by reason) messages; None: signing off.
            "signing": signer.stats() if (signer := self.container.exchange.signer) else None,
        }

    def op_get_trace(self, content: Any, headers: dict[str, Any], msg: m.Message) -> dict[str, Any]:
        """The container's tap rows after C{since} (the newest C{limit}, if given),
        with its clock's time (L{ion.core.observe.tap.TraceSlice.as_dict});
        C{rows} is empty and C{off} true when the tap is off."""
        args = content if isinstance(content, dict) else {}
        since, limit = args.get("since", 0), args.get("limit")
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise exc.BadRequest(f"get_trace: since must be a whole number >= 0, not {since!r}")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)):
            raise exc.BadRequest(f"get_trace: limit must be a whole number, not {limit!r}")
        tap = self.container.tap
        if tap is None:
            cid = self.container.id
            return {"container": cid, "now": time.time(), "last": 0, "gap": None, "rows": [],
                    "off": True}  # fmt: skip
        return tap.read(since, limit).as_dict()

    async def op_spawn(
        self, content: Any, headers: dict[str, Any], msg: m.Message
    ) -> dict[str, Any]:
        """Spawn C{module} (C{pkg.mod:Class} or C{pkg.mod.Class}) under the
        C{remote} supervisor; C{name}, C{args}, C{restart} (default temporary)
        and C{link_to} (a pid to link the new process with) are optional."""
        if not isinstance(content, dict) or not isinstance(content.get("module"), str):
            raise exc.BadRequest(
                "spawn takes {module: 'pkg.mod:Class', name?, args?, restart?, link_to?}"
            )
        module = content["module"]
        allowed = self.config.get("agent.spawn_allow", []) or []
        if isinstance(allowed, str):
            allowed = [allowed]
        names = spellings(module)
        if not any(fnmatch.fnmatchcase(n, str(glob)) for glob in allowed for n in names):
            raise exc.NotAllowed(
                f"{self.container.id} does not spawn {module!r} for others: "
                "agent.spawn_allow lists the module globs it may"
            )
        try:
            cls = resolve_process_class(module)
        except exc.ProcessError as e:
            raise exc.ModuleNotFound(str(e)) from None
        args = content.get("args") or {}
        if not isinstance(args, dict):
            raise exc.BadRequest("spawn: args must be a mapping")
        restart = content.get("restart", cs.TEMPORARY)
        name = content.get("name")
        link_to = content.get("link_to")
        supervisor = await self._remote_supervisor()
        spec = {"id": f"{name or cls.__name__.lower()}-{msg.conv_id}", "start": cls,
                "args": args, "restart": restart}  # fmt: skip
        if name:
            spec["name"] = name
        try:
            proc = await supervisor.start_child(spec)
        except exc.ConfigurationError as e:
            raise exc.BadRequest(f"spawn: {e}") from None
        except exc.SpawnError as e:
            raise exc.SpawnFailed(f"error: {e.__cause__ or e}") from None
        if isinstance(link_to, str):
            proc.link(link_to)
        return {"pid": str(proc.id), "container": self.container.id, "class": qualname(cls)}

    async def _remote_supervisor(self) -> Supervisor:
        sup = self._remote
        if sup is None or sup.winding_down:
            sup = await self.container.spawn(
                Supervisor, name=REMOTE_SUPERVISOR, args={"intensity": 10, "period": 10.0}
            )
            self._remote = sup
        return sup

    async def op_terminate(
        self, content: Any, headers: dict[str, Any], msg: m.Message
    ) -> dict[str, Any]:
        """Ask process C{pid} of this container to stop (C{reason}, default shutdown)."""
        proc = self._target(content)
        await self.container.proc_manager.terminate(proc, str(content.get("reason") or "shutdown"))
        return {"terminated": str(proc.id)}

    async def op_kill(
        self, content: Any, headers: dict[str, Any], msg: m.Message
    ) -> dict[str, Any]:
        """Kill process C{pid} of this container (no terminate hook; a supervisor restarts it)."""
        proc = self._target(content)
        await self.container.proc_manager.kill(proc, str(content.get("reason") or "killed"))
        return {"killed": str(proc.id)}

    def _target(self, content: Any) -> Process:
        pid = content.get("pid") if isinstance(content, dict) else None
        if not isinstance(pid, str):
            raise exc.BadRequest("takes {pid: 'name.n@container', reason?}")
        proc = self.container.proc_manager.processes.get(pid)
        if proc is None:
            raise exc.NotFound(f"no process {pid} in container {self.container.id}")
        if proc is self:
            raise exc.NotAllowed("the agent is stopped with its container, not alone")
        return proc


def spellings(module: str) -> tuple[str, str]:
    """The two names of one class, C{pkg.mod:Class} and C{pkg.mod.Class}: a glob of
    C{agent.spawn_allow} in either spelling allows it in both."""
    if ":" in module:
        return module, module.replace(":", ".")
    head, _dot, tail = module.rpartition(".")
    return module, f"{head}:{tail}"


def local_info(container: Any) -> dict[str, Any]:
    """What get_info tells of a container's own: processes, supervision trees, apps,
    its policy's decisions (None: no policy) and the messages it dropped as bad
    (L{ion.core.drops.Drops.as_dict})."""
    from ion.core.cc.shell_tree import tree_nodes

    procs = list(container.proc_manager.processes.values())
    return {
        "processes": [process_record(p) for p in procs],
        "tree_nodes": tree_nodes(procs),
        "apps": app_records(container),
        "policy": policy.info() if (policy := getattr(container, "policy", None)) else None,
        "drops": container.drops.as_dict(),  # bad messages dropped (ion.core.drops)
    }


def app_records(container: Any) -> list[dict[str, Any]]:
    """What get_info tells of the running apps."""
    types = container.app_manager.start_types()
    return [{"name": a.name, "version": a.version, "state": a.state, "release": a.release,
             "start_type": types.get(a.name, "")} for a in container.apps()]  # fmt: skip


def process_record(proc: Process) -> dict[str, Any]:
    """What get_info tells of one process."""
    runtime = proc.runtime
    parent = proc.parent
    restarts = last_exit = None
    if isinstance(parent, Supervisor):
        for kid in parent.kids:
            if kid.proc is proc:
                restarts, last_exit = kid.restarts, kid.last_exit
    convs = runtime.conversations
    return {
        "pid": str(proc.id),
        "name": proc.proc_name,
        "class": qualname(type(proc)),
        "state": proc.state,
        "service": getattr(proc, "svc_name", None),
        "supervisor": str(parent.id) if isinstance(parent, Supervisor) else None,
        "parent": str(parent.id) if parent is not None else None,
        "restarts": restarts,
        "last_exit": last_exit,  # of the process this one replaced, if supervised
        "depth": runtime.inflight + len(runtime.waiting),
        "consumers": len(runtime.consumers),
        "conversations": len(convs.open) if convs is not None else 0,
        "links": len(proc.links),
        "monitors": len(proc._monitors),
        "timers": proc.timers.info(),  # runs, skips, errors of each periodic entrypoint
        "later_errors": proc.timers.later_errors,  # call_later calls that raised
    }
