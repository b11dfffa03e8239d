"""The HTML pages: the data of L{api}, as tables. Every name is escaped
(L{e}); no inline script or style (the CSP forbids them): the look is in
C{observer.css}, the life (live updates, actions) in C{observer.js}."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from ion.core import exception as exc
from ion.core.observe.web import api

if TYPE_CHECKING:
    from ion.core.observe.web.service import WebView

FILTERS = ("pid", "service", "op", "conv", "since", "n")


def e(value: Any) -> str:
    """C{value} as HTML text or attribute value (None is empty)."""
    return "" if value is None else escape(str(value), quote=True)


def link(path: str, text: Any) -> str:
    return f'<a href="{e(path)}">{e(text)}</a>'


def c_path(cid: str, tail: str = "") -> str:
    return f"/c/{quote(cid, safe='')}{tail}"


def secs(value: Any) -> str:
    return "" if value is None else f"{float(value):.1f}s"


def layout(page: str, title: str, body: str, view: WebView, cid: str | None = None) -> str:
    here = cid or view.container.id
    nav = " ".join([
        link("/", "system"), link(c_path(here), f"container {here}"),
        link(c_path(here, "/tree"), "tree"), link("/conversations", "conversations"),
        link("/msc", "msc"), link("/queues", "queues"),
    ])  # fmt: skip
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} - ion observer</title>"
        '<link rel=stylesheet href="/static/observer.css">'
        '<script src="/static/observer.js" defer></script></head>\n'
        f'<body data-page="{e(page)}" data-actions="{"on" if view.actions else "off"}">\n'
        f'<nav>{nav} <span id="live">connecting</span></nav>\n'
        f"<main><h1>{e(title)}</h1>\n{body}</main>\n</body></html>\n"
    )


def table(table_id: str, columns: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in columns)
    empty = f'<tr class="empty"><td colspan="{len(columns)}">none</td></tr>' if not rows else ""
    return (f'<table id="{e(table_id)}"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(rows) + empty + "</tbody></table>\n")  # fmt: skip


def cells(*values: str) -> str:
    """Table cells of HTML already escaped."""
    return "".join(f"<td>{v}</td>" for v in values)


def state_class(state: Any) -> str:
    return "state-" + "".join(ch for ch in str(state).lower() if ch.isalnum() or ch == "-")


async def render(view: WebView, path: list[str], q: dict[str, str]) -> str:
    """The page at C{path}.

    @raise NotFound: no such page or container.
    """
    match path:
        case [] | [""]:
            return system_page(view, api.system(view))
        case ["c", cid]:
            return container_page(view, await api.container(view, cid))
        case ["c", cid, "tree"]:
            return tree_page(view, await api.tree(view, cid))
        case ["conversations"]:
            return conversations_page(view, api.conversations(view))
        case ["msc"]:
            return await msc_page(view, q)
        case ["queues"]:
            return queues_page(view, await api.queues(view))
    raise exc.NotFound("no such page: /" + "/".join(path))


def error_page(code: int, text: str) -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{code}</title>"
            '<link rel=stylesheet href="/static/observer.css"></head>'
            f'<body data-page="error"><nav>{link("/", "system")}</nav>'
            f"<main><h1>{code}</h1><p>{e(text)}</p></main></body></html>\n")  # fmt: skip


def system_page(view: WebView, data: dict[str, Any]) -> str:
    rows = []
    for n in data["containers"]:
        cid = str(n["cid"])
        rows.append(
            f'<tr data-cid="{e(cid)}" data-state="{e(n["state"])}" class="{state_class(n["state"])}">'
            + cells(
                link(c_path(cid), cid) + (" (this one)" if n["this"] else ""),
                e(n["state"]),
                e(n["epoch"]),
                "-" if n["this"] else secs(n["heartbeat_age"]),
                e(f"{n['lag_ms']:.1f}"),
                e(n["processes"]),
                e(n["host"]),
                e(", ".join(n["apps"])),
                e(n["why"]),
            )  # fmt: skip
            + "</tr>"
        )
    head = (f'<dl><dt>sysname</dt><dd id="sysname">{e(data["sysname"])}</dd>'
            f'<dt>broker</dt><dd>{e(data["broker"])}</dd>'
            f'<dt>this container</dt><dd>{e(data["container"])}</dd></dl>\n')  # fmt: skip
    columns = ["container", "state", "epoch", "heartbeat age", "lag ms", "processes", "host",
               "apps", "why"]  # fmt: skip
    return layout("system", f"system {data['sysname']}", head + table("containers", columns, rows),
                  view)  # fmt: skip


def kill_button(cid: str, pid: str) -> str:
    return (
        f'<button type="button" class="kill" data-cid="{e(cid)}" data-pid="{e(pid)}">kill</button>'
    )


def container_page(view: WebView, data: dict[str, Any]) -> str:
    cid, actions = data["cid"], data["actions"]
    rows = []
    for p in data["processes"]:
        sup = p.get("supervisor")
        rows.append(
            f'<tr data-pid="{e(p["pid"])}" data-state="{e(p["state"])}">'
            + cells(
                e(p["pid"]),
                e(p["name"]),
                e(p["class"]),
                f'<span class="{state_class(p["state"])}">{e(p["state"])}</span>',
                link(c_path(cid, "/tree"), sup) if sup else "",
                e(p.get("restarts")),
                e(p.get("last_exit")),
                e(p.get("depth")),
                e(p.get("consumers")),
                e(p.get("conversations")),
            )  # fmt: skip
            + (f"<td>{kill_button(cid, p['pid'])}</td>" if actions else "")
            + "</tr>"
        )
    columns = ["pid", "name", "class", "state", "supervisor", "restarts", "last exit",
               "mailbox", "consumers", "conversations"] + (["action"] if actions else [])  # fmt: skip
    apps = [f'<tr data-app="{e(a["name"])}">'
            + cells(e(a["name"]), e(a["version"]), e(a["state"]), e(a.get("start_type")),
                    e(a.get("release")))
            + "</tr>" for a in data["apps"]]  # fmt: skip
    body = (table("processes", columns, rows) + "<h2>apps</h2>\n"
            + table("apps", ["app", "version", "state", "start type", "release"], apps))  # fmt: skip
    return layout("container", f"container {cid}", body, view, cid)


def tree_page(view: WebView, data: dict[str, Any]) -> str:
    cid, actions = data["cid"], data["actions"] and data["this"]
    rows, sups = [], {}  # depth -> the supervisor pid at that depth
    for n in data["nodes"]:
        depth = int(n["depth"])
        is_sup = bool(n.get("supervisor"))
        sups[depth] = n.get("pid") if is_sup else None
        parent = sups.get(depth - 1) if "child_id" in n else None
        classes = ["sup" if is_sup else "child", f"d{min(depth, 9)}", state_class(n["state"])]
        if n.get("gave_up"):
            classes.append("gaveup")
        restarts = n.get("restarts")
        attrs = (f'class="{" ".join(classes)}" data-pid="{e(n.get("pid"))}" '
                 f'data-child-id="{e(n.get("child_id"))}" data-restarts="{e(restarts or 0)}" '
                 f'data-state="{e(n["state"])}" data-depth="{depth}"')  # fmt: skip
        strategy = f"{n['strategy']} {n['budget']}" if "strategy" in n else ""
        last = e(n.get("last_exit")) + (" (gave up)" if n.get("gave_up") else "")
        button = ""
        if actions and parent and n.get("child_id"):
            button = (f'<button type="button" class="restart" data-cid="{e(cid)}" '
                      f'data-supervisor="{e(parent)}" data-child="{e(n["child_id"])}">restart</button>')  # fmt: skip
        rows.append(
            f"<tr {attrs}>"
            + cells(
                f'<span class="name">{e(n["name"])}</span>',
                e(n.get("child_id")),
                e(n.get("pid")),
                e(n["state"]),
                e(n.get("restart")),
                e(restarts),
                e(strategy),
                last,
            )  # fmt: skip
            + (f"<td>{button}</td>" if actions else "")
            + "</tr>"
        )
    columns = ["process", "child id", "pid", "state", "restart", "restarts",
               "strategy (restarts used / intensity in period)", "last exit"]  # fmt: skip
    columns += ["action"] if actions else []
    return layout("tree", f"supervision tree of {cid}", table("tree", columns, rows), view, cid)


def conversations_page(view: WebView, data: dict[str, Any]) -> str:
    rows = [f'<tr data-conv="{e(c["conv_id"])}">'
            + cells(e(c["conv_id"]), e(c["protocol"]), e(c["role"]),
                    e(c["initiator"]) + " &rarr; " + e(c["participant"] or "?"), e(c["state"]),
                    secs(c["age"]), secs(c["deadline_in"]))
            + "</tr>" for c in data["conversations"]]  # fmt: skip
    note = (f'<p>tombstones: <span id="tombstones">{e(data["tombstones"])}</span> (finished '
            "conversations are not kept: their ids are numbered, so a late reply is known as "
            "late without them)</p>\n")  # fmt: skip
    columns = ["conversation", "protocol", "role", "initiator \u2192 participant", "state", "age",
               "deadline in"]  # fmt: skip
    return layout("conversations", f"open conversations in {data['container']}",
                  table("conversations", columns, rows) + note, view)  # fmt: skip


async def msc_file(view: WebView, q: dict[str, str], svg: bool) -> str:
    """C{/msc.svg} or C{/msc.txt} (mscgen) with the page's filters."""
    data, arc_list, lane_list = await api.msc(view, q)
    if svg:
        from ion.core.observe.msc import render_svg

        return render_svg(arc_list, lane_list, title=f"system {view.container.sysname}")
    from ion.core.observe.mscgen import to_mscgen

    return to_mscgen(arc_list, lane_list)


async def msc_page(view: WebView, q: dict[str, str]) -> str:
    from ion.core.observe.msc import render_svg

    data, arc_list, lane_list = await api.msc(view, q)
    given = {k: q[k] for k in FILTERS if q.get(k)}
    qs = ("?" + urlencode(given)) if given else ""
    inputs = "".join(f'<label>{k} <input name="{k}" value="{e(q.get(k, ""))}" size="12"></label> '
                     for k in FILTERS)  # fmt: skip
    form = f'<form id="filters" method="get" action="/msc">{inputs}<button>show</button></form>\n'
    links = (f'<p>{link("/msc.svg" + qs, "download .svg")} '
             f'{link("/msc.txt" + qs, "mscgen .txt")} &middot; '
             f'<span id="rows">{data["rows"]}</span> arcs</p>\n')  # fmt: skip
    chart = (f'<div id="chart">'
             f"{render_svg(arc_list, lane_list, title=f'system {view.container.sysname}')}"
             "</div>\n")  # fmt: skip
    clocks = [f'<tr data-cid="{e(cid)}">'
              + cells(e(cid), e(f"{off * 1000:+.1f}"),
                      e(f"{data['rtt'][cid] * 1000:.1f}") if cid in data["rtt"] else "")
              + "</tr>" for cid, off in sorted(data["offsets"].items())]  # fmt: skip
    gaps = [f'<li class="gap">{e(cid)}: rows {e(g)} were evicted before they were read</li>'
            for cid, g in sorted(data["gaps"].items())]  # fmt: skip
    errors = [
        f'<li class="error">{e(cid)}: {e(why)}</li>' for cid, why in sorted(data["errors"].items())
    ]
    body = (form + links + chart + "<h2>clocks</h2>\n"
            + table("offsets", ["container", "offset ms (added to its times)", "round trip ms"],
                    clocks)
            + (f'<ul id="gaps">{"".join(gaps)}</ul>\n' if gaps else "")
            + (f'<ul id="errors">{"".join(errors)}</ul>\n' if errors else ""))  # fmt: skip
    return layout("msc", "message sequence chart", body, view)


def queues_page(view: WebView, data: dict[str, Any]) -> str:
    rows = [f'<tr data-queue="{e(r["queue"])}" data-messages="{e(r["messages"])}">'
            + cells(e(r["queue"]), e(r["service"]),
                    e(r["messages"]) if r["exists"] else "(no such queue)", e(r["consumers"]))
            + "</tr>" for r in data["queues"]]  # fmt: skip
    boxes = [f'<tr data-pid="{e(m["pid"])}">'
             + cells(link(c_path(m["container"]), m["container"]), e(m["pid"]), e(m["name"]),
                     e(m["depth"]), e(m["consumers"]))
             + "</tr>" for m in data["mailboxes"]]  # fmt: skip
    errors = "".join(f'<li class="error">{e(c)}: {e(w)}</li>' for c, w in data["errors"].items())
    body = (table("queues", ["queue", "service", "messages ready", "consumers"], rows)
            + "<h2>mailboxes</h2>\n"
            + table("mailboxes", ["container", "pid", "name", "depth", "consumers"], boxes)
            + (f'<ul id="errors">{errors}</ul>' if errors else ""))  # fmt: skip
    return layout("queues", "queues", body, view)
