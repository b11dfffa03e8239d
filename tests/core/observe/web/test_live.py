"""The web view's live side: /events in order (W6), a reconnect replaying
what was missed (W7), and the supervision tree with its restart budgets and a
supervisor that gave up (W9)."""

from __future__ import annotations

from typing import Any

import pytest_twisted
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from ion.core.observe.web.sse import KEEPALIVE
from tests.core.observe.web.client import base_url, get_json, open_events, request, web_config
from tests.launch import REPO


async def supervised(make_container: Any) -> Any:
    c = await make_container(config=web_config())
    await c.start_app(REPO / "ion/res/apps/supervised.app")
    return c


def life(events: list[Any], since: int = 0) -> list[tuple[Any, ...]]:
    """The proc and sup events after C{since}, briefly."""
    out = []
    for ev in events:
        if ev.id is None or ev.id <= since:
            continue
        if ev.type == "proc":
            out.append(("proc", ev.data["process_id"], ev.data["state"], ev.data.get("reason")))
        elif ev.type == "sup":
            out.append(("sup", ev.data.get("action"), ev.data.get("child_id"),
                        ev.data.get("restarts")))  # fmt: skip
    return out


@pytest_twisted.ensureDeferred
async def test_a_crashed_child_shows_as_proc_sup_proc_in_order(make_container: Any) -> None:
    """W6: the stream opens with retry 1000; killing a supervised child sends
    its end (TERMINATED, killed), then the new pid's READY and ACTIVE, then the
    supervisor's restart (restarts 1, naming both pids: it is announced once
    the new process has started), in that order."""
    c = await supervised(make_container)
    head, reader = await open_events(base_url(c))
    assert head.code == 200
    assert head.header("content-type").startswith("text/event-stream")
    assert head.header("cache-control") == "no-cache"
    assert head.header("content-encoding") is None
    old = str(c.proc_manager.find("audit").id)
    await c.proc_manager.kill(old, "killed")
    await reader.events.wait_until(lambda e: e.type == "sup")
    assert reader.retry == 1000
    new = str(c.proc_manager.find("audit").id)
    assert new != old
    # (The view's own webview process, spawned when the stream opened, is left out.)
    assert [e for e in life(reader.events.items) if "webview" not in str(e[1])] == [
        ("proc", old, "TERMINATED", "killed"),
        ("proc", new, "READY", None),
        ("proc", new, "ACTIVE", None),
        ("sup", "restart", "audit", 1),
    ]
    sup = reader.events.items[-1].data
    assert (sup["old_pid"], sup["new_pid"], sup["reason"]) == (old, new, "killed")
    reader.close()


@pytest_twisted.ensureDeferred
async def test_a_reconnect_with_last_event_id_replays_what_was_missed(make_container: Any) -> None:
    """W7: events after Last-Event-ID come first, once each, in order; then new
    ones; an id older than the ring keeps gets a gap event first."""
    c = await supervised(make_container)
    base = base_url(c)
    _head, first = await open_events(base)
    await c.proc_manager.kill(c.proc_manager.find("audit"), "killed")
    await first.events.wait_until(lambda e: e.type == "sup")
    seen = first.events.items[-1].id
    first.close()
    restarted = ensureDeferred(_until_sup(c, lambda e: True))
    await c.proc_manager.kill(c.proc_manager.find("audit"), "killed")  # while away
    await restarted
    missed_done = c.hub.last
    _head, again = await open_events(base, {"Last-Event-ID": str(seen)})
    await again.events.wait_until(lambda e: e.id == missed_done)
    ids = [e.id for e in again.events.items]
    assert ids == list(range(seen + 1, missed_done + 1)), "each missed one, once, in order"
    assert ("sup", "restart", "audit", 2) in life(again.events.items)
    await c.proc_manager.kill(c.proc_manager.find("audit"), "killed")
    await again.events.wait_until(lambda e: e.type == "sup" and e.data.get("restarts") == 3)
    ids = [e.id for e in again.events.items]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    again.close()
    c.hub._ring.clear()  # as if all were evicted since
    c.hub.publish("cc", {"state": "x"})
    _head, late = await open_events(base, {"Last-Event-ID": "1"})
    frames = await late.events.wait_until(lambda e: e.id == c.hub.last)
    assert [e.type for e in frames] == ["gap", "cc"]
    assert frames[0].data == {"after": 1, "first": c.hub.last}
    late.close()
    _head, by_query = await open_events(base, path=f"events?last={c.hub.last - 1}")
    assert [e.type for e in await by_query.events.wait(1)] == ["cc"]
    by_query.close()


@pytest_twisted.ensureDeferred
async def test_keepalive_comments_come_on_the_views_clock(make_container: Any) -> None:
    """A comment line every 15 s, on the reactor the view was given."""
    c = await supervised(make_container)
    clock = Clock()
    c.web.reactor = clock
    _head, reader = await open_events(base_url(c))
    clock.advance(KEEPALIVE - 0.1)
    clock.advance(0.1)
    clock.advance(KEEPALIVE)
    await c.proc_manager.kill(c.proc_manager.find("audit"), "killed")  # a frame after them
    await reader.events.wait_until(lambda e: e.type == "sup")
    assert reader.comments.count("keepalive") == 2
    reader.close()


@pytest_twisted.ensureDeferred
async def test_the_tree_shows_nesting_strategies_and_restart_budgets(make_container: Any) -> None:
    """W9: top (one_for_one 3/60) > pipeline (one_for_all 2/10) > reader,
    writer; audit; restarts used within the period count; a supervisor that
    gave up is red (gaveup) once its parent restarted it."""
    c = await supervised(make_container)
    base = base_url(c)
    nodes = (await get_json(base, f"api/c/{c.id}/tree"))["nodes"]
    by = {n.get("child_id") or n["name"]: n for n in nodes}
    top = by["supervised"]
    assert (top["depth"], top["strategy"], top["budget"]) == (0, "one_for_one", "0/3 in 60s")
    assert (by["pipeline"]["depth"], by["pipeline"]["budget"]) == (1, "0/2 in 10s")
    assert by["pipeline"]["strategy"] == "one_for_all"
    assert [by[k]["depth"] for k in ("reader", "writer", "audit")] == [2, 2, 1]
    assert by["writer"]["restart"] == "transient" and by["reader"]["restart"] == "permanent"
    order = [n.get("child_id") for n in nodes if n.get("child_id")]
    assert order == ["pipeline", "reader", "writer", "audit"]

    events: Any = []
    c.hub.listen(events.append)
    await c.proc_manager.kill(c.proc_manager.find("reader"), "killed")
    pipeline = c.proc_manager.find("pipeline")
    await _until_sup(c, lambda e: e.data.get("child_id") == "reader")
    nodes = (await get_json(base, f"api/c/{c.id}/tree"))["nodes"]
    by = {n.get("child_id") or n["name"]: n for n in nodes}
    assert by["pipeline"]["budget"] == "1/2 in 10s" and by["reader"]["restarts"] == 1
    html = (await request(base + f"c/{c.id}/tree")).text
    assert 'data-child-id="reader" data-restarts="1"' in html
    assert '<table id="tree">' in html and 'class="sup d1' in html

    for _ in range(2):  # two more within 10 s: pipeline gives up, top restarts it
        await c.proc_manager.kill(c.proc_manager.find("reader"), "killed")
        await _until_sup(c, lambda e: True)
    await _until_sup(c, lambda e: e.data.get("child_id") == "pipeline")
    assert pipeline.gave_up and pipeline.state == "TERMINATED"
    nodes = (await get_json(base, f"api/c/{c.id}/tree"))["nodes"]
    by = {n.get("child_id") or n["name"]: n for n in nodes}
    assert by["pipeline"]["gave_up"] is True and by["supervised"]["budget"] == "1/3 in 60s"
    assert by["pipeline"]["pid"] != str(pipeline.id)
    html = (await request(base + f"c/{c.id}/tree")).text
    row = next(line for line in html.split("<tr ") if 'data-child-id="pipeline"' in line)
    assert "gaveup" in row.split(">")[0]


async def _until_sup(c: Any, match: Any) -> Any:
    from tests.helpers import Collector

    got: Collector[Any] = Collector()
    stop = c.hub.listen(got)
    try:
        return (await got.wait_until(lambda e: e.type == "sup" and match(e)))[-1]
    finally:
        stop()


async def _until(condition: Any, deadline: float = 5.0) -> None:
    """Poll C{condition} until true, failing past C{deadline} seconds."""
    from twisted.internet import reactor, task

    for _ in range(int(deadline / 0.02)):
        if condition():
            return
        await task.deferLater(reactor, 0.02, lambda: None)
    raise AssertionError("condition not met in time")


@pytest_twisted.ensureDeferred
async def test_another_containers_traffic_and_crash_reach_the_stream(make_container: Any) -> None:
    """While a page listens, the view asks every container for its newest tap
    row each second, and hears the other containers' events: a call made and
    answered in another container is a msg naming it, a crash there a proc."""
    from ion.core.process.process import Process
    from ion.services.hello.service import HelloService

    c1 = await make_container(config=web_config())
    c2 = await make_container()
    _head, reader = await open_events(base_url(c1))
    await _until(lambda: c2.id in c1.web.watch.last)  # it knows where c2's tap stands
    await c2.spawn(HelloService)
    caller = await c2.spawn(Process, name="caller")
    await caller.rpc_send("hello", "hello", "there")
    await reader.events.wait_until(lambda e: e.type == "msg" and e.data.get("container") == c2.id)
    await c2.proc_manager.kill(caller, "killed")
    await reader.events.wait_until(
        lambda e: e.type == "proc" and e.data.get("container_id") == c2.id
        and e.data.get("origin") == str(caller.id)
    )  # fmt: skip


def test_a_reader_that_falls_behind_is_cut_not_buffered() -> None:
    """The transport pauses a stream whose reader does not keep up; the next
    event then cuts it (the browser reconnects with Last-Event-ID) instead of
    growing its buffer."""
    from ion.core.observe.hub import EventHub
    from ion.core.observe.web.sse import Reader

    class Transport:
        aborted = 0

        def abortConnection(self) -> None:
            self.aborted += 1

    class Request:
        transport = Transport()
        producer: Any = None

        def __init__(self) -> None:
            self.written: list[bytes] = []

        def registerProducer(self, producer: Any, streaming: bool) -> None:
            self.producer = producer

        def write(self, data: bytes) -> None:
            self.written.append(data)

    request, hub = Request(), EventHub()
    reader = Reader(request)  # type: ignore[arg-type]
    hub.listen(reader.push)
    hub.publish("msg", {"n": 1})
    request.producer.pauseProducing()  # its buffer is full
    hub.publish("msg", {"n": 2})
    hub.publish("msg", {"n": 3})
    assert len(request.written) == 1 and request.transport.aborted == 1
