"""Links and monitors across containers on the embedded broker: the other
side's watchers table (a pid gone, or going, answers for itself), bad input,
and C{noconnection} when the broker link is lost or a container is declared
dead (the RabbitMQ runs are in test_remote_links_amqp)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core import exception as exc
from ion.core.id import InvalidNameError
from ion.core.messaging import message as m
from ion.core.process import signals
from ion.core.process.process import Process
from tests.core.process.workers import Trapper, Worker, ended, entries
from tests.helpers import Collector, wait_for


async def spawn(container: Any, cls: type, name: str, journal: Any, **args: Any) -> Any:
    return await container.spawn(cls, name=name, args={"journal": journal, **args})


async def synced(client: Process, *procs: Any) -> None:
    """Return once each of C{procs} has handled what was sent to it before."""
    for proc in procs:
        assert await wait_for(client.rpc_send(proc.id, "echo", "sync")) == "sync"


class Late(Worker):
    """Keeps back deliveries of link and monitor signals while C{args["late"]}
    (a list) is given: they reach it when the test says (L{arrive})."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self._take = self.runtime.deliver
        self.runtime.deliver = self._kept_back  # type: ignore[method-assign]

    def _kept_back(self, delivery: Any) -> None:
        late = self.args.get("late")
        if late is not None and m.decode(delivery.body).op in (signals.LINK, signals.MONITOR):
            late.append(delivery)
            return
        self._take(delivery)

    def arrive(self) -> None:
        late, self.args["late"] = self.args["late"], None
        for delivery in late:
            self._take(delivery)


@pytest_twisted.ensureDeferred
async def test_a_link_to_a_terminating_process_is_answered_by_its_end(make_container: Any) -> None:
    """A link and a monitor reaching a process of another container while it
    terminates (its queue still there) are answered when it ends, with its reason."""
    c1, c2 = await make_container(), await make_container()
    journal: Collector[Any] = Collector()
    a = await spawn(c1, Trapper, "a", journal)
    gate: defer.Deferred[None] = defer.Deferred()
    b = await spawn(c2, Worker, "b", journal, gate=gate)
    stopping = defer.ensureDeferred(c2.terminate(b))
    await journal.wait_until(lambda e: e[:2] == ("terminate", "b"))
    a.link(b.id)
    ref = a.monitor(b.id)
    client = await c1.spawn(Process, name="client")
    try:
        with pytest.raises(exc.ReceivedError, match="TERMINATING"):  # after the signals
            await wait_for(client.rpc_send(b.id, "echo", "sync", timeout=5), 5)
        assert str(a.id) in b.links
    finally:
        gate.callback(None)
    await wait_for(stopping)
    await journal.wait_until(lambda e: e[0] == "on_exit")
    await journal.wait_until(lambda e: e[0] == "on_down")
    assert entries(journal, "on_exit") == [("on_exit", "a", str(b.id), "shutdown")]
    assert entries(journal, "on_down") == [("on_down", "a", ref, str(b.id), "shutdown")]


@pytest_twisted.ensureDeferred
async def test_a_late_link_to_an_ended_process_is_answered_noproc(make_container: Any) -> None:
    """A link and a monitor delivered to a process of another container after it
    ended are answered noproc at once, not recorded."""
    c1, c2 = await make_container(), await make_container()
    journal: Collector[Any] = Collector()
    a = await spawn(c1, Trapper, "a", journal)
    b = await spawn(c2, Late, "b", journal, late=[])
    a.link(b.id)
    ref = a.monitor(b.id)
    client = await c1.spawn(Process, name="client")
    await synced(client, b)
    assert len(b.args["late"]) == 2 and b.links == frozenset()
    await c2.terminate(b)
    b.arrive()
    await journal.wait_until(lambda e: e[0] == "on_exit")
    await journal.wait_until(lambda e: e[0] == "on_down")
    assert entries(journal, "on_exit") == [("on_exit", "a", str(b.id), "noproc")]
    assert entries(journal, "on_down") == [("on_down", "a", ref, str(b.id), "noproc")]
    assert b.links == frozenset() and b._watchers == {}


@pytest_twisted.ensureDeferred
async def test_a_pid_of_a_container_that_never_existed_is_noproc(container: Any) -> None:
    """Linking and monitoring a pid of an unknown container: on_exit and on_down
    noproc (the signal found no queue)."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Trapper, "a", journal)
    ghost = "ghost.1@never-there"
    a.link(ghost)
    ref = a.monitor(ghost)
    await journal.wait_until(lambda e: e[0] == "on_exit")
    await journal.wait_until(lambda e: e[0] == "on_down")
    assert entries(journal, "on_exit") == [("on_exit", "a", ghost, "noproc")]
    assert entries(journal, "on_down") == [("on_down", "a", ref, ghost, "noproc")]
    assert a.links == frozenset()


@pytest_twisted.ensureDeferred
async def test_linking_to_what_is_not_a_pid_is_an_error(container: Any) -> None:
    """link and monitor of a service name or garbage raise InvalidNameError and
    record nothing."""
    a = await spawn(container, Trapper, "a", Collector())
    for bad in ("hello", "a.b@", "", "x.1@c d"):
        with pytest.raises(InvalidNameError):
            a.link(bad)
        with pytest.raises(InvalidNameError):
            a.monitor(bad)
    assert a.links == frozenset() and a._monitors == {}


@pytest_twisted.ensureDeferred
async def test_a_malformed_signal_is_dropped(container: Any) -> None:
    """Signals with a sender that is no pid, content that is no map, an unknown
    op or a ref that is no string are dropped; the process keeps running."""
    journal: Collector[Any] = Collector()
    a = await spawn(container, Trapper, "a", journal)
    to = str(a.id)
    for sender, op, content in [
        ("not a pid", signals.LINK, {}),
        ("x.1@elsewhere", signals.MONITOR, {"ref": 7}),
        ("x.1@elsewhere", "sys_nonsense", {}),
        ("x.1@elsewhere", signals.EXIT, [1, 2]),
    ]:
        headers = m.decode(signals.encode(sender, to, op, None)).headers
        await container.exchange.publish(to, m.encode(headers, content), mandatory=True)
    client = await container.spawn(Process, name="client")
    await synced(client, a)
    assert a.state == "ACTIVE" and a.links == frozenset() and a._watchers == {}
    assert entries(journal, "on_exit") == []


@pytest_twisted.ensureDeferred
async def test_a_request_to_a_terminating_process_is_answered_at_once(container: Any) -> None:
    """A call reaching a process's own queue while it terminates gets an error
    at once (it would have vanished with the queue)."""
    gate: defer.Deferred[None] = defer.Deferred()
    journal: Collector[Any] = Collector()
    b = await spawn(container, Worker, "b", journal, gate=gate)
    stopping = defer.ensureDeferred(container.terminate(b))
    await journal.wait_until(lambda e: e[:2] == ("terminate", "b"))
    client = await container.spawn(Process, name="client")
    try:
        with pytest.raises(exc.ReceivedError, match="TERMINATING"):
            await wait_for(client.rpc_send(b.id, "echo", "hello", timeout=30), 5)
    finally:
        gate.callback(None)
    await wait_for(stopping)


@pytest_twisted.ensureDeferred
async def test_a_request_delivered_after_the_end_is_answered(container: Any, logs: Any) -> None:
    """A call delivered to a process once it has ended (its queue not yet gone)
    is answered with an error; one that cannot be answered (no reply-to) is
    dropped with a warning; nothing raises into the broker's delivery."""
    b = await spawn(container, Worker, "b", Collector())
    client = await container.spawn(Process, name="client")
    await container.terminate(b)
    replies: Collector[Any] = Collector()
    queue = await container.exchange.declare_queue("late.reply", exclusive=True)
    await container.exchange.consume(queue, replies, 0, auto_ack=True)
    headers = client.runtime.request_headers(str(b.id), "echo", "rpc", "conv-late")
    headers[m.REPLY_TO] = "late.reply"
    b.runtime.deliver(signals.Injected(str(b.id), m.encode(headers, "late")))
    answer = m.decode((await replies.wait(1))[0].body)
    assert answer.performative == "failure" and "TERMINATED" in str(answer.content)
    del headers[m.REPLY_TO]
    b.runtime.deliver(signals.Injected(str(b.id), m.encode(headers, "late")))
    assert logs.texts_with("no reply-to") and b.state == "TERMINATED"


@pytest_twisted.ensureDeferred
async def test_a_link_the_broker_cannot_take_is_noconnection(
    make_container: Any, monkeypatch: Any
) -> None:
    """A link and a monitor to another container whose signal the broker
    refuses (its connection is down) end noconnection at once, handed over
    here without the broker."""
    c1, c2 = await make_container(), await make_container()
    journal: Collector[Any] = Collector()
    a = await spawn(c1, Trapper, "a", journal)
    b = await spawn(c2, Worker, "b", journal)

    def down(*args: Any, **kw: Any) -> defer.Deferred[None]:
        return defer.fail(exc.ConnectionLostError("connection lost"))

    monkeypatch.setattr(c1.exchange, "publish", down)
    a.link(b.id)
    ref = a.monitor(b.id)
    assert entries(journal, "on_exit") == [("on_exit", "a", str(b.id), "noconnection")]
    assert entries(journal, "on_down") == [("on_down", "a", ref, str(b.id), "noconnection")]
    assert a.links == frozenset() and b.links == frozenset()


@pytest_twisted.ensureDeferred
async def test_a_lost_broker_connection_ends_remote_links_on_both_sides(
    make_container: Any,
) -> None:
    """S28 on the embedded broker: the broker link of c1 is lost. At once, c1's
    processes with links or monitors into c2 get noconnection (a trapping one
    on_exit/on_down, a linked one not trapping exits, and its local link hears
    that); local links stay. When it is back, c2's processes get noconnection
    for their links and monitors of c1's, each once; nothing is linked again."""
    c1, c2 = await make_container(), await make_container()
    journal: Collector[Any] = Collector()
    a = await spawn(c1, Trapper, "a", journal)
    n = await spawn(c1, Worker, "n", journal)
    loc = await spawn(c1, Trapper, "loc", journal)
    b = await spawn(c2, Trapper, "b", journal)
    w = await spawn(c2, Worker, "w", journal)
    a.link(b.id)
    ab = a.monitor(b.id)
    n.link(b.id)
    loc.link(n.id)
    loc.link(a.id)
    wa = w.monitor(a.id)
    client = await c1.spawn(Process, name="client")
    await synced(client, b, w)
    assert b.links == {str(a.id), str(n.id)} and set(b._watchers) == {ab}

    c1.proc_manager._broker_lost(exc.ConnectionLostError("cut"))
    assert entries(journal, "on_exit") == [("on_exit", "a", str(b.id), "noconnection")]
    assert entries(journal, "on_down") == [("on_down", "a", ab, str(b.id), "noconnection")]
    assert await ended(journal, "n") == "noconnection"
    await journal.wait_until(lambda e: e[:3] == ("on_exit", "loc", str(n.id)))
    assert a.links == {str(loc.id)} and a._watchers == {} and a._monitors == {}
    assert len(c1.proc_manager.remote.owed) == 4  # a: exit, demonitor, down; n: exit

    c1.proc_manager.remote.reconnected()
    await journal.wait_until(lambda e: e[:3] == ("on_exit", "b", str(n.id)))
    await journal.wait_until(lambda e: e[:3] == ("on_exit", "b", str(a.id)))
    await journal.wait_until(lambda e: e[:2] == ("on_down", "w"))
    c1.proc_manager.remote.reconnected()  # nothing owed twice
    await synced(client, b, w, a)
    got = sorted(e for e in journal.items if e[0] in ("on_exit", "on_down"))
    assert got == sorted(
        [
            ("on_exit", "a", str(b.id), "noconnection"),
            ("on_down", "a", ab, str(b.id), "noconnection"),
            ("on_exit", "loc", str(n.id), "noconnection"),
            ("on_exit", "b", str(a.id), "noconnection"),
            ("on_exit", "b", str(n.id), "noconnection"),
            ("on_down", "w", wa, str(a.id), "noconnection"),
        ]
    )
    assert b.links == frozenset() and b._watchers == {} and w._monitors == {}
    assert a.state == b.state == w.state == "ACTIVE"
    a.link(b.id)  # a new link is a new link
    await synced(client, b)
    assert str(a.id) in b.links


@pytest_twisted.ensureDeferred
async def test_container_lost_ends_links_into_it(make_container: Any) -> None:
    """proc_manager.container_lost(c2): links and monitors of c1's processes
    into c2 end noconnection at once, c2's watchers are dropped, nothing is owed
    to c2, and links into c3 stay. A container cannot lose itself."""
    c1, c2, c3 = await make_container(), await make_container(), await make_container()
    journal: Collector[Any] = Collector()
    a = await spawn(c1, Trapper, "a", journal)
    b = await spawn(c2, Worker, "b", journal)
    w = await spawn(c2, Worker, "w", journal)
    x = await spawn(c3, Worker, "x", journal)
    a.link(b.id)
    ab = a.monitor(b.id)
    a.link(x.id)
    w.monitor(a.id)
    client = await c1.spawn(Process, name="client")
    await synced(client, b, w, x)
    assert c1.proc_manager.container_lost(c2.id) == 3
    assert entries(journal, "on_exit") == [("on_exit", "a", str(b.id), "noconnection")]
    assert entries(journal, "on_down") == [("on_down", "a", ab, str(b.id), "noconnection")]
    assert a.links == {str(x.id)} and a._watchers == {} and a._monitors == {}
    assert c1.proc_manager.remote.owed == []
    assert c1.proc_manager.container_lost(c2.id) == 0
    with pytest.raises(exc.ProcessError):
        c1.proc_manager.container_lost(c1.id)
