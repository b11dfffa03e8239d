"""Supervisors: processes that start, watch and restart children, as OTP's do.

A L{Supervisor} traps exits and links its children. It starts them in spec
order when it activates (a child counts as started once ACTIVE, within its
C{start_timeout}), and stops them in reverse when it terminates, each within
its C{shutdown} budget (then killed). A child that exits is restarted as its
spec and the strategy say (L{ion.core.process.child_spec}); more than
C{intensity} restarts within C{period} seconds (on L{Supervisor.clock}, the
container's reactor unless the spawn argument C{clock} gives another) and the
supervisor gives up: it stops the remaining children and exits C{shutdown},
which its own supervisor sees. A restart is a new process: a new pid, the
same child id.

Flags and children come from class attributes (C{strategy}, C{intensity},
C{period}, C{auto_shutdown}, C{children}), overridden by spawn arguments of
the same names.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from twisted.internet.defer import Deferred, succeed

from ion.core import exception as exc
from ion.core.object.event_ids import EventId
from ion.core.process import child_spec as cs
from ion.core.process.child_spec import ChildSpec, SupervisorFlags
from ion.core.process.exit import KILLED, SHUTDOWN, is_abnormal
from ion.core.process.process import Process


@dataclass
class Child:
    """One child: its spec, its process when running, how often it was restarted."""

    spec: ChildSpec
    proc: Process | None = None
    restarts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # simple_one_for_one arguments
    last_exit: str | None = None  # the reason its last process ended with
    gave_up: bool = False  # that process was a supervisor that gave up

    @property
    def pid(self) -> str | None:
        return str(self.proc.id) if self.proc is not None else None


STARTING: Any = Deferred()  # a start whose Deferred does not exist yet


class Supervisor(Process):
    """A process that starts, watches and restarts its children."""

    trap_exits = True
    strategy: ClassVar[str] = cs.ONE_FOR_ONE
    intensity: ClassVar[int] = 1
    period: ClassVar[float] = 5.0
    auto_shutdown: ClassVar[str] = cs.NEVER
    children_specs: ClassVar[list[ChildSpec | dict[str, Any]]] = []

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        given = self.args
        self.flags = SupervisorFlags(
            strategy=given.get("strategy", type(self).strategy),
            intensity=given.get("intensity", type(self).intensity),
            period=given.get("period", type(self).period),
            auto_shutdown=given.get("auto_shutdown", type(self).auto_shutdown),
        ).checked()
        specs = [ChildSpec.of(s) for s in given.get("children", type(self).children_specs)]
        if len({s.id for s in specs}) != len(specs):
            raise exc.ConfigurationError(f"{self.proc_name}: child ids must be unique")
        if self.flags.strategy == cs.SIMPLE_ONE_FOR_ONE and len(specs) != 1:
            raise exc.ConfigurationError("simple_one_for_one takes exactly one child spec")
        self.specs = specs
        self.kids: list[Child] = []  # in start order
        self._clock: Any = given.get("clock")
        self._restart_times: deque[float] = deque()
        self.gave_up = False  # reached its restart intensity and ended
        self._pending_start: Deferred[Process] | None = (
            None  # a start under way (cancelled by stop)
        )
        self._end_waiters: list[Deferred[str]] = []

    @property
    def clock(self) -> Any:
        """What restart intensity, start timeouts and shutdown budgets count on."""
        if self._clock is None:
            assert self.container is not None
            return self.container.reactor
        return self._clock

    @property
    def _simple(self) -> bool:
        return self.flags.strategy == cs.SIMPLE_ONE_FOR_ONE

    # -- starting ----------------------------------------------------------------

    async def on_activate(self) -> None:
        """Start the children in order; one that fails stops those started (in
        reverse) and fails this supervisor's start with C{failed_to_start_child}."""
        if self._simple:
            return
        for spec in self.specs:
            child = Child(spec)
            self.kids.append(child)
            try:
                await self._start(child)
            except exc.SpawnError as e:
                await self._stop_all()
                reason = f"{SHUTDOWN}:failed_to_start_child({spec.id}, {e.reason})"
                raise exc.ProcessExit(
                    reason, f"{self}: child {spec.id} failed to start: {e}"
                ) from e

    async def _start(self, child: Child) -> Process:
        """Spawn C{child} linked with this supervisor; it is started once ACTIVE.

        @raise SpawnError: it did not start (C{timeout} after C{start_timeout} s).
        """
        spec = child.spec
        assert self.container is not None
        args = {**spec.args, **child.extra}
        if spec.type == cs.SUPERVISOR and self._clock is not None:
            args.setdefault("clock", self._clock)  # a nested supervisor counts on ours
        spawn = self.container.proc_manager.spawn(spec.start, name=spec.name, args=args, link=self)
        self._pending_start = STARTING  # a stop asked for meanwhile waits for the Deferred
        self._pending_start = starting = Deferred.fromCoroutine(spawn)
        timer = self.clock.callLater(spec.start_timeout, starting.cancel)
        try:
            proc = await starting
        except exc.SpawnError as e:
            if e.reason == "error:CancelledError":
                e.reason = SHUTDOWN if self.winding_down else "timeout"
            self.log.error("{sup}: child {id} failed to start: {reason}",
                           sup=self, id=spec.id, reason=e.reason)  # fmt: skip
            raise
        finally:
            self._pending_start = None
            if timer.active():
                timer.cancel()
        proc.parent = self  # stopped by this supervisor, not by the container directly
        child.proc = proc
        return proc

    # -- exits of children ----------------------------------------------------------

    async def on_exit(self, pid: str, reason: str) -> None:
        """A linked process ended: a child is restarted as its spec says; the
        supervisor's own parent (its supervisor) ends this one too, with its
        reason, as in OTP; any other linked process's exit is only logged."""
        child = next((c for c in self.kids if c.pid == pid), None)
        if child is None:
            if self.parent is not None and pid == str(self.parent.id):
                self.crash(reason)
            else:
                self.log.info("{sup}: linked {pid}, not a child, exited: {reason}",
                              sup=self, pid=pid, reason=reason)  # fmt: skip
            return
        child.last_exit = reason
        child.gave_up = isinstance(child.proc, Supervisor) and child.proc.gave_up
        child.proc = None
        spec = child.spec
        self.log.info("{sup}: child {id} ({pid}) exited: {reason}",
                      sup=self, id=spec.id, pid=pid, reason=reason)  # fmt: skip
        restart = spec.restart == cs.PERMANENT or (
            spec.restart == cs.TRANSIENT and is_abnormal(reason)
        )
        if not restart:
            if spec.restart == cs.TEMPORARY or self._simple:
                self.kids.remove(child)
            if spec.significant and self._auto_shutdown_due():
                self.log.info("{sup}: significant child {id} ended; shutting down",
                              sup=self, id=spec.id)  # fmt: skip
                self.crash(SHUTDOWN)
            return
        await self._restart(child, pid, reason)

    def _auto_shutdown_due(self) -> bool:
        rule = self.flags.auto_shutdown
        if rule == cs.ANY_SIGNIFICANT:
            return True
        if rule == cs.ALL_SIGNIFICANT:
            return all(c.proc is None for c in self.kids if c.spec.significant)
        return False

    def _group(self, child: Child) -> list[Child]:
        """The children a restart of C{child} takes along, in start order."""
        if self.flags.strategy == cs.ONE_FOR_ALL:
            return list(self.kids)
        if self.flags.strategy == cs.REST_FOR_ONE:
            return self.kids[self.kids.index(child) :]
        return [child]

    async def _restart(self, child: Child, old_pid: str, reason: str) -> None:
        """Restart C{child} (and its group, by the strategy), each attempt counted
        toward the intensity; past it, give up."""
        group = self._group(child)
        for other in reversed(group):
            if other is not child and other.proc is not None:
                await self._stop(other)
        for other in group:  # a temporary sibling stopped for the group is not restarted
            if other is not child and other.spec.restart == cs.TEMPORARY:
                self.kids.remove(other)
        group = [c for c in group if c in self.kids]
        child.restarts += 1
        while self.state == "ACTIVE":
            if not self._count_restart():
                self.log.error("{sup}: reached_max_restart_intensity ({n} in {p}s); giving up",
                               sup=self, n=self.flags.intensity, p=self.flags.period)  # fmt: skip
                self._announce_supervision(EventId.SUPERVISOR_GAVE_UP,
                                           reason="reached_max_restart_intensity")  # fmt: skip
                self.gave_up = True
                self.crash(SHUTDOWN)
                return
            started: list[Child] = []
            try:
                for other in group:
                    await self._start(other)
                    started.append(other)
                self.log.info("{sup}: restarted child {id}: {new} (restart {n})",
                              sup=self, id=child.spec.id, new=child.pid, n=child.restarts)  # fmt: skip
                self._announce_supervision(
                    EventId.CHILD_RESTARTED, child_id=child.spec.id, old_pid=old_pid,
                    new_pid=child.pid or "", reason=reason, restarts=child.restarts,
                )  # fmt: skip
                return
            except exc.SpawnError:
                for other in reversed(started):  # try the group again, from the start
                    await self._stop(other)

    def _announce_supervision(self, event_id: int, **fields: Any) -> None:
        """Publish a supervision event (L{EventId}) from this supervisor."""
        assert self.container is not None
        me, flags = str(self.id), self.flags
        self.container.announce(event_id, me, supervisor_id=me, strategy=flags.strategy,
                                intensity=flags.intensity, period=flags.period, **fields)  # fmt: skip

    def _count_restart(self) -> bool:
        """Count a restart now; whether it stays within intensity per period."""
        self._restart_times.append(self.clock.seconds())
        return self.restarts_in_period() <= self.flags.intensity

    def restarts_in_period(self) -> int:
        """The restarts counted within the last C{period} seconds (of C{intensity} allowed)."""
        now = self.clock.seconds()
        times = self._restart_times
        while times and times[0] <= now - self.flags.period:
            times.popleft()
        return len(times)

    # -- stopping --------------------------------------------------------------------

    async def terminate(self, reason: str = SHUTDOWN) -> None:
        self._cancel_start()
        await super().terminate(reason)

    async def kill(self, reason: str = KILLED) -> None:
        self._cancel_start()
        await super().kill(reason)

    def _cancel_start(self) -> None:
        """No start finishes once stopping began: cancel the one under way (the
        cancel reaches the Deferred its hook awaits). Asked from within that
        start's first steps (a child's hook), before its Deferred exists, it is
        cancelled in the next reactor turn."""
        starting = self._pending_start
        if starting is STARTING:
            assert self.container is not None
            self.container.reactor.callLater(0, self._cancel_start)
        elif starting is not None:
            starting.cancel()

    async def on_terminate(self) -> None:
        """Stop the children, newest first, each within its shutdown budget."""
        await self._stop_all()

    async def _stop_all(self) -> None:
        for child in reversed(self.kids):
            if child.proc is not None:
                await self._stop(child)

    async def _stop(self, child: Child) -> str:
        """Stop one child as its spec says; return the reason it ended with."""
        proc, child.proc = child.proc, None
        assert proc is not None and self.container is not None
        self.unlink(str(proc.id))  # its exit is no restart cue
        manager = self.container.proc_manager
        budget = child.spec.shutdown_budget
        if budget == cs.BRUTAL_KILL:
            await manager.kill(proc)
        elif budget == cs.INFINITY:
            await manager.terminate(proc)
        else:
            stopping = Deferred.fromCoroutine(manager.terminate(proc))
            timer = self.clock.callLater(budget, lambda: Deferred.fromCoroutine(manager.kill(proc)))
            try:
                await stopping
            finally:
                if timer.active():
                    timer.cancel()
        reason = proc.exit_reason or SHUTDOWN
        if reason != SHUTDOWN:
            self.log.warn("{sup}: shutdown_error: child {id} ended with {reason}",
                          sup=self, id=child.spec.id, reason=reason)  # fmt: skip
        return reason

    def _signal_exits(self, reason: str) -> None:
        super()._signal_exits(reason)
        waiters, self._end_waiters = self._end_waiters, []
        for waiter in waiters:
            waiter.callback(reason)

    # -- the API ---------------------------------------------------------------------

    def when_ended(self) -> Deferred[str]:
        """A Deferred that fires with this supervisor's exit reason once it has ended."""
        if self.state == "TERMINATED":
            return succeed(self.exit_reason or SHUTDOWN)
        waiter: Deferred[str] = Deferred()
        self._end_waiters.append(waiter)
        return waiter

    async def start_child(self, spec_or_args: ChildSpec | dict[str, Any]) -> Process:
        """Add and start a child: a spec, or (simple_one_for_one) the arguments
        added to the template's.

        @raise SpawnError: it did not start (a static spec is kept, as in OTP).
        """
        if self._simple:
            child = Child(self.specs[0], extra=dict(spec_or_args))  # type: ignore[arg-type]
        else:
            spec = ChildSpec.of(spec_or_args)
            if any(c.spec.id == spec.id for c in self.kids):
                raise exc.ProcessError(f"{self}: a child {spec.id!r} exists already")
            child = Child(spec)
        self.kids.append(child)
        try:
            return await self._start(child)
        except exc.SpawnError:
            if self._simple or child.spec.restart == cs.TEMPORARY:
                self.kids.remove(child)
            raise

    async def terminate_child(self, id_or_pid: str) -> None:
        """Stop a child (kept, with no pid; simple_one_for_one ones are removed)."""
        child = self._find(id_or_pid)
        if child.proc is not None:
            await self._stop(child)
        if self._simple or child.spec.restart == cs.TEMPORARY:
            self.kids.remove(child)

    async def restart_child(self, child_id: str) -> Process:
        """Start a stopped child again."""
        child = self._static(child_id)
        if child.proc is not None:
            raise exc.ProcessError(f"{self}: child {child_id!r} is running")
        return await self._start(child)

    def delete_child(self, child_id: str) -> None:
        """Forget a stopped child."""
        child = self._static(child_id)
        if child.proc is not None:
            raise exc.ProcessError(f"{self}: child {child_id!r} is running")
        self.kids.remove(child)

    def which_children(self) -> list[dict[str, Any]]:
        """Each child: id, pid (None when not running), type, restarts."""
        return [
            {"id": c.spec.id, "pid": c.pid, "type": c.spec.type, "restarts": c.restarts}
            for c in self.kids
        ]

    def count_children(self) -> dict[str, int]:
        """OTP's counts: specs, active, supervisors, workers."""
        kinds = [c.spec.type for c in self.kids]
        return {
            "specs": len(self.specs) if self._simple else len(self.kids),
            "active": sum(c.proc is not None for c in self.kids),
            "supervisors": kinds.count(cs.SUPERVISOR),
            "workers": kinds.count(cs.WORKER),
        }

    def _find(self, id_or_pid: str) -> Child:
        for c in self.kids:
            if c.pid == str(id_or_pid) or (not self._simple and c.spec.id == id_or_pid):
                return c
        raise exc.ProcessError(f"{self}: no child {id_or_pid!r}")

    def _static(self, child_id: str) -> Child:
        if self._simple:
            raise exc.ProcessError("simple_one_for_one supervisors cannot restart or delete")
        return self._find(child_id)
