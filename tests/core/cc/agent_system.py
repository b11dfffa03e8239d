"""A system of containers on one embedded broker and a fake clock, for the
agent scenarios (A17: deterministic, no sleeps)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config, merge
from ion.core.messaging.embedded import EmbeddedBroker
from ion.core.messaging.message import decode
from ion.core.process.process import Process

T = TypeVar("T")

H = 0.2  # the heartbeat interval the scenarios use
K = 3
SPIN_LIMIT = 100  # calls for now at one instant: the scenarios make fewer than 10


class SpinGuardClock(Clock):
    """A fake clock that fails rather than spins: a call scheduled for now more
    than C{SPIN_LIMIT} times at one instant (a message given back to its queue
    and redelivered at once, for ever, say) raises, where C{advance} would
    run them for ever."""

    def __init__(self) -> None:
        super().__init__()
        self._instant = -1.0
        self._now_calls = 0
        self.most = 0  # the most calls for now scheduled at one instant so far

    def callLater(self, delay: float, callable: Any, *args: Any, **kw: Any) -> Any:
        if delay <= 0:
            now = self.seconds()
            if now != self._instant:
                self._instant, self._now_calls = now, 0
            self._now_calls += 1
            self.most = max(self.most, self._now_calls)
            if self._now_calls > SPIN_LIMIT:
                raise AssertionError(
                    f"the clock spins: {self._now_calls} calls scheduled for now at {now:g}s"
                )
        return super().callLater(delay, callable, *args, **kw)


class Watcher(Process):
    """Traps exits and monitors; records what it is told."""

    trap_exits = True

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.exits: list[tuple[str, str]] = []
        self.downs: list[tuple[str, str]] = []

    def on_exit(self, pid: str, reason: str) -> None:
        self.exits.append((pid, reason))

    def on_down(self, ref: str, pid: str, reason: str) -> None:
        self.downs.append((pid, reason))


class System:
    """Containers C{c1, c2, ...} of sysname C{sysname} sharing one broker."""

    def __init__(self, presence: bool = True, sysname: str = "s", **agent: Any) -> None:
        self.clock = SpinGuardClock()
        self.broker = EmbeddedBroker(self.clock, presence_events=presence)
        self.sysname = sysname
        self.agent_config = {"heartbeat": H, "dead_after": K, **agent}
        self.containers: dict[str, Container] = {}
        self.spied: list[tuple[str, str, dict[str, Any]]] = []  # (op, routing key, content)

    def config(self, **agent: Any) -> Config:
        return Config(merge(DEFAULTS, {"agent": {**self.agent_config, **agent}}))

    def pump(self) -> None:
        """Run everything due now."""
        clock = self.clock
        while any(c.getTime() <= clock.seconds() for c in clock.getDelayedCalls()):
            clock.advance(0)

    def run(self, seconds: float, step: float = 0.01) -> None:
        """Let C{seconds} pass, in steps (each one's due calls run)."""
        end = self.clock.seconds() + seconds
        self.pump()
        while self.clock.seconds() < end - 1e-9:
            self.clock.advance(min(step, end - self.clock.seconds()))
            self.pump()

    def wait(self, coro: Coroutine[Any, Any, T] | Deferred[T], limit: float = 30.0) -> T:
        """The result of C{coro}, running the clock until it has one."""
        d = ensureDeferred(coro) if not isinstance(coro, Deferred) else coro
        waited = 0.0
        self.pump()
        while not d.called and waited < limit:
            self.run(0.01)
            waited += 0.01
        assert d.called, f"no result within {limit}s of fake time"
        results: list[Any] = []
        d.addBoth(results.append)
        result = results[0]
        if hasattr(result, "raiseException"):
            result.raiseException()
        return result  # type: ignore[no-any-return]

    def start(self, cid: str, **agent: Any) -> Container:
        c = Container(reactor=self.clock, config=self.config(**agent), container_id=cid,
                      sysname=self.sysname, broker=self.broker.connection())  # fmt: skip
        self.wait(c.start())
        self.containers[cid] = c
        return c

    def stop(self, cid: str) -> None:
        self.wait(self.containers.pop(cid).stop())

    def crash(self, cid: str) -> None:
        """As kill -9: the connection closes, nothing is stopped in order."""
        c = self.containers.pop(cid)
        c.agent._stop_beating()  # type: ignore[union-attr]
        c.agent.membership.stop()  # type: ignore[union-attr]
        self.wait(c.exchange.broker.close())

    def view(self, of: str) -> dict[str, tuple[int, str]]:
        """What container C{of} thinks of its peers: cid -> (epoch, state)."""
        agent = self.containers[of].agent
        assert agent is not None and agent.membership is not None
        return {cid: (p.epoch, p.state) for cid, p in agent.membership.peers.items()}

    def spy(self) -> None:
        """Record every agent message on the fanout and to C{cc.*} keys of c1..c9."""
        conn = self.broker.connection()
        self.wait(conn.connect())
        self.wait(conn.declare_exchange(f"ion.{self.sysname}.containers", "fanout"))
        self.wait(conn.declare_exchange(f"ion.{self.sysname}", "direct"))
        q = self.wait(conn.declare_queue("spy", exclusive=True))
        self.wait(conn.bind_queue(q, f"ion.{self.sysname}.containers", ""))
        for n in range(1, 10):
            self.wait(conn.bind_queue(q, f"ion.{self.sysname}", f"cc.c{n}"))

        def got(d: Any) -> None:
            msg = decode(d.body)
            self.spied.append((str(msg.headers.get("op")), d.routing_key, msg.content))

        self.wait(conn.consume(q, got, 0, auto_ack=True))

    def spy_events(self, key: str = "1055.#") -> list[Any]:
        """The events with routing key C{key} published from now on (decoded)."""
        got: list[Any] = []
        conn = self.broker.connection()
        self.wait(conn.connect())
        self.wait(conn.declare_exchange(f"ion.{self.sysname}.events", "topic"))
        q = self.wait(conn.declare_queue("event-spy", exclusive=True))
        self.wait(conn.bind_queue(q, f"ion.{self.sysname}.events", key))
        self.wait(conn.consume(q, lambda d: got.append(decode(d.body).content), 0, True))
        return got

    def stop_all(self) -> None:
        for cid in list(self.containers):
            self.stop(cid)
