"""Signed messages between processes on the embedded broker: what does not verify
never reaches a handler, and is answered with a typed 401 when it has a reply-to."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.cc.container import Container
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.core.security import signing
from ion.core.security.keys import Key, KeyRing, read_key_file
from tests.core.security.conftest import Frame, config
from tests.helpers import Collector, wait_for

System = Callable[..., Awaitable[Container]]


class Echo(ServiceProcess):
    """Answers with what it got, and notes who asked."""

    service_name = "echo"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.users: list[Any] = []

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.users.append(headers.get(m.USER_ID))
        return content


async def watch(container: Container, key: str) -> Collector[Any]:
    """Deliveries to routing key C{key}, acked."""
    queue = await container.exchange.declare_queue(key)
    got: Collector[Any] = Collector(ack=True)
    await container.exchange.consume(queue, got, 0)
    return got


def request(reply_to: str, n: int, performative: str = "request") -> dict[str, Any]:
    """A request from an outsider to the echo service, its answer to C{reply_to}."""
    return {
        m.SENDER: "intruder.1@elsewhere",
        m.RECEIVER: "echo",
        m.REPLY_TO: reply_to,
        m.CONV_ID: f"intruder.1@elsewhere#{n}",
        m.CONV_SEQ: 1,
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: performative,
        m.OP: "echo",
        m.USER_ID: "alice",
        m.EXPIRY: int((time.time() + 15) * 1000),
    }


def answer(delivery: Any) -> m.Message:
    return m.decode(delivery.body)


TAMPERED = {
    m.SENDER: "admin.1@c9",
    m.RECEIVER: "other",
    m.REPLY_TO: "watch2",
    m.CONV_ID: "intruder.1@elsewhere#999",
    m.CONV_SEQ: 7,
    m.PROTOCOL: "request",
    m.PERFORMATIVE: "request",  # (signed as an inform: tampered into a request)
    m.OP: "echo_again",
    m.STATUS: "OK",
    m.USER_ID: "admin",
    m.EXPIRY: int((time.time() + 60) * 1000),
    m.TS: None,  # one more
    m.ENCODING: "msgpack",
    m.KID: "k1",
    m.NONCE: None,  # one more
    m.SENDER_EPOCH: 7,
    m.RECEIVER_EPOCH: 7,
}


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("name", [*signing.SIGNED, "body"])
async def test_tampered_request_dropped_and_answered_401(
    name: str, system: System, key_file: Path
) -> None:
    """Tampering with any signed header, or the body: the handler never runs, the
    refusal is counted, and an unsigned 401 SignatureError goes to the reply-to."""
    container = await system(config(key_file))
    echo = await container.spawn(Echo)
    watched = await watch(container, "watch")
    watched2 = await watch(container, "watch2")
    signer = container.exchange.signer
    performative = "inform" if name == m.PERFORMATIVE else "request"
    f = Frame(m.encode(request("watch", 1, performative), "hi", signer))
    if name == "body":
        f.content = "changed"
    else:
        value = TAMPERED[name]
        if value is None:
            value = f.headers[name] + 1
        assert f.headers.get(name) != value
        f.headers[name] = value
    headers = f.headers
    before = sum(signer.refused.values())
    await container.exchange.publish("echo", f.pack())
    got = watched2 if name == m.REPLY_TO else watched
    delivery = (await got.wait(1))[0]
    reply = answer(delivery)
    assert reply.performative == "failure" and reply.status == m.STATUS_ERROR
    assert reply.content["code"] == 401 and reply.content["type"] == "SignatureError"
    assert reply.headers[m.CONV_ID] == headers[m.CONV_ID]
    assert sum(signer.refused.values()) == before + 1
    # The answer is unsigned: headers nobody verified cannot aim a signed failure
    # at a signing process's open call (its reply-to and conv-id are anybody's).
    with pytest.raises(exc.SignatureError) as refused:
        signer.verify(delivery.body, "test")
    assert refused.value.reason == signing.UNSIGNED
    assert echo.users == [] and echo.state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_signed_calls_work_and_are_counted(system: System, key_file: Path) -> None:
    container = await system(config(key_file))
    await container.spawn(Echo)
    client = await container.spawn(Process, name="client")
    assert await wait_for(client.rpc_send("echo", "echo", {"x": b"1"})) == {"x": b"1"}
    stats = container.exchange.signer.stats()
    assert stats["signed"] >= 2 and stats["verified"] >= 2 and stats["refused"] == {}
    info = await wait_for(agent_client.get_info(client, container.id))
    assert info["signing"]["kids"] == ["k2", "k1"] and info["signing"]["verified"] >= 2


@pytest_twisted.ensureDeferred
async def test_get_info_says_signing_is_off(system: System) -> None:
    container = await system(config(None))
    client = await container.spawn(Process, name="client")
    info = await wait_for(agent_client.get_info(client, container.id))
    assert info["signing"] is None


@pytest_twisted.ensureDeferred
async def test_unsigned_call_refused_with_typed_401_at_the_caller(
    system: System, key_file: Path
) -> None:
    """A container with signing off calls one with signing on: the call fails with
    a 401 SignatureError envelope; the handler never runs."""
    signed = await system(config(key_file))
    echo = await signed.spawn(Echo)
    unsigned = await system(config(None))
    client = await unsigned.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedApplicationError, match="unsigned") as info:
        await wait_for(client.rpc_send("echo", "echo", "hi"))
    assert info.value.code == 401 and info.value.error_type == "SignatureError"
    assert isinstance(exc.rebuilt(info.value), exc.SignatureError)  # (as agent_client does)
    assert echo.users == []
    assert signed.exchange.signer.refused[signing.UNSIGNED] >= 1


@pytest_twisted.ensureDeferred
async def test_forged_user_id_never_reaches_the_handler(system: System, key_file: Path) -> None:
    """A request that says user-id admin without a valid signature, signed or not,
    is not run; the same request honestly signed is, with its user."""
    container = await system(config(key_file))
    echo = await container.spawn(Echo)
    watched = await watch(container, "watch")
    signer = container.exchange.signer
    f = Frame(m.encode(request("watch", 1), "x", signer))
    f.headers[m.USER_ID] = "admin"
    await container.exchange.publish("echo", f.pack())
    unsigned = {**request("watch", 2), m.USER_ID: "admin"}
    await container.exchange.publish("echo", m.encode(unsigned, "x"))
    replies = [answer(d) for d in await watched.wait(2)]
    assert [r.content["code"] for r in replies] == [401, 401]
    assert echo.users == []
    await container.exchange.publish("echo", m.encode(request("watch", 3), "x", signer))
    honest = answer((await watched.wait(3))[2])
    assert honest.status == m.STATUS_OK and echo.users == ["alice"]


@pytest_twisted.ensureDeferred
async def test_replayed_request_refused(system: System, key_file: Path) -> None:
    container = await system(config(key_file))
    echo = await container.spawn(Echo)
    watched = await watch(container, "watch")
    body = m.encode(request("watch", 1), "once", container.exchange.signer)
    await container.exchange.publish("echo", body)
    await container.exchange.publish("echo", body)
    first, second = (answer(d) for d in await watched.wait(2))
    assert first.status == m.STATUS_OK and first.content == "once"
    assert second.content["code"] == 401 and "replayed" in second.content["message"]
    assert echo.users == ["alice"]


@pytest_twisted.ensureDeferred
async def test_a_replay_dressed_as_a_redelivery_copy_is_refused(
    system: System, key_file: Path
) -> None:
    """The redelivery count header a classic queue's copy carries takes the same
    signature again only with the voucher a key holder made for that count: a
    replay with a made-up count, or a voucher for another count, is refused."""
    from ion.core.process import poison

    container = await system(config(key_file))
    echo = await container.spawn(Echo)
    watched = await watch(container, "watch")
    signer = container.exchange.signer
    body = m.encode(request("watch", 1), "once", signer)
    broker = container.exchange.broker
    exchange = container.exchange.exchange_name
    await container.exchange.publish("echo", body)
    forged = {poison.REDELIVERIES: 1}
    await broker.publish(exchange, "echo", body, forged, True, True)
    wrong = {poison.REDELIVERIES: 2, poison.VOUCHER: signer.voucher(body, 1)}
    await broker.publish(exchange, "echo", body, wrong, True, True)
    vouched = {poison.REDELIVERIES: 1, poison.VOUCHER: signer.voucher(body, 1)}
    await broker.publish(exchange, "echo", body, vouched, True, True)
    first, *refused, copy = (answer(d) for d in await watched.wait(4))
    assert first.content == "once" and copy.content == "once"
    assert [r.content["code"] for r in refused] == [401, 401]
    assert all("replayed" in r.content["message"] for r in refused)
    assert echo.users == ["alice", "alice"]


def other_signer(key: Key, skew_s: float = 0.0) -> signing.Signer:
    return signing.Signer(KeyRing(key), lambda: time.time() + skew_s)


@pytest_twisted.ensureDeferred
async def test_previous_key_accepted_retired_refused(system: System, key_file: Path) -> None:
    """A sender still on the previous key (k1) is taken during the rotation; one on
    a key no longer in the ring is answered 401 (unknown key id)."""
    container = await system(config(key_file))
    echo = await container.spawn(Echo)
    watched = await watch(container, "watch")
    previous = read_key_file(str(key_file)).previous
    assert previous is not None
    retired = Key("k0", b"\x07" * 32)
    await container.exchange.publish(
        "echo", m.encode(request("watch", 1), 1, other_signer(previous))
    )
    await container.exchange.publish(
        "echo", m.encode(request("watch", 2), 2, other_signer(retired))
    )
    ok, refused = (answer(d) for d in await watched.wait(2))
    assert ok.status == m.STATUS_OK and ok.content == 1
    assert refused.content["code"] == 401 and "unknown key id 'k0'" in refused.content["message"]
    assert echo.users == ["alice"]


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("skew", [-400.0, 400.0])
async def test_ts_outside_the_window_refused(system: System, key_file: Path, skew: float) -> None:
    container = await system(config(key_file, security={"max_skew": 300}))
    echo = await container.spawn(Echo)
    watched = await watch(container, "watch")
    current = read_key_file(str(key_file)).current
    body = m.encode(request("watch", 1), 1, other_signer(current, skew))
    await container.exchange.publish("echo", body)
    refused = answer((await watched.wait(1))[0])
    assert refused.content["code"] == 401 and "outside the window" in refused.content["message"]
    assert echo.users == []


@pytest_twisted.ensureDeferred
async def test_an_answer_that_fails_verification_is_dropped_and_the_call_waits_on(
    system: System, key_file: Path
) -> None:
    """An answer signed with another key (a forged one) is dropped and counted: no
    result is taken from it, nor does it fail the call, which takes the honest
    answer that comes after it."""
    container = await system(config(key_file))
    client = await container.spawn(Process, name="client")
    requests = await watch(container, "fake")
    call = client.rpc_send("fake", "op", None)
    asked = answer((await requests.wait(1))[0])

    def reply(content: str) -> dict[str, Any]:
        return {
            m.SENDER: "fake.1@elsewhere",
            m.RECEIVER: asked.headers[m.REPLY_TO],
            m.CONV_ID: asked.conv_id,
            m.CONV_SEQ: 2,
            m.PROTOCOL: "rpc",
            m.PERFORMATIVE: "inform_result",
            m.OP: "result",
            m.STATUS: m.STATUS_OK,
        }

    signer = container.exchange.signer
    refusals: Collector[str] = Collector()
    signer.listeners.append(lambda _headers, error: refusals(error.reason))
    wrong = other_signer(Key("k2", b"\x05" * 32))  # the current kid, another key
    await container.exchange.publish(
        asked.headers[m.REPLY_TO], m.encode(reply("lie"), "lie", wrong)
    )
    assert await refusals.wait(1) == [signing.BAD_SIGNATURE]
    assert not call.called
    await container.exchange.publish(
        asked.headers[m.REPLY_TO], m.encode(reply("truth"), "truth", signer)
    )
    assert await wait_for(call) == "truth"


class Watcher(Process):
    """Notes the down signals it gets."""

    downs: Collector[Any]

    def on_down(self, ref: str, pid: str, reason: str) -> None:
        self.downs((ref, pid, reason))


@pytest_twisted.ensureDeferred
async def test_signals_between_signing_containers(system: System, key_file: Path) -> None:
    """A monitor across two signing containers still fires: signals are signed."""
    a = await system(config(key_file))
    b = await system(config(key_file))
    watcher = await a.spawn(Watcher, name="watcher")
    watcher.downs = Collector()
    target = await b.spawn(Echo)
    ref = watcher.monitor(target.id)
    # The monitor signal is on its way before this call's request: it arrives first.
    assert await wait_for(watcher.rpc_send(target.id, "echo", 1)) == 1
    assert str(watcher.id) in target._watchers.values()
    await b.terminate(target)
    (got,) = await watcher.downs.wait(1)
    assert got == (ref, str(target.id), "shutdown")
    assert a.exchange.signer.refused == {} and b.exchange.signer.refused == {}


@pytest_twisted.ensureDeferred
async def test_a_forged_user_id_never_reaches_the_policy(
    system: System, key_file: Path, tmp_path: Path
) -> None:
    """Signing and a policy on: a request claiming user-id admin (who holds the
    role echo needs) with a changed signature is refused by the signature check
    (401 SignatureError) and the policy never judges it; signed honestly as
    alice (no role), the policy judges it and refuses it (403)."""
    policy = tmp_path / "policy.yml"
    policy.write_text(
        "default: deny\nusers: {admin: [operator]}\nservices: {echo: {echo: [operator]}}\n"
    )
    container = await system(config(key_file, security={"policy": str(policy)}))
    await container.spawn(Echo)
    watched = await watch(container, "watch")
    signer = container.exchange.signer
    f = Frame(m.encode(request("watch", 1), "x", signer))
    f.headers[m.USER_ID] = "admin"
    await container.exchange.publish("echo", f.pack())
    forged = answer((await watched.wait(1))[0])
    assert forged.content["code"] == 401 and forged.content["type"] == "SignatureError"
    assert container.policy is not None and container.policy.info()["decisions"] == []
    await container.exchange.publish("echo", m.encode(request("watch", 2), "x", signer))
    judged = answer((await watched.wait(2))[1])
    assert judged.content["code"] == 403 and judged.content["type"] == "Forbidden"
    assert [d["decision"] for d in container.policy.info()["decisions"]] == ["forbidden"]
