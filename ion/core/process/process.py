"""The ion process: a life cycle, a mailbox, named operations and conversations.

Subclasses implement operations as C{op_<name>(content, headers, msg)} (plain or
C{async def}) and the hooks C{on_init}, C{on_activate}, C{on_terminate}. A
handler's return value is the reply when it did not reply itself; an exception
it raises is the error reply, and the process stays ACTIVE -- unless it is a
L{ProcessExit} or L{FatalError}, or the class sets C{crash_on_error}: then the
process exits once it has answered (L{ion.core.process.termination}). Processes
link and monitor one another (L{ion.core.process.links}). The process's
C{runtime} (L{ion.core.process.runtime}) takes its deliveries, runs its
handlers and sends for it; the process keeps the user's API over it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.logger import Logger

from ion.core import events
from ion.core import exception as exc
from ion.core.config import DEFAULTS, Config, read_number
from ion.core.id import ProcessId
from ion.core.messaging import message as m
from ion.core.process import context, watchdog
from ion.core.process.lifecycle import Lifecycle
from ion.core.process.links import Linking
from ion.core.process.runtime import REPLY_KEY_SUFFIX, ProcessRuntime, UnknownOpError
from ion.core.process.signals import SIGNAL
from ion.core.process.termination import Termination, run_hook
from ion.core.process.timers import Later, Timers

if TYPE_CHECKING:
    from ion.core.cc.container import Container

__all__ = ["REPLY_KEY_SUFFIX", "Process", "UnknownOpError"]


class Process(Linking, Termination):
    """An ion process. Spawn it through a container; do not start it by hand.

    @ivar id: the L{ProcessId}, set when spawned.
    @ivar proc_name: the process's name (spawn name, else the class's C{name}).
    @ivar args: spawn arguments.
    @ivar config: this process's view of the configuration.
    @ivar user_id: the identity this process's calls carry (None: that of the
        request its handler is answering, if any; a call's own C{user-id}
        header wins over both).
    """

    name: ClassVar[str | None] = None
    user_id: str | None = None
    #: Handlers run at once (more deliveries wait, unacked); None: config
    #: C{process.concurrency}; 0: no limit but the broker's prefetch.
    concurrency: ClassVar[int | None] = None
    #: Seconds a handler may run before it is cut off (a timeout error answers
    #: its request); None: config C{process.handler_timeout}; 0: no limit. A
    #: request's expiry (its caller's deadline) bounds it too; an op may set
    #: its own with L{ion.core.process.watchdog.handler_timeout}.
    handler_timeout: ClassVar[float | None] = None
    #: Seed of the random source its timers' jitter is drawn from (None: the
    #: system's); a test sets it to have the same runs every time.
    timer_seed: ClassVar[int | None] = None

    def __init__(
        self,
        name: str | None = None,
        args: dict[str, Any] | None = None,
        config: Config | None = None,
    ) -> None:
        self.proc_name = name or type(self).name or type(self).__name__.lower()
        self.args: dict[str, Any] = dict(args or {})
        self.config = config if config is not None else Config(DEFAULTS)
        self.id: ProcessId | None = None
        self.container: Container | None = None
        self.parent: Process | None = None
        self.children: list[Process] = []
        self.log = Logger(namespace=f"ion.process.{self.proc_name}", source=self)
        self._lifecycle = Lifecycle(self)
        #: Its queues, consumers, conversations and the handlers under way.
        self.runtime = ProcessRuntime(self)
        #: Its periodic entrypoints (L{ion.core.process.timers.every}) and
        #: pending C{call_later} calls.
        self.timers = Timers(self)
        self._owned: list[Any] = []  # things with async stop(), stopped on terminate
        self._links: set[str] = set()
        self._monitors: dict[str, str] = {}  # ref -> pid it watches
        self._watchers: dict[str, str] = {}  # ref -> pid watching it
        self._epochs: dict[str, int] = {}  # pid or ref -> epoch of the other container

    # -- identity and state ------------------------------------------------

    @property
    def state(self) -> str:
        """INIT, READY, ACTIVE, TERMINATING, TERMINATED or ERROR."""
        return self._lifecycle.state

    @property
    def exit_reason(self) -> str | None:
        """Why it ended (L{ion.core.process.exit}); None until it terminates."""
        return self._lifecycle.reason

    @property
    def winding_down(self) -> bool:
        """Whether terminate has begun or the process is gone: it takes no new
        children and owns nothing more."""
        return self._lifecycle.state not in _RUNNING

    @property
    def expired_dropped(self) -> int:
        """Requests dropped unrun because their caller's deadline had passed."""
        return self.runtime.expired_dropped

    @property
    def place(self) -> context.Here:
        """Where its handlers and hooks run (L{ion.core.process.context})."""
        return self._place

    @property
    def sysname(self) -> str:
        assert self.container is not None, "process is not spawned"
        return self.container.sysname

    def __str__(self) -> str:
        return str(self.id) if self.id is not None else f"{self.proc_name}(unspawned)"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self} {self.state}>"

    # -- hooks for subclasses ----------------------------------------------

    def on_init(self) -> Any:
        """Called once queues exist, before the process is READY (may be async)."""

    def on_activate(self) -> Any:
        """Called when ACTIVE, before messages are taken (may be async)."""

    def intake(self) -> list[tuple[str, str]]:
        """The (queue, routing key) pairs this process takes requests from.

        A process answers on its own id; services add their shared queue.
        """
        assert self.container is not None and self.id is not None
        return [(self.container.exchange.queue_name(str(self.id)), str(self.id))]

    # -- life cycle (driven by the process manager) -------------------------

    def attach(self, container: Container, pid: ProcessId) -> None:
        """Bind this instance to its container and id (before initialize)."""
        self.container = container
        self.id = pid
        # Config is immutable, so reading these once per process is the same as
        # reading them per call, and keeps lookups off the message path.
        self._rpc_timeout = float(self.config.get("container.rpc_timeout", 15.0))
        idle = float(self.config.get("container.conversation_timeout", 60.0))
        self._place = context.Here(container, self)  # where its handlers and hooks run
        self.timers.clock = container.reactor
        self.runtime.attach(container.exchange, container.reactor, str(pid), self._place,
                            self._rpc_timeout, idle)  # fmt: skip
        # Each request passes the container's policy, if it has one, as this service.
        self.runtime.policy = getattr(container, "policy", None)
        self.runtime.service = getattr(self, "svc_name", None) or self.proc_name

    async def initialize(self) -> None:
        """INIT -> READY: declare the mailbox, take replies, run C{on_init}."""
        self._lifecycle.step("initialize")
        try:
            await self.runtime.open(self.intake())
            await run_hook(self.on_init, self._place)
        except BaseException:
            self._failed()
            raise
        self._announce("READY")

    async def activate(self) -> None:
        """READY -> ACTIVE: run C{on_activate}, then start taking requests."""
        self._lifecycle.step("activate")
        runtime = self.runtime
        try:
            runtime.concurrency = self._concurrency_setting()
            runtime.handler_limit = watchdog.configured_limit(type(self), self.config)
            runtime.max_redeliveries = self._setting(
                "process.max_redeliveries", 5, "redeliveries >= 0"
            )
            if (signer := getattr(runtime.exchange, "signer", None)) is not None:
                signer.allow_redeliveries(runtime.max_redeliveries)
            await run_hook(self.on_activate, self._place)
            prefetch = int(self.config.get("broker.prefetch", 32))
            await runtime.start_intake(self.intake(), prefetch)
        except BaseException:
            self._failed()
            raise
        self.timers.start()
        self._announce("ACTIVE")

    def _failed(self) -> None:
        """Go to ERROR: its timers halt (a call_later made in on_init or
        on_activate runs not), and it says so."""
        self._lifecycle.fail()
        self.timers.halt()
        self._announce("ERROR")

    def _concurrency_setting(self) -> int:
        value = type(self).concurrency
        if value is None:
            return self._setting("process.concurrency", 0, "handlers >= 0 (0: no limit)")
        return _whole(value, f"{type(self).__name__}.concurrency", "handlers >= 0 (0: no limit)")

    def _setting(self, key: str, default: int, what: str = ">= 0") -> int:
        """A whole-number setting >= 0 of this process's config."""
        value = self.config.get(key, default)
        number = read_number(value, int)  # as the other settings are read: "4" is 4
        return _whole(int(number) if number is not None else value, key, what)

    @property
    def terminated(self) -> bool:
        """Whether terminate has finished (not merely begun)."""
        return self._lifecycle.state == "TERMINATED"

    def broker_lost(self, error: Exception) -> None:
        """The broker link was lost: fail open calls at once, forget deliveries
        not started that the broker delivers again."""
        self.fail_conversations(error)
        self.runtime.forget_waiting()

    def consumes(self, tag: str) -> bool:
        """Whether C{tag} is one of this process's consumers."""
        return self.runtime.consumes(tag)

    def intake_failed(self, queue: str, error: Exception) -> None:
        """Nothing more arrives from C{queue} (it could not be consumed again):
        move to ERROR, say so (log, event), fail the open calls and leave the
        shared queues to other instances; the process's own mailbox answers
        requests with an error (503) until it is terminated."""
        if self.winding_down:
            return
        self.log.error("{proc}: receives nothing more from {queue} ({error}); now ERROR",
                       proc=self, queue=queue, error=error)  # fmt: skip
        self._failed()
        self.fail_conversations(exc.ProcessError(f"{self} failed: {queue} is lost: {error}"))
        self.runtime.leave_shared_intake(self.intake())

    def own(self, thing: Any) -> None:
        """Stop C{thing} (it has an async C{stop()}) when this process terminates
        (once, however often it is owned: a subscriber started again is owned again).

        @raise IllegalStateError: the process is terminating or gone, so nothing
            would stop C{thing}.
        """
        if self.winding_down:
            raise exc.IllegalStateError(
                f"{self} is {self._winding_down_as()}; it cannot own {thing!r}"
            )
        if not any(owned is thing for owned in self._owned):
            self._owned.append(thing)

    def call_later(self, delay: float, f: Callable[..., Any], *args: Any) -> Later:
        """Run C{f(*args)} (plain or async) C{delay} seconds from now on this
        process's clock, where its handlers run; cancelled if the process
        terminates first. Its error is logged, as a handler's is.

        @return: a handle to C{cancel()}.
        @raise IllegalStateError: the process is terminating or gone.
        """
        if self.winding_down:
            raise exc.IllegalStateError(
                f"{self} is {self._winding_down_as()}; it cannot call_later {f!r}"
            )
        return self.timers.call_later(delay, f, *args)

    def _winding_down_as(self) -> str:
        return self.state.lower() if self.state == "TERMINATING" else self.state

    def _announce(self, state: str) -> None:
        """Publish this process's life cycle event (1052, origin = process id)."""
        assert self.container is not None
        try:
            me = str(self.id)
            hub = self.container.hub
            if hub is not None:
                fields = {"process_id": me, "name": self.proc_name, "state": state,
                          "container_id": self.container.id, "reason": self.exit_reason}  # fmt: skip
                hub.announced(int(events.EventId.PROCESS_LIFECYCLE), me, fields)
            exchange = self.container.exchange
            if exchange.event_unheard(
                events.routing_key(int(events.EventId.PROCESS_LIFECYCLE), me)
            ):
                return  # nobody would get it (the embedded broker knows): not even built
            event = events.process_lifecycle_event(me, self.proc_name, self.container.id, state)
            events.publish(exchange, me, event).addErrback(
                lambda f: self.log.warn(
                    "{proc}: {state} event lost: {f}", proc=self, state=state, f=f.value
                )
            )
        except Exception:
            self.log.failure("{proc}: could not announce {state}", proc=self, state=state)

    async def spawn_child(
        self, target: Any, name: str | None = None, args: dict[str, Any] | None = None
    ) -> Process:
        """Spawn a process that is terminated with this one.

        @raise IllegalStateError: this process is terminating or gone.
        """
        assert self.container is not None
        if self.winding_down:
            raise exc.IllegalStateError(
                f"{self} is {self._winding_down_as()}; it cannot spawn {target!r}"
            )
        return await self.container.proc_manager.spawn(target, name=name, args=args, parent=self)

    # -- what its runtime asks of it ------------------------------------------

    def handler_for(self, msg: m.Message) -> Callable[..., Any] | None:
        """The handler of C{msg}: C{op_<op>}, or the signal handler; None: none."""
        if msg.protocol == SIGNAL:
            return self._on_signal
        op = msg.op
        if not isinstance(op, str) or not op.isidentifier():
            return None
        return getattr(self, "op_" + op, None)

    # -- built-in operations -------------------------------------------------

    def op_ping(self, content: Any, headers: dict[str, Any], msg: m.Message) -> dict[str, Any]:
        """Answer that this process is alive, with its id and state."""
        return {"pong": str(self.id), "state": self.state}


_RUNNING = frozenset({"INIT", "READY", "ACTIVE"})


def _whole(value: Any, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise exc.ConfigurationError(f"{where}: expected a whole number of {what}, not {value!r}")
    return value
