"""The data of each page (C{/api/...}, and what the pages show): plain dicts.

This container's own data is read directly; another container's comes from
its agent's C{get_info}, asked from the view's own process (C{webview}).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.cc.agent_ops import local_info
from ion.core.cc.membership import DEAD, LEFT
from ion.core.observe import arcs as arcs_mod
from ion.core.observe.system import system_trace

if TYPE_CHECKING:
    from ion.core.observe.web.service import WebView

DEFAULT_ROWS, MAX_ROWS = 200, 2000


def to_json(data: Any) -> bytes:
    """JSON that cannot be read as markup, even by a browser that sniffs."""
    text = json.dumps(data, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


async def route(view: WebView, path: list[str], q: dict[str, str]) -> dict[str, Any]:
    """The JSON of C{/api/<path>}.

    @raise NotFound: no such page, or no such container.
    """
    match path:
        case ["system"]:
            return system(view)
        case ["c", cid]:
            return await container(view, cid)
        case ["c", cid, "tree"]:
            return await tree(view, cid)
        case ["conversations"]:
            return conversations(view)
        case ["msc"]:
            return (await msc(view, q))[0]
        case ["queues"]:
            return await queues(view)
    raise exc.NotFound("no such page: /api/" + "/".join(path))


def system(view: WebView) -> dict[str, Any]:
    """The system as this container's agent sees it: every container with its
    state, epoch, heartbeat age, reactor lag and process count."""
    c = view.container
    now = c.reactor.seconds()
    rows = []
    nodes = agent_client.nodes(c) if c.agent is not None else [{"cid": c.id, "epoch": None}]
    for node in nodes:
        this = node["cid"] == c.id
        heard = node.get("last_heard")
        rows.append({
            "cid": node["cid"],
            "this": this,
            "state": "UP" if this else node.get("state"),
            "epoch": node.get("epoch"),
            "heartbeat_age": None if this or heard is None else max(0.0, now - heard),
            "lag_ms": float(node.get("lag_ms") or 0.0),
            "processes": len(c.proc_manager.processes) if this else node.get("n_procs"),
            "host": node.get("host"),
            "apps": list(node.get("apps") or ()),
            "why": node.get("why") or "",
        })  # fmt: skip
    rows[1:] = sorted(rows[1:], key=lambda r: str(r["cid"]))
    return {
        "sysname": c.sysname,
        "broker": c.broker_node,
        "container": c.id,
        "agent": c.agent is not None,
        "actions": view.actions,
        "containers": rows,
    }


async def info_of(view: WebView, cid: str) -> dict[str, Any]:
    """Container C{cid}'s C{get_info}: built here for this one, asked of its agent else.

    @raise NotFound: no container C{cid} known, or it is known DEAD or LEFT.
    """
    c = view.container
    if cid == c.id:
        return local_info(c)
    agent = c.agent
    peer = agent.membership.peers.get(cid) if agent and agent.membership else None
    if peer is None:
        raise exc.NotFound(f"no container {cid} in system {c.sysname}")
    if peer.state in (DEAD, LEFT):
        raise exc.NotFound(f"container {cid} is {peer.state}: {peer.why}")
    caller = await view.caller.get()
    return await agent_client.get_info(caller, cid)


async def container(view: WebView, cid: str) -> dict[str, Any]:
    """The processes and apps of container C{cid}."""
    info = await info_of(view, cid)
    return {
        "cid": cid,
        "this": cid == view.container.id,
        "actions": view.actions,
        "processes": info.get("processes") or [],
        "apps": info.get("apps") or [],
    }


async def tree(view: WebView, cid: str) -> dict[str, Any]:
    """The supervision trees of container C{cid} (L{tree_nodes} records)."""
    info = await info_of(view, cid)
    nodes = info.get("tree_nodes") or []
    for node in nodes:
        if "intensity" in node:
            node["budget"] = (f"{node.get('restarts_in_period', 0)}/{node['intensity']} "
                              f"in {float(node['period']):g}s")  # fmt: skip
    return {"cid": cid, "this": cid == view.container.id, "actions": view.actions, "nodes": nodes}


def conversations(view: WebView) -> dict[str, Any]:
    """The open conversations of this container's processes.

    Finished ones are not kept (no tombstones): ids are numbered per process, so
    a late reply is known as late without remembering what ended.
    """
    c = view.container
    now, wall = c.reactor.seconds(), time.time()
    first: dict[str, dict[str, Any]] = {}  # conv-id -> its first row in the tap
    if c.tap is not None:
        for row in c.tap.read().rows:
            if row.get("conv_id"):
                first.setdefault(row["conv_id"], row)
    out = []
    for proc in c.proc_manager.processes.values():
        manager = proc.runtime.conversations
        if manager is None:
            continue
        for conv in [*manager.open.values(), *manager.generic.values()]:
            row = first.get(conv.conv_id, {})
            timer = conv.timer
            due = timer.getTime() - now if timer is not None and timer.active() else None
            out.append({
                "conv_id": conv.conv_id,
                "protocol": conv.protocol,
                "role": conv.role,
                "initiator": str(proc.id),
                "participant": row.get("receiver") or row.get("to"),
                "state": conv.state,
                "age": None if not row else max(0.0, wall - row["ts"]),
                "deadline_in": due,
            })  # fmt: skip
    return {"container": c.id, "conversations": out, "tombstones": 0}


def _rows_wanted(q: dict[str, str]) -> int:
    n = q.get("n") or str(DEFAULT_ROWS)
    if not whole_number(n):
        raise exc.BadRequest(f"n: expected a whole number, not {n[:20]!r}")
    return max(1, min(int(n), MAX_ROWS))


def whole_number(text: str) -> bool:
    """Whether C{text} is a whole number C{int} reads (ASCII digits, not too many)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


async def msc(view: WebView, q: dict[str, str]) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """The last C{n} arcs of the whole system, filtered by C{pid}, C{service},
    C{op}, C{conv} and C{since} (a time, seconds since the epoch): the JSON,
    and the arcs and lanes to draw."""
    n = _rows_wanted(q)
    since_text = q.get("since") or ""
    try:
        since = float(since_text) if since_text else None
    except ValueError:
        raise exc.BadRequest(
            f"since: expected seconds since the epoch, not {since_text!r}"
        ) from None
    # Unfiltered, each container's newest n rows hold the system's newest n.
    filtered = any(q.get(k) for k in ("pid", "service", "op", "conv", "since"))
    limit = MAX_ROWS if filtered else n
    c = view.container
    offsets: dict[str, float] = {c.id: 0.0}
    rtt: dict[str, float] = {}
    gaps: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if c.agent is not None:
        trace = await system_trace(await view.caller.get(), limit=limit)
        rows, offsets, rtt, gaps, errors = (trace.rows, trace.offsets, trace.rtt, trace.gaps,
                                            trace.errors)  # fmt: skip
    elif c.tap is not None:
        part = c.tap.read(limit=limit)
        rows = part.rows
    else:
        rows, errors = [], {c.id: "the tap is off (observer.tap: false)"}
    arc_list, names = arcs_mod.last_arcs(
        rows, n, pid=q.get("pid") or None, service=q.get("service") or None,
        op=q.get("op") or None, conv_id=q.get("conv") or None, since=since,
    )  # fmt: skip
    lane_list = arcs_mod.lanes(arc_list, names)
    data = {
        "arcs": [a.as_dict() for a in arc_list],
        "lanes": [vars(lane) for lane in lane_list],
        "offsets": offsets,
        "rtt": rtt,
        "gaps": gaps,
        "errors": errors,
        "rows": len(arc_list),
    }
    return data, arc_list, lane_list


async def queues(view: WebView) -> dict[str, Any]:
    """The system's service queues (ready messages, consumers) and every
    process's mailbox depth, as each agent reports it."""
    c = view.container
    names = view.service_queues()
    mailboxes, errors = [], {}
    if c.agent is not None:
        infos = await agent_client.gather_info(await view.caller.get())
    else:
        infos = [(c.id, await info_of(view, c.id))]
    for cid, info in infos:
        if isinstance(info, BaseException):
            errors[cid] = str(info) or type(info).__name__
            continue
        for proc in info.get("processes") or []:
            if proc.get("service"):
                names[c.exchange.queue_name(proc["service"])] = proc["service"]
            mailboxes.append({"container": cid, "pid": proc.get("pid"), "name": proc.get("name"),
                              "depth": proc.get("depth"), "consumers": proc.get("consumers")})  # fmt: skip
    view.known_queues.update(names)
    depths = await view.queue_depths(names)
    rows = []
    for queue in sorted(names):
        d = depths.get(queue)
        rows.append({"queue": queue, "service": names[queue], "exists": d is not None,
                     "messages": d[0] if d else None, "consumers": d[1] if d else None})  # fmt: skip
    return {"queues": rows, "mailboxes": mailboxes, "errors": errors}
