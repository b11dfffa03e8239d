"""Links and monitors between processes, with OTP's semantics.

A link joins two processes both ways (one per pair); a monitor watches one
way, a new reference each time. When a process ends, each linked process gets
an exit signal and each watcher a down signal, both with its exit reason. A
process that traps exits (C{trap_exits = True}) gets C{on_exit(pid, reason)};
one that does not ignores C{normal} and exits with any other reason, as in OTP
(C{shutdown} too: it is "normal" only to a supervisor deciding on a restart). A monitor's watcher gets C{on_down(ref,
pid, reason)}. Linking or monitoring a process that is gone gives C{noproc}.

Signals travel as messages (L{ion.core.process.signals}) to the process's own
queue, on the path ordinary messages take, so a signal never overtakes an
earlier message from the same sender. Within one container a link or monitor
is recorded on both sides at once; to a process of another container it is a
C{sys_link} or C{sys_monitor} signal recorded by the other side. That side
answers C{noproc} when the process has ended; a signal that finds no queue
(NO_ROUTE) comes back as C{noproc} too, and one the broker cannot take (its
connection is down, or no answer within C{container.rpc_timeout}) as
C{noconnection}. Links into a container that is cut off fire C{noconnection};
each side of a link or monitor across containers remembers the other
container's epoch it was made under (L{ion.core.process.remote}).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.logger import Logger

from ion.core.exception import UnroutableError
from ion.core.id import InvalidNameError, ProcessId
from ion.core.messaging import message as m
from ion.core.process import signals
from ion.core.process.exit import NOCONNECTION, NOPROC, NORMAL
from ion.core.process.signals import DEMONITOR, DOWN, EXIT, LINK, MONITOR, SIGNAL, UNLINK, Owed

if TYPE_CHECKING:
    from ion.core.cc.container import Container
    from ion.core.process.remote import RemoteLinks
    from ion.core.process.runtime import ProcessRuntime

__all__ = ["DEMONITOR", "DOWN", "EXIT", "LINK", "MONITOR", "SIGNAL", "UNLINK", "Linking"]

_refs = itertools.count(1)


class Linking:
    """Links, monitors and the signals they send (a base of Process)."""

    #: Whether exit signals become C{on_exit} calls instead of ending this process.
    trap_exits: ClassVar[bool] = False

    id: ProcessId | None
    container: Container | None
    log: Logger
    runtime: ProcessRuntime
    _rpc_timeout: float
    _links: set[str]  # pids linked with this one
    _monitors: dict[str, str]  # ref -> pid this process monitors
    _watchers: dict[str, str]  # ref -> pid monitoring this process
    _epochs: dict[str, int]  # pid linked or ref -> the epoch of its container (other ones)

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
        """Link with C{pid} (idempotent); it being gone gives an exit signal C{noproc}.

        @raise InvalidNameError: C{pid} is not a process id.
        """
        pid = _checked(pid)
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
            to_epoch = self._made_under(pid, self._known_epoch(pid))
            self._signal(pid, LINK, to_epoch=to_epoch)

    def unlink(self, pid: str | ProcessId) -> None:
        """Remove the link with C{pid}; no exit signal of it arrives after this."""
        pid = str(pid)
        if pid not in self._links:
            return
        self._links.discard(pid)
        self._epochs.pop(pid, None)
        local = self._local(pid)
        if local is not None:
            local._links.discard(str(self.id))
        elif not self._is_local(pid):
            self._signal(pid, UNLINK)

    def monitor(self, pid: str | ProcessId) -> str:
        """Watch C{pid}; return the new reference its down signal will carry.

        @raise InvalidNameError: C{pid} is not a process id.
        """
        pid = _checked(pid)
        ref = f"#{next(_refs)}@{self.id}"
        self._monitors[ref] = pid
        local = self._local(pid)
        if local is not None:
            local._watchers[ref] = str(self.id)
        elif self._is_local(pid):
            self._signal(str(self.id), DOWN, {"ref": ref, "reason": NOPROC}, sender=pid)
        else:
            to_epoch = self._made_under(ref, self._known_epoch(pid))
            self._signal(pid, MONITOR, {"ref": ref}, to_epoch=to_epoch)
        return ref

    def demonitor(self, ref: str, flush: bool = False) -> None:
        """Stop watching under C{ref}. No C{on_down} of it follows, whether or
        not one is queued already (C{flush} is accepted for OTP's sake)."""
        pid = self._monitors.pop(ref, None)
        if pid is None:
            return
        self._epochs.pop(ref, None)
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
        return signals.container_of(pid) == self.container.id

    def _remote_links(self) -> RemoteLinks:
        assert self.container is not None
        return self.container.proc_manager.remote

    def _known_epoch(self, pid: str) -> int | None:
        """The epoch of C{pid}'s container (another) this container's agent knows."""
        return self._remote_links().epoch_of(signals.container_of(pid))

    def _made_under(self, key: str, epoch: int | None) -> int | None:
        """Remember that the link (by pid) or monitor (by ref) C{key} into
        another container was made under its C{epoch} (None: not known)."""
        if epoch is None:
            self._epochs.pop(key, None)
        else:
            self._epochs[key] = epoch
        return epoch

    def _signal(
        self,
        to: str,
        op: str,
        content: dict[str, Any] | None = None,
        sender: str | None = None,
        epoch: int | None = None,
        to_epoch: int | None = None,
    ) -> None:
        """Send signal C{op} to C{to}'s own queue (works once terminated too).
        One from this process carries this container's epoch; one in another's
        name (C{sender}), to this process, the epoch given (L{signals.headers})."""
        assert self.container is not None
        if sender is None:
            sender, epoch = str(self.id), self._remote_links().epoch
        d = signals.send(self.container, sender, to, op, content, epoch, to_epoch)
        if not d.called and op in (LINK, MONITOR):  # the linker waits on its answer
            d.addTimeout(self._rpc_timeout, self.container.reactor)
        d.addErrback(self._signal_lost, to, op, content, sender, epoch)

    def _signal_lost(
        self, failure: Any, to: str, op: str, content: Any, sender: str, epoch: int | None
    ) -> None:
        """The broker did not take signal C{op} to C{to}."""
        if failure.check(UnroutableError):
            self.signal_returned(to, op, content)
            return
        local = self._local(to)
        if local is not None:  # the broker link is down: hand it over here
            signals.inject(local, sender, op, content, epoch)
        elif op in (LINK, MONITOR) and not self._is_local(to):
            self._refused(to, op, content, NOCONNECTION)
        else:
            self.log.warn("{proc}: signal {op} to {to} lost: {f}", proc=self, op=op, to=to,
                          f=failure.value)  # fmt: skip

    def signal_returned(self, to: str, op: str, content: Any) -> None:
        """A signal to C{to} found no queue: C{to} is gone. A link or monitor it
        asked for ends in C{noproc}."""
        self._refused(to, op, content, NOPROC)

    def _refused(self, to: str, op: str, content: Any, reason: str) -> None:
        """The link or monitor of C{to} that C{op} asked for ends with C{reason}."""
        me = str(self.id)
        if op == LINK and to in self._links:
            self._signal(me, EXIT, {"reason": reason}, sender=to, epoch=self._epochs.get(to))
        elif op == MONITOR and isinstance(content, dict) and content.get("ref") in self._monitors:
            ref = content["ref"]
            self._signal(me, DOWN, {"ref": ref, "reason": reason}, sender=to,
                         epoch=self._epochs.get(ref))  # fmt: skip

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
        self._epochs.clear()

    def _cut(self, gone: Callable[[str, int | None], bool], epoch: int | None) -> list[Owed]:
        """The processes that C{gone} picks (given each pid and the epoch of its
        container the link or monitor was made under) cannot be reached: links
        and monitors to them fire C{noconnection} here now (as signals from
        them, of that epoch, each ending its link or monitor as it is handled),
        watchers of them are dropped. Return the signals owed to them, should
        they be reached again (this container being in C{epoch}): an exit signal
        per link, a down signal per watcher, a demonitor per monitor."""
        me = str(self.id)
        owed: list[Owed] = []
        lost = {"reason": NOCONNECTION}
        made = self._epochs.get
        for pid in [p for p in self._links if gone(p, made(p))]:
            owed.append((me, pid, EXIT, lost, epoch))
            signals.inject(self, pid, EXIT, lost, made(pid))
        for ref, pid in [(r, p) for r, p in self._monitors.items() if gone(p, made(r))]:
            owed.append((me, pid, DEMONITOR, {"ref": ref}, epoch))
            signals.inject(self, pid, DOWN, {"ref": ref, **lost}, made(ref))
        for ref, pid in [(r, p) for r, p in self._watchers.items() if gone(p, made(r))]:
            del self._watchers[ref]
            self._epochs.pop(ref, None)
            owed.append((me, pid, DOWN, {"ref": ref, **lost}, epoch))
        return owed

    def _on_signal(self, content: Any, headers: dict[str, Any], msg: m.Message) -> Any:
        """Act on a signal (the handler of protocol C{signal}); hooks it calls
        run as handlers do. A malformed one is dropped."""
        sender, op, ref, reason = _parts(msg)
        if sender is None:
            self.runtime.drops.dropped("malformed signal", sender=msg.sender, where=str(self.id),
                                       detail=repr(msg))  # fmt: skip
            return None
        epoch, to_epoch = signals.epochs(msg)
        if op == EXIT:
            if sender not in self._links:
                return None  # unlinked meanwhile
            made = self._epochs.get(sender)
            if made is not None and epoch is not None and epoch < made:
                return None  # the late end of an earlier link (L{ion.core.process.remote})
            self._links.discard(sender)
            self._epochs.pop(sender, None)
            if type(self).trap_exits:
                return self.on_exit(sender, reason)
            if reason != NORMAL:  # as in OTP: only normal is ignored, shutdown too ends it
                self._exit_by_signal(sender, reason)
        elif op == DOWN:
            if ref is not None and self._monitors.pop(ref, None) is not None:
                self._epochs.pop(ref, None)
                return self.on_down(ref, sender, reason)
        elif op in (LINK, MONITOR) and self._of_another_epoch(to_epoch):
            self.log.debug("{proc}: {op} from {pid} dropped: asked of epoch {e}, not this one",
                           proc=self, op=op, pid=sender, e=to_epoch)  # fmt: skip
        elif op == LINK:
            self._links.add(sender)
            self._made_under(sender, epoch)
        elif op == UNLINK:
            self._links.discard(sender)
            self._epochs.pop(sender, None)
        elif op == MONITOR and ref is not None:
            self._watchers[ref] = sender
            self._made_under(ref, epoch)
        elif op == DEMONITOR and ref is not None:
            self._watchers.pop(ref, None)
            self._epochs.pop(ref, None)
        return None

    def _of_another_epoch(self, to_epoch: int | None) -> bool:
        """Whether a link or monitor was asked of another epoch of this
        container than its own (L{ion.core.process.remote})."""
        own = self._remote_links().epoch
        return to_epoch is not None and own is not None and to_epoch != own

    def signal_inactive(self, msg: m.Message) -> None:
        """A signal reaching a process not ACTIVE. Once it has ended, a link or
        monitor asked for is answered C{noproc} at once. While it terminates,
        links and monitors asked for are still recorded (its end answers them);
        exit signals are left, as the process is ending anyway, unless it is in
        ERROR, which a linked process's abnormal exit ends too."""
        if self.state == "TERMINATED":  # type: ignore[attr-defined]
            sender, op, ref, _ = _parts(msg)
            if sender is not None and op == LINK:
                self._signal(sender, EXIT, {"reason": NOPROC})
            elif sender is not None and op == MONITOR and ref is not None:
                self._signal(sender, DOWN, {"ref": ref, "reason": NOPROC})
        elif msg.op in (LINK, UNLINK, MONITOR, DEMONITOR):
            self._on_signal(msg.content, msg.headers, msg)
        elif msg.op == EXIT and self.state == "ERROR" and not type(self).trap_exits:  # type: ignore[attr-defined]
            self._on_signal(msg.content, msg.headers, msg)

    def _exit_by_signal(self, sender: str, reason: str) -> None:
        """Not trapping exits: a linked process's exit (but a normal one) ends this one too."""
        self.log.info("{proc}: exits with {reason}, as linked {pid} did",
                      proc=self, reason=reason, pid=sender)  # fmt: skip
        self.crash(reason)  # type: ignore[attr-defined]


def _checked(pid: str | ProcessId) -> str:
    text = str(pid)
    if not ProcessId.is_pid(text):
        raise InvalidNameError(f"not a process id: {text!r} (expected name.n@container)")
    return text


def _parts(msg: m.Message) -> tuple[str | None, str | None, str | None, str]:
    """A signal's sender (None: not a process id), op, ref and reason."""
    sender = msg.sender
    content = msg.content if isinstance(msg.content, dict) else {}
    ref = content.get("ref")
    return (
        sender if ProcessId.is_pid(sender) else None,  # type: ignore[arg-type]
        msg.op,
        ref if isinstance(ref, str) else None,
        str(content.get("reason", "")),
    )
