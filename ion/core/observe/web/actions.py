"""The actions: C{POST /api/c/<cid>/kill} (C{{"pid": ...}}) and
C{POST /api/c/<cid>/restart} (C{{"supervisor": pid, "child": child id}}).

Only when C{web.actions} is true, and only with the view's token in the
C{X-Ion-Token} header (a page of another site can make a browser POST, but
cannot know the token). Another container's process is killed through its
agent; a restart is of this container's supervisors' children.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.cc.shell_nodes import not_the_agent
from ion.core.observe.web.leaf import ViewLeaf
from ion.core.process.signals import container_of
from ion.core.process.supervisor import Supervisor

if TYPE_CHECKING:
    from twisted.web.server import Request


MAX_BODY = 16 * 1024
TOKEN_HEADER = b"x-ion-token"


class Action(ViewLeaf):
    """Both actions (the resource L{ion.core.observe.web.resources.Api} hands them to)."""

    def render(self, request: Request) -> Any:
        from ion.core.observe.web.resources import JSON, respond, segments, to_json

        if request.method != b"POST":
            request.setResponseCode(405)
            request.setHeader(b"allow", b"POST")
            request.setHeader(b"content-type", JSON)
            return to_json({"error": "POST only", "status": 405})
        refusal = self.refusal(request)
        if refusal is not None:
            request.setResponseCode(403)
            request.setHeader(b"content-type", JSON)
            return to_json({"error": refusal, "status": 403})
        _c, cid, what = segments(request, 1)
        body = request.content.read(MAX_BODY + 1) if request.content is not None else b""

        async def work() -> tuple[int, bytes, bytes]:
            args = parse(body)
            done = await (self.kill(cid, args) if what == "kill" else self.restart(cid, args))
            return 200, JSON, to_json(done)

        return respond(request, work, as_json=True)

    def refusal(self, request: Request) -> str | None:
        """Why the request may not act, or None."""
        if not self.view.actions:
            return "actions are off (web.actions: true turns them on)"
        given = request.getHeader(TOKEN_HEADER) or b""
        if not hmac.compare_digest(given, self.view.token.encode()):
            return "a valid X-Ion-Token header is required (the shell's web() shows the token)"
        return None

    async def kill(self, cid: str, args: dict[str, Any]) -> dict[str, Any]:
        pid = args.get("pid")
        if not isinstance(pid, str):
            raise exc.BadRequest('kill takes {"pid": "name.n@container"}')
        if container_of(pid) != cid:
            raise exc.BadRequest(f"{pid} is not a process of container {cid}")
        container = self.view.container
        if cid != container.id:
            caller = await self.view.caller.get()
            await agent_client.stop_remote(caller, pid, kill=True, reason="killed")
            return {"killed": pid}
        proc = container.proc_manager.processes.get(pid)
        if proc is None:
            raise exc.NotFound(f"no process {pid} in container {cid}")
        not_the_agent(container, proc)
        await container.proc_manager.kill(proc, "killed")
        return {"killed": pid}

    async def restart(self, cid: str, args: dict[str, Any]) -> dict[str, Any]:
        sup_pid, child_id = args.get("supervisor"), args.get("child")
        if not isinstance(sup_pid, str) or not isinstance(child_id, str):
            raise exc.BadRequest('restart takes {"supervisor": pid, "child": "child id"}')
        container = self.view.container
        if cid != container.id:
            raise exc.BadRequest("restart works on this container's supervisors only")
        sup = container.proc_manager.processes.get(sup_pid)
        if not isinstance(sup, Supervisor):
            raise exc.NotFound(f"no supervisor {sup_pid} in container {cid}")
        try:
            if any(c.spec.id == child_id and c.proc is not None for c in sup.kids):
                await sup.terminate_child(child_id)
            proc = await sup.restart_child(child_id)
        except exc.ProcessError as e:
            raise exc.BadRequest(str(e)) from None
        return {"restarted": child_id, "pid": str(proc.id)}


def parse(body: bytes) -> dict[str, Any]:
    """The JSON object of a request body.

    @raise BadRequest: too long, not JSON, or not an object.
    """
    if len(body) > MAX_BODY:
        raise exc.BadRequest("the body is too long")
    try:
        args = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError):
        raise exc.BadRequest("the body is not JSON") from None
    if not isinstance(args, dict):
        raise exc.BadRequest("the body is not a JSON object")
    return args
