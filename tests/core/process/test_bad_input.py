"""Bad input is answered, never fatal: the process stays ACTIVE and keeps serving."""

from __future__ import annotations

import gc
from typing import Any

import msgpack
import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock

from ion.core import exception as exc
from ion.core.cc.agent_ops import local_info
from ion.core.cc.container import Container
from ion.core.messaging import message as m
from ion.core.messaging.conversation.core import Conversation
from ion.core.process.process import REPLY_KEY_SUFFIX, Process
from ion.core.process.service import ServiceProcess
from tests.helpers import wait_for


class Echo(ServiceProcess):
    service_name = "echo"

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return content


async def pair(container: Container) -> tuple[Echo, Process]:
    return await container.spawn(Echo), await container.spawn(Process, name="client")


@pytest_twisted.ensureDeferred
async def test_body_that_is_not_msgpack(container: Container, logs: Any) -> None:
    """A body that is not msgpack is logged and dropped; the service keeps serving."""
    service, client = await pair(container)
    await container.exchange.publish("echo", b"\xc1\xc1 not msgpack")
    await logs.wait_for_text("body is not msgpack")
    assert service.state == "ACTIVE"
    assert await wait_for(client.rpc_send("echo", "echo", "still here")) == "still here"


@pytest_twisted.ensureDeferred
async def test_bad_messages_are_counted_in_get_info(container: Container, logs: Any) -> None:
    """Dropped messages are counted by cause, sender and queue, shown by get_info;
    only the first of a cause is logged while they keep coming."""
    service, client = await pair(container)
    bad = {m.SENDER: "mallory.1@x", m.RECEIVER: "echo", m.PROTOCOL: "nonsense"}
    for _ in range(50):
        await container.exchange.publish("echo", m.encode(bad, 1))
    await container.exchange.publish("echo", b"\xc1")
    assert await wait_for(client.rpc_send("echo", "echo", "after")) == "after"
    drops = local_info(container)["drops"]
    assert drops["total"] == 51
    assert drops["causes"] == {
        "MessageFormatError: missing or non-string headers": 50,
        "MessageFormatError: body is not msgpack": 1,
    }
    assert drops["senders"] == {"mallory.1@x": 50, "unknown": 1}
    assert drops["places"] == {"echo": 51}
    assert len(logs.texts_with("dropped a message at echo")) == 2


@pytest_twisted.ensureDeferred
async def test_a_request_with_no_reply_to_is_run_and_its_answer_dropped(
    container: Container, logs: Any
) -> None:
    """A request with nowhere to answer (no reply-to) runs; its answer, here an
    error, is dropped and counted once, with no failure logged."""
    service, client = await pair(container)
    headers = {m.SENDER: "mallory.1@x", m.RECEIVER: "echo", m.CONV_ID: "mallory.1@x#1",
               m.PROTOCOL: "rpc", m.PERFORMATIVE: "request", m.OP: "no_such_op"}  # fmt: skip
    await container.exchange.publish("echo", m.encode(headers, 1))
    assert await wait_for(client.rpc_send("echo", "echo", "after")) == "after"
    assert container.drops.causes == {"answer to a message with no reply-to": 1}
    assert [e for e in logs.events.items if "log_failure" in e] == []
    assert service.state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_missing_headers_answered_with_clear_error(container: Container) -> None:
    """A request missing required headers gets a 400 error naming them, not a timeout."""
    service, client = await pair(container)
    conv_id = f"{client.id}#manual"
    conv = client.conversations.start(conv_id, "rpc", 5)
    headers = {
        m.REPLY_TO: str(client.id) + REPLY_KEY_SUFFIX,
        m.CONV_ID: conv_id,
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "request",
        m.OP: "echo",
    }  # no sender, no receiver
    await container.exchange.publish("echo", m.encode(headers, "x"))
    with pytest.raises(exc.ReceivedApplicationError) as info:
        await wait_for(conv.deferred)
    assert info.value.code == 400 and "sender" in info.value.message
    assert "receiver" in info.value.message
    assert service.state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_reply_for_unknown_conversation(container: Container, logs: Any) -> None:
    """A reply nobody waits for is logged and dropped; the receiver keeps working."""
    service, client = await pair(container)
    headers = {
        m.SENDER: "someone.1@elsewhere",
        m.RECEIVER: str(client.id),
        m.CONV_ID: "someone.1@elsewhere#77",
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "inform_result",
        m.STATUS: "OK",
    }
    await container.exchange.publish(str(client.id) + REPLY_KEY_SUFFIX, m.encode(headers, 1))
    await logs.wait_for_text("reply for unknown conversation")
    assert client.state == "ACTIVE"
    assert await wait_for(client.rpc_send("echo", "echo", 2)) == 2


@pytest_twisted.ensureDeferred
async def test_memory_flat_over_100000_calls(container: Container) -> None:
    """Finished conversations are collected: 100,000 calls leave no growth behind."""
    service, client = await pair(container)

    def live() -> tuple[int, int]:
        gc.collect()
        objects = gc.get_objects()
        return len(objects), sum(1 for o in objects if isinstance(o, Conversation))

    for _ in range(20_000):
        await client.rpc_send("echo", "echo", b"x" * 64)
    before, earlier = live()  # (earlier tests' objects may still be alive: not ours)
    for _ in range(80_000):
        await client.rpc_send("echo", "echo", b"x" * 64)
    after, conversations = live()
    assert client.conversations.open == {} and client.conversations.generic == {}
    assert conversations - earlier <= 2  # at most the last call's, referenced from its frame
    assert after - before < 500, f"{after - before} objects more after 80,000 more calls"


# -- property: random input never takes a process down -------------------------


def pump(clock: Clock) -> None:
    """Run everything due now on the fake clock (deliveries are scheduled at delay 0)."""
    while any(c.getTime() <= clock.seconds() for c in clock.getDelayedCalls()):
        clock.advance(0)


header_names = st.sampled_from(
    [*m.REQUIRED, m.OP, m.REPLY_TO, m.CONV_SEQ, m.STATUS, m.ENCODING, m.USER_ID, "x-extra"]
)
ints = st.integers(-(2**63), 2**63 - 1)  # what msgpack can carry
header_values = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    st.text(max_size=20),
    st.binary(max_size=20),
    st.sampled_from(["rpc", "request", "generic", "none", "request", "inform_result", "echo"]),
    st.lists(ints, max_size=3),
)
header_maps = st.dictionaries(header_names, header_values, max_size=8)
content = st.recursive(
    st.one_of(st.none(), st.booleans(), ints, st.text(), st.binary()),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=10,
)
garbage = st.one_of(
    st.binary(max_size=200),
    header_maps.map(lambda h: msgpack.packb([h, None], use_bin_type=True)),
    st.tuples(header_maps, content).map(lambda hc: msgpack.packb(list(hc), use_bin_type=True)),
    content.map(lambda c: msgpack.packb(c, use_bin_type=True)),
)
extra_headers = st.dictionaries(
    # Extra headers: any name but those a request's validity depends on.
    st.text(min_size=1, max_size=10).filter(
        lambda k: k not in m.REQUIRED + (m.OP, m.REPLY_TO, m.CONV_SEQ, m.ENCODING)
    ),
    header_values,
    max_size=4,
)


def test_random_input_never_takes_a_process_down() -> None:
    """Random bytes and header maps sent to a service leave it ACTIVE, and every
    well-formed request (with random extra headers and content) is still answered."""
    clock = Clock()
    container = Container(reactor=clock, container_id="prop", sysname="prop")
    started = ensureDeferred(container.start())
    pump(clock)
    assert started.called
    spawned = ensureDeferred(pair(container))
    pump(clock)
    service, client = spawned.result

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(noise=st.lists(garbage, max_size=3), extra=extra_headers, value=content)
    def check(noise: list[bytes], extra: dict[str, Any], value: Any) -> None:
        for body in noise:
            container.exchange.publish("echo", body)
            container.exchange.publish(str(service.id), body)
        call = client.rpc_send("echo", "echo", value, headers=extra)
        pump(clock)
        assert service.state == "ACTIVE" and client.state == "ACTIVE"
        assert call.called, "a well-formed request went unanswered"
        assert call.result == value

    check()
    stopped = ensureDeferred(container.stop())
    pump(clock)
    assert stopped.called
