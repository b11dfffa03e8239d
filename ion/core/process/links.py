"""Links and monitors between processes, with OTP's semantics.

A link joins two processes both ways (one per pair); a monitor watches one
way, a new reference each time. When a process ends, each linked process gets
an exit signal and each watcher a down signal, both with its exit reason. A
process that traps exits (C{trap_exits = True}) gets C{on_exit(pid, reason)};
one that does not ignores C{normal} and exits with any other reason, as in OTP
(C{shutdown} too: it is "normal" only to a supervisor deciding on a restart). A monitor's watcher gets C{on_down(ref,
pid, reason)}. Linking or monitoring a process that is gone gives C{noproc}.

Signals travel as messages (protocol C{signal}) to the process's own queue, on
the path ordinary messages take, so a signal never overtakes an earlier message
from the same sender. Within one container a link or monitor is recorded on
both sides at once; to a process of another container it is a C{sys_link} or
C{sys_monitor} signal recorded by the other side, and one that finds no queue
(NO_ROUTE) comes back as C{noproc}.
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.logger import Logger

from ion.core.exception import UnroutableError
from ion.core.messaging import message as m
from ion.core.process.exit import NOPROC, NORMAL

if TYPE_CHECKING:
    from ion.core.cc.container import Container
    from ion.core.id import ProcessId

SIGNAL = "signal"
EXIT, DOWN = "sys_exit", "sys_down"
LINK, UNLINK, MONITOR, DEMONITOR = "sys_link", "sys_unlink", "sys_monitor", "sys_demonitor"

_refs = itertools.count(1)


class Linking:
    """Links, monitors and the signals they send (a base of Process)."""

    #: Whether exit signals become C{on_exit} calls instead of ending this process.
    trap_exits: ClassVar[bool] = False

    id: ProcessId | None
    container: Container | None
    log: Logger
    _links: set[str]  # pids linked with this one
    _monitors: dict[str, str]  # ref -> pid this process monitors
    _watchers: dict[str, str]  # ref -> pid monitoring this process

    # -- hooks -----------------------------------------------------------------

    def on_exit(self, pid: str, reason: str) -> Any:
        """A linked process ended with C{reason} (only when trapping exits; may be async)."""

    def on_down(self, ref: str, pid: str, reason: str) -> Any:
        """The process monitored under C{ref} ended with C{reason} (may be async)."""

    # -- the API ---------------------------------------------------------------

    @property
    def links(self) -> frozenset[str]:
        """The pids linked with this process."""
        return frozenset(self._links)

    def link(self, pid: str | ProcessId) -> None:
        """Link with C{pid} (idempotent); it being gone gives an exit signal C{noproc}."""
        pid = str(pid)
        me = str(self.id)
        if pid == me or pid in self._links:
            return
        self._links.add(pid)
        local = self._local(pid)
        if local is not None:
            local._links.add(me)
        elif self._is_local(pid):
            self._signal(me, EXIT, {"reason": NOPROC}, sender=pid)
        else:
            self._signal(pid, LINK)

    def unlink(self, pid: str | ProcessId) -> None:
        """Remove the link with C{pid}; no exit signal of it arrives after this."""
        pid = str(pid)
        if pid not in self._links:
            return
        self._links.discard(pid)
        local = self._local(pid)
        if local is not None:
            local._links.discard(str(self.id))
        elif not self._is_local(pid):
            self._signal(pid, UNLINK)

    def monitor(self, pid: str | ProcessId) -> str:
        """Watch C{pid}; return the new reference its down signal will carry."""
        pid = str(pid)
        ref = f"#{next(_refs)}@{self.id}"
        self._monitors[ref] = pid
        local = self._local(pid)
        if local is not None:
            local._watchers[ref] = str(self.id)
        elif self._is_local(pid):
            self._signal(str(self.id), DOWN, {"ref": ref, "reason": NOPROC}, sender=pid)
        else:
            self._signal(pid, MONITOR, {"ref": ref})
        return ref

    def demonitor(self, ref: str, flush: bool = False) -> None:
        """Stop watching under C{ref}. No C{on_down} of it follows, whether or
        not one is queued already (C{flush} is accepted for OTP's sake)."""
        pid = self._monitors.pop(ref, None)
        if pid is None:
            return
        local = self._local(pid)
        if local is not None:
            local._watchers.pop(ref, None)
        elif not self._is_local(pid):
            self._signal(pid, DEMONITOR, {"ref": ref})

    async def spawn_link(
        self, target: Any, name: str | None = None, args: dict[str, Any] | None = None
    ) -> Any:
        """Spawn a process linked with this one, its parent (as OTP's start_link):
        a supervisor so started ends when this process does."""
        assert self.container is not None, "process is not spawned"
        me: Any = self  # a Process: Linking is one of its bases
        proc = await self.container.proc_manager.spawn(target, name=name, args=args, link=me)
        proc.parent = me  # linked, not owned: not among this process's children
        return proc

    async def spawn_monitor(
        self, target: Any, name: str | None = None, args: dict[str, Any] | None = None
    ) -> tuple[Any, str]:
        """Spawn a process and monitor it: (the process, the monitor's reference)."""
        assert self.container is not None, "process is not spawned"
        proc = await self.container.proc_manager.spawn(target, name=name, args=args)
        return proc, self.monitor(str(proc.id))

    # -- signals -----------------------------------------------------------------

    def _local(self, pid: str) -> Linking | None:
        """The live process C{pid} of this container, if there is one."""
        assert self.container is not None, "process is not spawned"
        proc = self.container.proc_manager.processes.get(pid)
        if proc is None or proc.terminated:
            return None
        return proc

    def _is_local(self, pid: str) -> bool:
        assert self.container is not None
        return pid.endswith("@" + self.container.id)

    def _signal(
        self, to: str, op: str, content: dict[str, Any] | None = None, sender: str | None = None
    ) -> None:
        """Send signal C{op} to C{to}'s own queue (works once terminated too)."""
        assert self.container is not None
        me = str(self.id)
        headers = {
            m.SENDER: sender or me,
            m.RECEIVER: to,
            m.CONV_ID: f"{SIGNAL}:{me}",
            m.PROTOCOL: SIGNAL,
            m.PERFORMATIVE: "inform",
            m.OP: op,
            m.TS: int(time.time() * 1000),
        }
        body = m.encode(headers, content or {})
        d = self.container.exchange.publish(to, body, mandatory=True)
        d.addErrback(self._signal_lost, to, op, content)

    def _signal_lost(self, failure: Any, to: str, op: str, content: Any) -> None:
        if failure.check(UnroutableError):
            self.signal_returned(to, op, content)
        else:
            self.log.warn("{proc}: signal {op} to {to} lost: {f}", proc=self, op=op, to=to,
                          f=failure.value)  # fmt: skip

    def signal_returned(self, to: str, op: str, content: Any) -> None:
        """A signal to C{to} found no queue: C{to} is gone. A link or monitor it
        asked for ends in C{noproc}."""
        me = str(self.id)
        if op == LINK and to in self._links:
            self._signal(me, EXIT, {"reason": NOPROC}, sender=to)
        elif op == MONITOR and isinstance(content, dict):
            self._signal(me, DOWN, {"ref": content.get("ref"), "reason": NOPROC}, sender=to)

    def _signal_exits(self, reason: str) -> None:
        """This process has ended with C{reason}: tell its links and watchers."""
        links, self._links = self._links, set()
        watchers, self._watchers = self._watchers, {}
        for pid in links:  # each drops the link as its signal arrives
            self._signal(pid, EXIT, {"reason": reason})
        for ref, pid in watchers.items():
            self._signal(pid, DOWN, {"ref": ref, "reason": reason})
        for ref in list(self._monitors):  # nobody to watch for any more
            self.demonitor(ref)

    def _on_signal(self, content: Any, headers: dict[str, Any], msg: m.Message) -> Any:
        """Act on a signal (the handler of protocol C{signal}); hooks it calls
        run as handlers do."""
        sender = str(msg.sender)
        op = msg.op
        content = content if isinstance(content, dict) else {}
        reason = str(content.get("reason", ""))
        if op == EXIT:
            if sender not in self._links:
                return None  # unlinked meanwhile
            self._links.discard(sender)
            if type(self).trap_exits:
                return self.on_exit(sender, reason)
            if reason != NORMAL:  # as in OTP: only normal is ignored, shutdown too ends it
                self._exit_by_signal(sender, reason)
        elif op == DOWN:
            ref = str(content.get("ref"))
            if self._monitors.pop(ref, None) is not None:
                return self.on_down(ref, sender, reason)
        elif op == LINK:
            self._links.add(sender)
        elif op == UNLINK:
            self._links.discard(sender)
        elif op == MONITOR:
            self._watchers[str(content.get("ref"))] = sender
        elif op == DEMONITOR:
            self._watchers.pop(str(content.get("ref")), None)
        return None

    def _signal_inactive(self, msg: m.Message) -> None:
        """A signal reaching a process not ACTIVE: while it terminates, links
        and monitors asked for are still recorded (its end answers them); exit
        signals are left, as the process is ending anyway, unless it is in
        ERROR, which a linked process's abnormal exit ends too."""
        if msg.op in (LINK, UNLINK, MONITOR, DEMONITOR):
            self._on_signal(msg.content, msg.headers, msg)
        elif msg.op == EXIT and self.state == "ERROR" and not type(self).trap_exits:  # type: ignore[attr-defined]
            self._on_signal(msg.content, msg.headers, msg)

    def _exit_by_signal(self, sender: str, reason: str) -> None:
        """Not trapping exits: a linked process's exit (but a normal one) ends this one too."""
        self.log.info("{proc}: exits with {reason}, as linked {pid} did",
                      proc=self, reason=reason, pid=sender)  # fmt: skip
        self._crash(reason)  # type: ignore[attr-defined]
