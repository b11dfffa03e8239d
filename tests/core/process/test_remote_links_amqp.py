"""Links and monitors between real C{twistd -n cc} containers on RabbitMQ
(scenarios S24, S27 and S28 of the supervision notes). The processes write
what they see to files (L{tests.core.process.linkers}); each test prints the
signal latency it measured (C{pytest -s} shows it). The bounds asserted are
generous: the point is which signals arrive, and that each arrives once."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.task import deferLater

from ion.core import exception as exc
from ion.core.process.process import Process
from ion.test.proxy import Proxy
from tests.core.cc.test_amqp_twistd import OsSystem
from tests.core.process.linkers import boot_script
from tests.helpers import wait_for
from tests.launch import POLL, TIMEOUT, await_file, launch_in_system
from tests.rabbit import HOST, PORT, URL, require_rabbitmq

pytestmark = pytest.mark.rabbitmq

RPC_DEADLINE = 15.0  # container.rpc_timeout's default


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@dataclass
class Node:
    """One twistd container of Reporters: its OS process, log and pids by name."""

    proc: Any
    log: Path
    pids: dict[str, str]

    def events(self, **match: Any) -> list[dict[str, Any]]:
        """The events logged so far whose fields include C{match}."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        events = [json.loads(line) for line in lines if line.endswith("}")]
        return [e for e in events if all(e.get(k) == v for k, v in match.items())]

    async def wait(self, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """The first event matching C{match}, once it is logged."""
        deadline = time.monotonic() + timeout
        while not (found := self.events(**match)):
            if self.proc.poll() is not None:
                pytest.fail(
                    f"container exited with {self.proc.returncode}:\n{self.proc.stdout.read()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"no event {match} after {timeout}s; got {self.events()}")
            await deferLater(_reactor(), POLL, lambda: None)
        return found[0]


@pytest_twisted.async_yield_fixture
async def system(tmp_path: Path) -> AsyncIterator[OsSystem]:
    require_rabbitmq()
    s = OsSystem(tmp_path)
    yield s
    for proc in s.procs:  # all at once, without blocking a reactor a proxy may run in
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    deadline = time.monotonic() + TIMEOUT
    while any(p.poll() is None for p in s.procs) and time.monotonic() < deadline:
        await deferLater(_reactor(), POLL, lambda: None)
    for proc in s.procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    await s.cleanup()


async def start(system: OsSystem, tag: str, names: list[str], broker: str = URL) -> Node:
    """A twistd container of C{system} on C{broker} with a Reporter per name."""
    log, pids = system.tmp / f"{tag}.log", system.tmp / f"{tag}.pids"
    boot = system.tmp / f"{tag}.py"
    boot.write_text(boot_script(names, str(log), str(pids)))
    proc = launch_in_system(tag, broker, system.sysname, system.tmp / f"{tag}.ready", str(boot))
    system.procs.append(proc)
    await await_file(pids, proc)
    return Node(proc, log, json.loads(pids.read_text()))


async def driver(system: OsSystem) -> Callable[..., Any]:
    """C{await call(pid, op, content)}: a call from a container of this test."""
    client = await (await system.container()).spawn(Process, name="driver")

    async def call(pid: str, op: str, content: Any) -> Any:
        return await wait_for(client.rpc_send(pid, op, content, timeout=TIMEOUT), TIMEOUT)

    return call


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


@pytest_twisted.ensureDeferred
async def test_s24_an_exit_in_another_container_reaches_the_linked_process(
    system: OsSystem,
) -> None:
    """S24: A in C1 links to and monitors B in C2; B exits error:X; A's
    on_exit(B, error:X) and on_down come within 1 s, once each."""
    c1, c2 = await start(system, "c1", ["a"]), await start(system, "c2", ["b"])
    call = await driver(system)
    a, b = c1.pids["a"], c2.pids["b"]
    await call(a, "link", b)
    ref = await call(a, "monitor", b)
    await call(a, "call", [b])  # the link and monitor have reached b
    with pytest.raises(exc.ReceivedError, match="error:X"):
        await call(b, "exit", "error:X")
    exiting = await c2.wait(event="exiting", by=b)
    got = await c1.wait(event="on_exit", by=a, pid=b)
    down = await c1.wait(event="on_down", by=a, pid=b)
    latency = got["at"] - exiting["at"]
    print(f"\nS24: on_exit(B, {got['reason']}) {ms(latency)} and on_down "
          f"{ms(down['at'] - exiting['at'])} after B began to exit")  # fmt: skip
    assert got["reason"] == down["reason"] == "error:X" and down["ref"] == ref
    assert latency < 1.0
    await call(a, "echo", "later")  # anything more would have come first
    assert len(c1.events(event="on_exit")) == len(c1.events(event="on_down")) == 1


@pytest_twisted.ensureDeferred
async def test_s27_a_pid_nobody_has_is_noproc_within_the_deadline(system: OsSystem) -> None:
    """S27: A links to and monitors a pid of a container that never existed,
    and one that its (existing) container never had: each ends noproc within
    the call deadline (at once: the signal finds no queue)."""
    c1 = await start(system, "c1", ["a"])
    call = await driver(system)
    a = c1.pids["a"]
    for ghost in (f"ghost.1@never-{uuid.uuid4().hex[:8]}", a.replace("a.", "nobody.", 1)):
        await call(a, "link", ghost)
        ref = await call(a, "monitor", ghost)
        linking = await c1.wait(event="linking", pid=ghost)
        got = await c1.wait(event="on_exit", pid=ghost)
        down = await c1.wait(event="on_down", pid=ghost)
        latency = got["at"] - linking["at"]
        print(f"\nS27: link to {ghost}: on_exit({got['reason']}) after {ms(latency)}, "
              f"on_down({down['reason']}) after {ms(down['at'] - linking['at'])}")  # fmt: skip
        assert got["reason"] == down["reason"] == "noproc" and down["ref"] == ref
        assert latency < RPC_DEADLINE


@pytest_twisted.ensureDeferred
async def test_s28_a_lost_broker_link_ends_remote_links_on_both_sides(
    system: OsSystem,
) -> None:
    """S28: C1's broker link, through a proxy, is cut and C1 reconnects. A in
    C1 (linked to and monitoring B in C2, monitored by W in C2) gets on_exit and
    on_down noconnection at once; B and W get noconnection once C1 is back;
    each signal comes once, and a new link after it works as any link."""
    proxy = Proxy(_reactor(), (HOST, PORT))
    await proxy.start()
    try:
        broker = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        c1 = await start(system, "c1", ["a"], broker)
        c2 = await start(system, "c2", ["b", "w"])
        call = await driver(system)
        a, b, w = c1.pids["a"], c2.pids["b"], c2.pids["w"]
        await call(a, "link", b)
        ab = await call(a, "monitor", b)
        wa = await call(w, "monitor", a)
        await call(a, "call", [b])
        await call(w, "call", [a])
        cut = time.time()
        proxy.cut()
        here = [await c1.wait(event=e, by=a, pid=b) for e in ("on_exit", "on_down")]
        there = [await c2.wait(event="on_exit", by=b, pid=a), await c2.wait(event="on_down", by=w)]
        print(f"\nS28: C1's broker link cut; in C1 on_exit/on_down after "
              f"{ms(here[0]['at'] - cut)}/{ms(here[1]['at'] - cut)}; in C2, once C1 is back, "
              f"on_exit/on_down after {ms(there[0]['at'] - cut)}/{ms(there[1]['at'] - cut)}")  # fmt: skip
        assert [e["reason"] for e in here + there] == ["noconnection"] * 4
        assert here[1]["ref"] == ab and there[1]["ref"] == wa and there[1]["pid"] == a
        assert max(e["at"] for e in here) - cut < 1.0
        assert max(e["at"] for e in there) - cut < TIMEOUT
        await call(a, "call", [b, w])  # whatever C1 owed them has reached them
        assert len(c1.events(event="on_exit")) == len(c1.events(event="on_down")) == 1
        assert len(c2.events(event="on_exit")) == len(c2.events(event="on_down")) == 1
        await call(a, "link", b)  # nothing was linked again by itself; a new link is one
        with pytest.raises(exc.ReceivedError):
            await call(b, "exit", "error:Y")
        again = await c1.wait(event="on_exit", by=a, reason="error:Y")
        assert again["pid"] == b
    finally:
        await proxy.stop()
