"""The web view's pages and their JSON: what each shows, escaping (W4), the
headers every response carries, and what it refuses (W11)."""

from __future__ import annotations

import json
import re
from html import escape as html_escape
from html.parser import HTMLParser
from typing import Any

import pytest_twisted

from ion.core.process.process import Process
from tests.core.observe.web.client import base_url, get_json, request, web_config
from tests.helpers import Collector
from tests.launch import REPO

EVIL = 'x\' " onmouseover="alert(1)"><img src=x onerror=alert(1)>'
ESCAPED = html_escape(EVIL)  # quotes too: the name may land in an attribute


def markup(html: str) -> tuple[set[str], list[str]]:
    """The tags of a page and the event handler attributes (on...) it has, as a
    browser would parse them."""

    class Reader(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: set[str] = set()
            self.handlers: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.add(tag)
            self.handlers += [name for name, _value in attrs if name.startswith("on")]

    reader = Reader()
    reader.feed(html)
    return reader.tags, reader.handlers


def text_of(html: str) -> str:
    """The text a browser shows of a page (entities read)."""
    parts: list[str] = []
    reader = HTMLParser()
    reader.handle_data = parts.append  # type: ignore[method-assign]
    reader.feed(html)
    return "".join(parts)


async def pages_of(c: Any) -> list[str]:
    cid = c.id
    return ["", f"c/{cid}", f"c/{cid}/tree", "conversations", "msc", "queues"]


@pytest_twisted.ensureDeferred
async def test_every_page_follows_the_dom_contract_and_escapes_every_name(
    make_container: Any,
) -> None:
    """W4: a process named like markup (ion checks names at spawn, but a page
    shows what any container reports), an op and an exit reason like it show as
    text in every page and JSON reply; each page has the script, the style
    sheet, its data-page, the nav and the live marker; no URL to elsewhere."""
    c = await make_container(config=web_config())
    evil = await c.spawn(Process, name="evil")
    evil.proc_name = EVIL
    await evil.send(str(c.agent.id), EVIL)  # a row in the tap, for the chart
    await c.start_app(REPO / "ion/res/apps/supervised.app")
    events: Collector[Any] = Collector()
    c.hub.listen(events)
    await c.proc_manager.kill(c.proc_manager.find("audit"), EVIL)
    await events.wait_until(lambda e: e.type == "sup" and e.data.get("action") == "restart")
    base = base_url(c)
    kinds = ["system", "container", "tree", "conversations", "msc", "queues"]
    for path, kind in zip(await pages_of(c), kinds, strict=True):
        reply = await request(base + path)
        assert reply.code == 200, path
        html = reply.text
        assert html.startswith("<!doctype html>")
        assert '<link rel=stylesheet href="/static/observer.css">' in html
        assert '<script src="/static/observer.js" defer>' in html
        assert f'<body data-page="{kind}"' in html
        assert '<span id="live">connecting</span>' in html and "<nav>" in html
        assert "<img" not in html and EVIL not in html, path
        tags, handlers = markup(html)
        assert "img" not in tags and handlers == [], path
        assert "<script>" not in html and " style=" not in html and " on" + "click" not in html
        urls = set(re.findall(r"https?://[^\s\"'<>]+", html)) - {"http://www.w3.org/2000/svg"}
        assert urls == set(), (path, urls)
    for path in [f"c/{c.id}", f"c/{c.id}/tree"]:  # the name, and audit's last exit
        assert (await request(base + path)).text.count(ESCAPED) >= 2
    assert EVIL in text_of((await request(base + "msc")).text)  # the chart: as text
    for path in ["api/system", f"api/c/{c.id}", f"api/c/{c.id}/tree", "api/conversations",
                 "api/msc", "api/queues"]:  # fmt: skip
        reply = await request(base + path)
        assert reply.code == 200 and reply.header("content-type").startswith("application/json")
        assert b"<" not in reply.body and b">" not in reply.body, path
    names = {p["name"] for p in (await get_json(base, f"api/c/{c.id}"))["processes"]}
    assert EVIL in names
    svg = (await request(base + "msc.svg")).text
    assert "<img" not in svg and 'class="msg"' in svg


@pytest_twisted.ensureDeferred
async def test_every_response_has_the_security_headers(make_container: Any) -> None:
    """W11: CSP, nosniff on pages, API, static files, errors and the stream;
    no store for pages and API; the static files name no other host."""
    c = await make_container(config=web_config())
    base = base_url(c)
    for path in ["", "api/system", "static/observer.js", "static/observer.css", "nothing",
                 "api/nothing", f"c/{c.id}/kill"]:  # fmt: skip
        reply = await request(base + path)
        assert reply.header("content-security-policy") == "default-src 'self'", path
        assert reply.header("x-content-type-options") == "nosniff", path
    for path in ["", "api/system"]:
        assert (await request(base + path)).header("cache-control") == "no-store"
    for name in ["observer.js", "observer.css"]:
        body = (await request(base + "static/" + name)).text
        assert not re.search(r"https?://", body), name
        assert "src=" not in body
    assert (await request(base + "nothing")).code == 404
    reply = await request(base + "api/c/nowhere")
    assert reply.code == 404 and "nowhere" in reply.json()["error"]
    assert (await request(base + "c/nowhere")).code == 404


@pytest_twisted.ensureDeferred
async def test_a_request_for_another_host_name_is_refused(make_container: Any) -> None:
    """W11: bound to 127.0.0.1 only; a Host header naming another name (DNS
    rebinding) gets 421; localhost:port is fine."""
    c = await make_container(config=web_config())
    view = c.web
    assert view.url == f"http://127.0.0.1:{view.bound_port}/"
    assert view._listening.getHost().host == "127.0.0.1"
    base = base_url(c)
    evil = await request(base + "api/system", headers={"Host": f"evil.example:{view.bound_port}"})
    assert evil.code == 421
    assert evil.header("content-security-policy") == "default-src 'self'"
    ok = await request(base + "api/system", headers={"Host": f"localhost:{view.bound_port}"})
    assert ok.code == 200


@pytest_twisted.ensureDeferred
async def test_actions_need_the_setting_and_the_token(make_container: Any, tmp_path: Any) -> None:
    """W11: POST kill without a token is 403, with the token but actions off
    403, with both 200 and the process is killed; GET on an action is 405; the
    token is in web.token_file (mode 0600) and nowhere in the pages."""
    off = await make_container(config=web_config())
    victim = await off.spawn(Process, name="victim")
    url = base_url(off) + f"api/c/{off.id}/kill"
    body = json.dumps({"pid": str(victim.id)}).encode()
    reply = await request(url, b"POST", {"X-Ion-Token": off.web.token}, body)
    assert reply.code == 403 and "actions are off" in reply.json()["error"]
    token_file = tmp_path / "token"
    on = await make_container(config=web_config(actions=True, token_file=str(token_file)))
    assert token_file.read_text().strip() == on.web.token
    assert token_file.stat().st_mode & 0o777 == 0o600
    victim = await on.spawn(Process, name="victim")
    url = base_url(on) + f"api/c/{on.id}/kill"
    body = json.dumps({"pid": str(victim.id)}).encode()
    assert (await request(url, b"POST", {}, body)).code == 403
    assert (await request(url, b"POST", {"X-Ion-Token": "wrong"}, body)).code == 403
    assert victim.state == "ACTIVE"
    assert (await request(url)).code == 405
    reply = await request(url, b"POST", {"X-Ion-Token": on.web.token}, body)
    assert reply.code == 200, reply.body
    assert reply.json() == {"killed": str(victim.id)}
    assert victim.state == "TERMINATED" and victim.exit_reason == "killed"
    page = (await request(base_url(on) + f"c/{on.id}")).text
    assert on.web.token not in page and 'class="kill"' in page
    assert 'class="kill"' not in (await request(base_url(off) + f"c/{off.id}")).text
