"""Requests that used to go unanswered or wedge a service, on both brokers: each
is answered with an error at once, and the service keeps serving."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from ion.core import exception as exc
from ion.core.cc.container import Container
from ion.core.messaging import message as m
from ion.core.process import poison
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.test.waiting import Collector, wait_for
from tests.core.cc.test_amqp_twistd import OsSystem
from tests.launch import TIMEOUT, await_file, launch
from tests.rabbit import URL, delete_systems, require_rabbitmq

BROKERS = ["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)]
both_brokers = pytest.mark.parametrize("ion_broker", BROKERS, indirect=True)

PATIENT = 30  # the caller's timeout: an answer must come long before it
AT_ONCE = 5


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str() of this error raises")


_BASE = {"SystemExit": SystemExit, "KeyboardInterrupt": KeyboardInterrupt}


class Faulty(ServiceProcess):
    """Handlers that fail in the ways that used to leave the caller waiting."""

    service_name = "faulty"

    def op_str_raises(self, content: Any, headers: dict, msg: m.Message) -> Any:
        raise StrRaises()

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered: list[str] = []

    def op_exit(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.entered.append(content)
        raise _BASE[content]()

    async def op_exit_async(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.entered.append(content)
        raise _BASE[content]()

    def op_huge_error(self, content: Any, headers: dict, msg: m.Message) -> Any:
        raise RuntimeError("x" * 4000)

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return content


async def _service_and_client(
    factory: Callable[..., Awaitable[Container]], **config: Any
) -> tuple[Any, Process]:
    container = await factory(config=config)
    service = await container.spawn(Faulty)
    return service, await container.spawn(Process, name="client")


async def _still_serves(client: Process, service: Any) -> None:
    assert service.state == "ACTIVE"
    assert await wait_for(client.rpc_send("faulty", "echo", "still here"), AT_ONCE) == "still here"


@both_brokers
@pytest_twisted.ensureDeferred
async def test_an_error_whose_str_raises_is_answered_at_once(ion_container_factory) -> None:
    """A handler's exception whose str() raises is answered with a 500 naming its type."""
    service, client = await _service_and_client(ion_container_factory)
    with pytest.raises(exc.ReceivedContainerError) as raised:
        await wait_for(client.rpc_send("faulty", "str_raises", timeout=PATIENT), AT_ONCE)
    assert raised.value.content["type"] == "StrRaises"
    assert "its str() raised RuntimeError" in raised.value.content["message"]
    await _still_serves(client, service)


@both_brokers
@pytest_twisted.ensureDeferred
async def test_a_request_with_the_last_conv_seq_is_answered_at_once(ion_container_factory) -> None:
    """conv-seq 2^64-1 has no successor an answer could carry: the request is refused
    as malformed, with an error the caller gets at once."""
    service, client = await _service_and_client(ion_container_factory)
    call = client.rpc_send("faulty", "echo", "x", timeout=PATIENT, headers={m.CONV_SEQ: 2**64 - 1})
    with pytest.raises(exc.ReceivedApplicationError, match="conv-seq"):
        await wait_for(call, AT_ONCE)
    await _still_serves(client, service)


@both_brokers
@pytest_twisted.ensureDeferred
async def test_an_error_too_big_to_send_is_answered_with_a_500(ion_container_factory) -> None:
    """An error envelope over broker.max_message_size cannot go: a short 500 goes instead."""
    service, client = await _service_and_client(
        ion_container_factory, broker={"max_message_size": 2000}
    )
    with pytest.raises(exc.ReceivedContainerError, match="the error of 'huge_error' cannot be"):
        await wait_for(client.rpc_send("faulty", "huge_error", timeout=PATIENT), AT_ONCE)
    await _still_serves(client, service)


@both_brokers
@pytest.mark.parametrize("op", ["exit", "exit_async"])
@pytest_twisted.ensureDeferred
async def test_a_handler_raising_system_exit_is_answered_and_the_service_stays(
    ion_container_factory, op: str
) -> None:
    """SystemExit or KeyboardInterrupt from a handler is one op's error, not the
    container's: answered with a 500 at once, the request not run again, the
    service ACTIVE and serving (on RabbitMQ it used to drop the broker link and
    be redelivered after every reconnect)."""
    service = await (await ion_container_factory()).spawn(Faulty)
    client = await (await ion_container_factory()).spawn(Process, name="client")
    for error in _BASE:
        with pytest.raises(exc.ReceivedContainerError) as raised:
            await wait_for(client.rpc_send("faulty", op, error, timeout=PATIENT), AT_ONCE)
        assert raised.value.content["type"] == error
    await _still_serves(client, service)
    assert service.entered == list(_BASE)


class Crashy(ServiceProcess):
    """op_crash gives its delivery back as a dying instance's broker would."""

    service_name = "crashy"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.runs: list[tuple[Any, bool]] = []

    def op_crash(self, content: Any, headers: dict, msg: m.Message) -> None:
        self.runs.append((content, msg.delivery.redelivered))
        # What the broker does with an unacked delivery when its holder dies.
        msg.delivery.reject(requeue=True)

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return content


@pytest.mark.parametrize(
    ("ion_broker", "queue_type"),
    [
        ("local", "classic"),
        pytest.param("amqp", "classic", marks=pytest.mark.rabbitmq),
        # A quorum queue counts the deliveries itself (x-delivery-count).
        pytest.param("amqp", "quorum", marks=pytest.mark.rabbitmq),
    ],
    indirect=["ion_broker"],
)
@pytest_twisted.ensureDeferred
async def test_a_request_redelivered_too_often_goes_to_the_dead_letter_queue(
    ion_container_factory, logs, queue_type
) -> None:
    """A request whose every delivery is lost with its holder runs
    process.max_redeliveries + 1 times, then goes to <sysname>.dead_letters with
    headers saying where from, logged with its origin, instead of looping."""
    types = {"broker": {"queue_type": queue_type}}
    container = await ion_container_factory(config={"process": {"max_redeliveries": 2}, **types})
    service = await container.spawn(Crashy)
    client = await (await ion_container_factory(config=types)).spawn(Process, name="client")
    broker = container.exchange.broker
    queue = container.exchange.queue_name(poison.DEAD_LETTER_KEY)
    await container.exchange.declare_shared(queue)
    dead = Collector()
    await broker.consume(queue, dead)
    await client.send("crashy", "crash", "poison")
    [letter] = await dead.wait(1)
    letter.ack()
    assert m.decode(letter.body).content == "poison"
    assert letter.headers[poison.REDELIVERIES] == 3
    assert letter.headers[poison.ORIGIN_KEY] == "crashy"
    assert letter.headers[poison.DEAD_BY] == str(service.id)
    assert service.runs == [("poison", False), ("poison", True), ("poison", True)]
    text = await logs.wait_for_text("moved to " + queue)
    assert str(client.id) in logs.text(text) and "redelivered 3 times" in logs.text(text)
    assert await wait_for(client.rpc_send("crashy", "echo", "next"), AT_ONCE) == "next"
    assert len(service.runs) == 3


@pytest.mark.parametrize(
    "ion_broker", ["local", pytest.param("amqp", marks=pytest.mark.rabbitmq)], indirect=True
)
@pytest.mark.parametrize("limit_of", ["container", "process"])
@pytest_twisted.ensureDeferred
async def test_signed_redelivery_copies_are_taken_as_redeliveries(
    ion_container_factory, tmp_path, limit_of
) -> None:
    """Signing on, a classic queue: each copy sent round to count a redelivery
    carries a voucher for its count, so the replay check takes it (the request
    runs max_redeliveries + 1 times) and refuses none of them; also when the
    process allows more redeliveries than its container (its spawn config)."""
    from ion.core.security.keys import new_key_line

    key_file = tmp_path / "ion.key"
    key_file.write_text(new_key_line("k1") + "\n")
    key_file.chmod(0o600)
    signing = {"security": {"signing": True, "key_file": str(key_file), "join_check": 0}}
    limit = {"process": {"max_redeliveries": 4 if limit_of == "container" else 8}}
    container = await ion_container_factory(
        config={**signing, **(limit if limit_of == "container" else {})}
    )
    service = await container.spawn(Crashy, config=limit if limit_of == "process" else None)
    client = await (await ion_container_factory(config=signing)).spawn(Process, name="client")
    queue = container.exchange.queue_name(poison.DEAD_LETTER_KEY)
    await container.exchange.declare_shared(queue)
    dead = Collector()
    await container.exchange.broker.consume(queue, dead)
    await client.send("crashy", "crash", "signed")
    [letter] = await dead.wait(1)
    letter.ack()
    rounds = limit["process"]["max_redeliveries"]
    assert service.runs == [("signed", False)] + [("signed", True)] * rounds
    assert container.exchange.signer.refused == {}


# -- real twistd containers on RabbitMQ: instances that die of a request ----------

CRASHING = """\
import os
from ion.core.process.service import ServiceProcess

class Crashing(ServiceProcess):
    service_name = "crashing"

    def op_crash(self, content, headers, msg):
        with open({runs!r}, "a") as f:
            f.write(content + "\\n")
        os._exit(3)  # dies holding the request, as a segfault or the OOM killer would

await cc.spawn(Crashing)
"""


async def _exited(proc: Any) -> int:
    """The exit status of OS process C{proc}, once it has exited (TIMEOUT at most)."""
    from twisted.internet import reactor  # no reactor at import time

    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None:
        assert time.monotonic() < deadline, f"still running after {TIMEOUT}s"
        await deferLater(reactor, 0.02, lambda: None)
    return proc.returncode


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_instances_that_die_of_a_request_stop_getting_it(tmp_path) -> None:
    """A request that kills every twistd instance that takes it runs
    process.max_redeliveries + 1 times (here 2), then the next instance puts it
    in the dead-letter queue and keeps serving."""
    require_rabbitmq()
    system = OsSystem(tmp_path)
    try:
        here = await system.container()
        queue = here.exchange.queue_name(poison.DEAD_LETTER_KEY)
        await here.exchange.broker.declare_queue(queue, durable=True)
        dead = Collector()
        await here.exchange.broker.consume(queue, dead)
        runs, boot = tmp_path / "runs", tmp_path / "crashing.py"
        boot.write_text(CRASHING.format(runs=str(runs)))

        def instance(n: int) -> tuple[Any, Any]:
            ready = tmp_path / f"{n}.ready"
            args = ["-n", "--broker", URL, "-s", system.sysname, "--ready-file", str(ready)]
            args += ["-a", "process.max_redeliveries=1", str(boot)]
            proc = launch(f"crashing{n}-{system.sysname}", *args)
            system.procs.append(proc)
            return proc, ready

        first, ready = instance(1)
        await await_file(ready, first)
        client = await here.spawn(Process, name="client")
        await client.send("crashing", "crash", "poison")
        assert await _exited(first) == 3
        second, _ = instance(2)  # takes it redelivered, runs it again, dies
        assert await _exited(second) == 3
        third, ready = instance(3)
        [letter] = await dead.wait(1, timeout=20)
        letter.ack()
        await await_file(ready, third)
        pong = await wait_for(client.rpc_send("crashing", "ping"), AT_ONCE)
        assert pong["state"] == "ACTIVE" and third.poll() is None
        assert runs.read_text().splitlines() == ["poison", "poison"]
        assert letter.headers[poison.REDELIVERIES] == 2
        assert letter.headers[poison.ORIGIN_KEY] == "crashing"
        assert m.decode(letter.body).content == "poison"
    finally:
        await system.cleanup()
        await delete_systems(set(), {f"{system.sysname}.crashing", queue})
