"""The chart's data across containers with filters, open conversations, the
queue samples on the stream, the restart action and a kill through another
container's agent, and how the view starts (a port in use, a host that is not
loopback)."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.python import usage

from ion.core.cc.tap import Options
from ion.core.exception import StartupError
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.services.hello.service import HelloService
from tests.core.observe.web.client import (
    base_url,
    get_json,
    open_events,
    request,
    web_config,
)
from tests.helpers import Collector
from tests.launch import REPO


class Slow(ServiceProcess):
    """Holds each call until released."""

    service_name = "slow"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.gate: defer.Deferred[None] = defer.Deferred()

    async def op_wait(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        await self.gate
        return "done"


@pytest_twisted.ensureDeferred
async def test_the_chart_holds_the_systems_arcs_filtered(make_container: Any) -> None:
    """/api/msc: a call from one container to a service in another is a request
    and a reply arc, with both containers' clocks; op, pid and n filter; the
    page shows the SVG in #chart; .svg and .txt follow the filters."""
    c1 = await make_container(config=web_config())
    c2 = await make_container()
    hello = await c2.spawn(HelloService)
    caller = await c1.spawn(Process, name="caller")
    for who in ("a", "b"):
        await caller.rpc_send("hello", "hello", who)
    base = base_url(c1)
    data = await get_json(base, "api/msc?service=hello")
    kinds = [(a["kind"], a["src"], a["dst"]) for a in data["arcs"]]
    me, it = str(caller.id), str(hello.id)
    assert kinds == [("request", me, it), ("reply", it, me)] * 2
    assert data["rows"] == 4 and set(data["offsets"]) == {c1.id, c2.id}
    assert set(data["rtt"]) == {c1.id, c2.id} and data["errors"] == {}
    assert {lane["id"] for lane in data["lanes"]} == {me, it}
    assert [a["kind"] for a in (await get_json(base, "api/msc?op=hello"))["arcs"]] == [
        "request"
    ] * 2
    assert [a["kind"] for a in (await get_json(base, "api/msc?service=hello&n=1"))["arcs"]] == [
        "reply"
    ]
    assert (await get_json(base, f"api/msc?pid={it}&op=nothing"))["arcs"] == []
    assert (await request(base + "api/msc?n=x")).code == 400
    page = (await request(base + "msc?service=hello")).text
    chart = page[page.index('<div id="chart"><svg ') :]
    assert 'id="msc"' in chart.split(">", 2)[1] and page.count('class="msg"') == 4
    assert 'href="/msc.svg?service=hello"' in page and f'<tr data-cid="{c2.id}">' in page
    svg = await request(base + "msc.svg?service=hello")
    assert (
        svg.header("content-type").startswith("image/svg+xml")
        and svg.text.count('class="msg"') == 4
    )
    assert "hello" in (await request(base + "msc.txt?service=hello")).text


@pytest_twisted.ensureDeferred
async def test_an_open_conversation_is_listed_until_it_ends(make_container: Any) -> None:
    c = await make_container(config=web_config())
    slow = await c.spawn(Slow)
    caller = await c.spawn(Process, name="caller")
    events: Collector[Any] = Collector()
    c.hub.listen(events)
    call = defer.ensureDeferred(caller.rpc_send("slow", "wait", None, timeout=30))
    await events.wait_until(lambda e: e.type == "msg" and e.data.get("op") == "wait")
    data = await get_json(base_url(c), "api/conversations")
    (conv,) = [x for x in data["conversations"] if x["initiator"] == str(caller.id)]
    assert conv["protocol"] == "rpc" and conv["participant"] == "slow"
    assert 29 < conv["deadline_in"] <= 30 and conv["age"] >= 0 and data["tombstones"] == 0
    page = (await request(base_url(c) + "conversations")).text
    assert f'data-conv="{conv["conv_id"]}"' in page
    slow.gate.callback(None)
    assert await call == "done"
    data = await get_json(base_url(c), "api/conversations")
    assert [x for x in data["conversations"] if x["initiator"] == str(caller.id)] == []


@pytest_twisted.ensureDeferred
async def test_the_stream_samples_service_queues(make_container: Any) -> None:
    c = await make_container(config=web_config())
    await c.spawn(HelloService)
    _head, reader = await open_events(base_url(c))
    sample = (await reader.events.wait_until(lambda e: e.type == "q"))[-1]
    assert sample.data["queues"]["testsys.hello"] == {"messages": 0, "consumers": 1}
    reader.close()


@pytest_twisted.ensureDeferred
async def test_restart_and_a_kill_in_another_container(make_container: Any) -> None:
    """POST restart stops and starts a supervisor's child (a new pid); a kill of
    another container's process goes through its agent."""
    c1 = await make_container(config=web_config(actions=True))
    c2 = await make_container()
    await c1.start_app(REPO / "ion/res/apps/supervised.app")
    token, base = c1.web.token, base_url(c1)
    top, old = c1.proc_manager.find("supervised"), c1.proc_manager.find("audit")
    body = json.dumps({"supervisor": str(top.id), "child": "audit"}).encode()
    reply = await request(base + f"api/c/{c1.id}/restart", b"POST", {"X-Ion-Token": token}, body)
    assert reply.code == 200, reply.body
    new = c1.proc_manager.find("audit")
    assert reply.json() == {"restarted": "audit", "pid": str(new.id)} and new is not old
    bad = json.dumps({"supervisor": str(top.id), "child": "nobody"}).encode()
    reply = await request(base + f"api/c/{c1.id}/restart", b"POST", {"X-Ion-Token": token}, bad)
    assert reply.code == 400

    far = await c2.spawn(Process, name="far")
    body = json.dumps({"pid": str(far.id)}).encode()
    reply = await request(base + f"api/c/{c2.id}/kill", b"POST", {"X-Ion-Token": token}, body)
    assert reply.code == 200, reply.body
    assert far.state == "TERMINATED" and far.exit_reason == "killed"
    reply = await request(base + f"api/c/{c1.id}/kill", b"POST", {"X-Ion-Token": token}, body)
    assert reply.code == 400  # the pid is not of that container
    body = json.dumps({"pid": str(c1.agent.id)}).encode()
    reply = await request(base + f"api/c/{c1.id}/kill", b"POST", {"X-Ion-Token": token}, body)
    assert reply.code == 403 and "agent" in reply.json()["error"]


@pytest_twisted.ensureDeferred
async def test_a_port_in_use_fails_the_boot(make_container: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"web view: cannot listen on 127.0.0.1:{port}"):
            await make_container(config=web_config(listen=port))


@pytest_twisted.ensureDeferred
async def test_a_host_not_loopback_is_served_with_a_warning(make_container: Any, logs: Any) -> None:
    c = await make_container(config=web_config(listen="0.0.0.0:0"))
    event = await logs.wait_for_text("observer web view at http://0.0.0.0:")
    assert "reachable from the network" in logs.text(event)
    assert event["log_level"].name == "warn"
    port = c.web.bound_port
    url = f"http://127.0.0.1:{port}/api/system"
    # Any name but an address or localhost, or another port, may be a page of
    # another site rebound to this address (DNS rebinding).
    for host, code in ((f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200),
                       (f"10.1.2.3:{port}", 200), (f"evil.example:{port}", 421),
                       (f"127.0.0.1:{port + 1}", 421), ("127.0.0.1", 421)):  # fmt: skip
        assert (await request(url, headers={"Host": host})).code == code, host


@pytest_twisted.ensureDeferred
async def test_bad_numbers_and_paths_are_answered_400(make_container: Any) -> None:
    c = await make_container(config=web_config())
    base = base_url(c)
    for path in ["api/msc?n=%C2%B2", "api/msc?n=" + "9" * 5000, "api/msc?n=-1", "api/%FF",
                 "c/%FF", "api/msc?since=soon"]:  # fmt: skip
        assert (await request(base + path)).code == 400, path[:40]
    assert (await request(base + "events", b"HEAD")).code == 200  # no stream held open


def test_a_bad_web_listen_setting_is_a_usage_error_naming_it() -> None:
    with pytest.raises(usage.UsageError, match="web.listen"):
        Options().parseOptions(["-a", "web.listen=somewhere"])


@pytest_twisted.ensureDeferred
async def test_looking_makes_no_traffic_on_the_chart(make_container: Any) -> None:
    """The view's own reads (the chart, the queues, another container's page)
    put no message on the stream: a live chart does not redraw itself for ever."""
    c1 = await make_container(config=web_config())
    c2 = await make_container()
    base = base_url(c1)
    _head, reader = await open_events(base)
    for path in ["api/msc", "msc.svg", "api/queues", f"api/c/{c2.id}", f"c/{c2.id}/tree"]:
        assert (await request(base + path)).code == 200, path
    marker = c1.hub.publish("cc", {"marker": True})
    seen = await reader.events.wait_until(lambda e: e.id == marker.id)
    assert [e.data for e in seen if e.type == "msg"] == []
    reader.close()
