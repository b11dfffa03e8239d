"""Processes for the exit, link and supervisor tests: each writes what happens
to it (started, terminate hook, exit with its reason, signals) to a journal
shared through its spawn arguments, which tests wait on instead of sleeping."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.core.process.supervisor import Supervisor
from tests.helpers import Collector

Journal = Collector[tuple[Any, ...]]


class Worker(Process):
    """Records its life to C{args["journal"]}. Spawn arguments: C{fail_init}
    (on_init raises), C{gate} (a Deferred on_terminate awaits), C{hold} (a
    Deferred on_activate awaits)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        journal = self.args.get("journal")  # (an empty one is falsy)
        self.journal: Journal = Collector() if journal is None else journal

    def note(self, *what: Any) -> None:
        self.journal((*what[:1], self.proc_name, *what[1:]))

    def on_init(self) -> Any:
        if self.args.get("fail_init"):
            raise RuntimeError(f"{self.proc_name} cannot start")

    async def on_activate(self) -> None:
        hold = self.args.get("hold")
        if hold is not None:
            await hold
        self.note("start", str(self.id))

    async def on_terminate(self) -> None:
        self.note("terminate")
        gate = self.args.get("gate")
        if gate is not None:
            await gate
        self.note("terminated")

    def _signal_exits(self, reason: str) -> None:
        super()._signal_exits(reason)
        self.note("exit", reason)

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.note("echo", content)
        return content

    def op_exit(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.exit(content)

    def op_raise(self, content: Any, headers: dict, msg: m.Message) -> Any:
        errors = {"fatal": exc.FatalError, "bad": exc.BadRequest, "runtime": RuntimeError}
        raise errors[content]("raised by request")

    async def op_hold(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.note("holding", content)
        self.held = defer.Deferred()
        await self.held
        return content

    def on_exit(self, pid: str, reason: str) -> None:
        self.note("on_exit", pid, reason)

    def on_down(self, ref: str, pid: str, reason: str) -> None:
        self.note("on_down", ref, pid, reason)


class Crashy(Worker):
    """Any handler error ends it (OTP's let it crash)."""

    crash_on_error = True


class Trapper(Worker):
    """Traps exits: linked processes' ends are on_exit calls."""

    trap_exits = True


class HeldService(ServiceProcess, Worker):
    """A service whose C{work} op waits for the test (C{held}) on its first
    delivery and answers at once on a redelivery."""

    service_name = "held"

    async def op_work(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.note("work", content, bool(msg.delivery.redelivered))
        if not msg.delivery.redelivered:
            self.held = defer.Deferred()
            await self.held
        return {"done": content, "by": str(self.id)}


async def ended(journal: Journal, name: str, timeout: float = 5.0) -> str:
    """The exit reason of process C{name}, once it has exited."""
    entry = await journal.wait_until(lambda e: e[:2] == ("exit", name), timeout)
    return entry[-1][2]


def entries(journal: Journal, kind: str) -> list[tuple[Any, ...]]:
    """The journal's entries of one kind, in order."""
    return [e for e in journal.items if e[0] == kind]


class Sender(Worker):
    """Sends one message, then exits: C{{"to": pid, "reason": r}}."""

    def op_send_then_exit(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.send(content["to"], "echo", "m1")
        self.exit(content["reason"])


class Restartable(Worker):
    """Starts once as usual; later starts fail (C{fail_again}) or wait for the
    gate C{hold_again}. C{starts} (a list) counts its starts."""

    def on_init(self) -> Any:
        self.args["starts"].append(self.proc_name)
        again = len(self.args["starts"]) > 1
        if again and self.args.get("fail_again"):
            raise RuntimeError("cannot start again")

    async def on_activate(self) -> None:
        if len(self.args["starts"]) > 1 and self.args.get("hold_again") is not None:
            self.note("holding start")
            await self.args["hold_again"]
        await super().on_activate()


class Sup(Supervisor):
    """A Supervisor that writes its start and exit to C{args["journal"]}."""

    def _signal_exits(self, reason: str) -> None:
        super()._signal_exits(reason)
        if self.args.get("journal") is not None:
            self.args["journal"](("exit", self.proc_name, reason))

    async def on_activate(self) -> None:
        await super().on_activate()
        if self.args.get("journal") is not None:
            self.args["journal"](("start", self.proc_name, str(self.id)))
