"""Where code runs (ion.core.process.context): a client made with no arguments
finds the container and process of the handler or hook it is made in; the
user-id of a request is the default identity of the calls its handler makes."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core.exception import ProcessError
from ion.core.messaging import message as m
from ion.core.process import context
from ion.core.process.process import Process
from ion.core.process.service import ServiceClient, ServiceProcess
from ion.services.hello.service import HelloService, HelloServiceClient


class Where(ServiceProcess):
    """Says where its handlers (and a client made there) run."""

    service_name = "where"

    def on_init(self) -> None:
        self.client_at_init = ServiceClient(targetname="hello")

    def op_sync(self, content: Any, headers: dict[str, Any], msg: Any) -> dict[str, Any]:
        client = ServiceClient(targetname="hello")
        return {"container": client.container.id, "same_proc": client.proc is self}

    async def op_after_await(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        await defer.succeed(None)
        greeting = await HelloServiceClient().hello("x")  # after an await, still here
        place = context.current()
        assert place is not None
        return {"container": place.container.id, "greeting": greeting}


@pytest_twisted.ensureDeferred
async def test_two_containers_handlers_each_find_their_own(make_container: Any) -> None:
    """Two containers in one reactor (one system): each handler's client is its own container's."""
    first, second = await make_container(), await make_container()
    one = await first.spawn(Where, name="one")
    two = await second.spawn(Where, name="two")
    for c in (first, second):
        await c.spawn(HelloService)
    caller = await first.spawn(Process, name="caller")

    assert await caller.rpc_send(one.id, "sync") == {"container": first.id, "same_proc": True}
    assert await caller.rpc_send(two.id, "sync") == {"container": second.id, "same_proc": True}
    later = await caller.rpc_send(two.id, "after_await")
    assert later == {"container": second.id, "greeting": "Hello there, x"}
    assert one.client_at_init.proc is one and two.client_at_init.container is second


def test_outside_any_container_the_error_says_how_to_pass_one() -> None:
    with pytest.raises(ProcessError, match=r"HelloServiceClient\(\).*pass proc=.*container="):
        HelloServiceClient()


@pytest_twisted.ensureDeferred
async def test_the_place_is_left_after_the_handler(container: Any) -> None:
    """Nothing of a handler's place stays behind in the reactor's context, where
    the broker delivered to it: later code there is in no place."""
    where = await container.spawn(Where)
    caller = await container.spawn(Process, name="caller")
    await caller.rpc_send(where.id, "sync", headers={m.USER_ID: "alice"})
    seen: defer.Deferred[Any] = defer.Deferred()
    container.reactor.callLater(0, lambda: seen.callback(context.current()))
    assert await seen is None


class Relay(ServiceProcess):
    """Calls the next service (spawn arg C{next}) or answers the headers it got."""

    service_name = "relay"

    async def op_ask(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        after = self.args.get("next")
        if after is None:
            return {"user": headers.get(m.USER_ID)}
        if content == "as-bob":
            return await self.rpc_send(after, "ask", None, headers={m.USER_ID: "bob"})
        return await self.rpc_send(after, "ask", content)


@pytest_twisted.ensureDeferred
async def test_identity_travels_a_to_b_to_c(container: Any) -> None:
    """alice's request to A: A's call to B and B's to C carry alice; one without is anonymous."""
    c = await container.spawn(Relay, name="c", args={"servicename": "c"})
    b = await container.spawn(Relay, name="b", args={"servicename": "b", "next": "c"})
    a = await container.spawn(Relay, name="a", args={"servicename": "a", "next": "b"})
    caller = await container.spawn(Process, name="caller")

    assert await caller.rpc_send("a", "ask", headers={m.USER_ID: "alice"}) == {"user": "alice"}
    assert await caller.rpc_send("a", "ask") == {"user": None}
    # A call's own header wins; from there on it travels.
    assert await caller.rpc_send("a", "ask", "as-bob", headers={m.USER_ID: "alice"}) == {
        "user": "bob"
    }
    assert a.state == b.state == c.state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_a_process_may_set_its_identity(container: Any) -> None:
    """A process's own user_id is what its calls carry, over the caller's."""
    await container.spawn(Relay, name="c", args={"servicename": "c"})
    b = await container.spawn(Relay, name="b", args={"servicename": "b", "next": "c"})
    b.user_id = "service-b"
    caller = await container.spawn(Process, name="caller")
    assert await caller.rpc_send("b", "ask", headers={m.USER_ID: "alice"}) == {"user": "service-b"}
    caller.user_id = "carol"
    assert await caller.rpc_send("c", "ask") == {"user": "carol"}


@pytest_twisted.ensureDeferred
async def test_an_event_handler_runs_in_its_process(container: Any) -> None:
    """A subscriber's handler (plain or async) finds its process, as an op handler does."""
    from ion.core import events

    listener = await container.spawn(Process, name="listener")
    found: defer.Deferred[Any] = defer.Deferred()

    async def handler(event: Any, msg: Any) -> None:
        await defer.succeed(None)
        found.callback(ServiceClient(targetname="hello").proc)

    await events.EventSubscriber(listener, origin="o", handler=handler).start()
    event = events.create_event(1001, origin="o", resource_id="r")
    await events.publish(container.exchange, "test", event)
    assert await found is listener
