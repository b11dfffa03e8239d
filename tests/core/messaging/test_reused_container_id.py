"""A container id used again (a restart with a fixed --container-id, a frozen
container resumed beside its replacement): replies to the old incarnation's calls
reach the new one's reply queue and must answer none of its calls."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.task import deferLater

from ion.core.cc.container import Container
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from tests.core.cc.test_amqp_twistd import OsSystem
from tests.helpers import Collector, wait_for
from tests.launch import TIMEOUT, await_file, launch
from tests.rabbit import URL, delete_systems, require_rabbitmq

N = 10  # calls per incarnation; both incarnations' are held at once, under broker.prefetch


class Held(ServiceProcess):
    """Echoes each call's content once released; C{entered} records what it holds."""

    service_name = "held"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.entered: Collector[str] = Collector()
        self.gates: dict[str, defer.Deferred[None]] = {}

    async def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.gates[content] = gate = defer.Deferred()
        self.entered(content)
        await gate
        return content

    def release(self, label: str) -> None:
        for content, gate in list(self.gates.items()):
            if content.startswith(label):
                gate.callback(None)


@pytest_twisted.ensureDeferred
async def test_an_old_incarnations_late_replies_answer_none_of_the_new_ones_calls(
    make_container: Callable[..., Awaitable[Container]],
) -> None:
    """Embedded broker: a container gone with calls open, then one of the same
    container id: the old calls' replies come after the new calls were made."""
    service = await (await make_container(container_id="svc")).spawn(Held)
    old_container = await make_container(container_id="dup")
    old = await old_container.spawn(Process, name="caller")
    old_calls = [old.rpc_send("held", "echo", f"A{i}", timeout=30) for i in range(N)]
    for call in old_calls:
        call.addErrback(lambda f: None)  # the old container goes: its calls fail
    await service.entered.wait(N)
    await old_container.stop()
    new = await (await make_container(container_id="dup")).spawn(Process, name="caller")
    assert new.id == old.id
    new_calls = [new.rpc_send("held", "echo", f"B{i}", timeout=30) for i in range(N)]
    await service.entered.wait(2 * N)
    service.release("A")  # their replies reach the new caller's reply queue first
    service.release("B")
    assert [await wait_for(c) for c in new_calls] == [f"B{i}" for i in range(N)]


# -- real twistd containers on RabbitMQ ------------------------------------

CALLER = """\
import json, os
from twisted.internet.defer import DeferredList
from ion.core.process.process import Process
p = await cc.spawn(Process, name="caller")
calls = [p.rpc_send("held", "echo", f"{label}{{i}}", timeout=60) for i in range({n})]
open({sent!r}, "w").write(str(p.id))
results = await DeferredList(calls, consumeErrors=True)
out = [r if ok else "error: " + type(r.value).__name__ for ok, r in results]
open({results!r} + ".tmp", "w").write(json.dumps(out))
os.rename({results!r} + ".tmp", {results!r})
"""


@pytest_twisted.async_yield_fixture
async def system(tmp_path: Path) -> AsyncIterator[OsSystem]:
    require_rabbitmq()
    s = OsSystem(tmp_path)
    yield s
    for proc in s.procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a frozen one would not hear SIGINT
    await s.cleanup()
    await delete_systems(set(), {f"{s.sysname}.held"})


def _caller(system: OsSystem, label: str, *args: str) -> tuple[Any, Path, Path]:
    """A twistd container (always the same container id) making N held calls."""
    sent, results = system.tmp / f"{label}.sent", system.tmp / f"{label}.json"
    boot = system.tmp / f"{label}.py"
    boot.write_text(CALLER.format(label=label, n=N, sent=str(sent), results=str(results)))
    proc = launch(
        f"dup-{system.sysname}", "-n", "--broker", URL, "-s", system.sysname, *args, str(boot)
    )
    system.procs.append(proc)
    return proc, sent, results


async def _gone(container: Container, key: str) -> None:
    """Return once the broker has deleted the queue of C{key} (its connection went)."""
    queue = container.exchange.queue_name(key)
    deadline = time.monotonic() + TIMEOUT
    while await container.exchange.broker.queue_exists(queue):
        assert time.monotonic() < deadline, f"{queue} still there after {TIMEOUT}s"
        await deferLater(container.reactor, 0.05, lambda: None)


@pytest.mark.rabbitmq
@pytest.mark.parametrize("how", ["killed", "frozen"])
@pytest_twisted.ensureDeferred
async def test_twistd_container_id_reused_gets_only_its_own_replies(
    system: OsSystem, how: str
) -> None:
    """A twistd container with a fixed --container-id, SIGKILLed (or SIGSTOPped until
    the broker drops it) with calls open, and its replacement started at once: the
    dead (or frozen) instance's replies, released first, answer none of the
    replacement's calls; the resumed zombie gets none of the replacement's."""
    service = await (await system.container()).spawn(Held)
    old, old_sent, old_results = _caller(system, "A", "--broker_heartbeat", "1")
    await await_file(old_sent, old)
    await service.entered.wait(N, timeout=TIMEOUT)
    caller_id = old_sent.read_text()
    old.send_signal(signal.SIGKILL if how == "killed" else signal.SIGSTOP)
    # Its reply queue goes with its connection: at once when killed, after missed
    # heartbeats when frozen. Then the new instance can declare it again.
    await _gone(system.containers[0], caller_id + ".reply")
    new, new_sent, new_results = _caller(system, "B")
    await await_file(new_sent, new)
    assert new_sent.read_text() == caller_id
    await service.entered.wait(2 * N, timeout=TIMEOUT)
    service.release("A")
    service.release("B")
    await await_file(new_results, new)
    assert json.loads(new_results.read_text()) == [f"B{i}" for i in range(N)]
    if how == "frozen":
        old.send_signal(signal.SIGCONT)
        await await_file(old_results, old)
        answers = json.loads(old_results.read_text())
        assert len(answers) == N
        assert all(a == f"A{i}" or a.startswith("error: ") for i, a in enumerate(answers))
