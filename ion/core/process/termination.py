"""How a process ends: terminated (asked to), killed (forced), or exiting by
itself, always with an exit reason (L{ion.core.process.exit}).

L{Termination} is a base of L{ion.core.process.process.Process}; like the
other bases it holds no state of its own: the life cycle machine carries the
terminate under way (L{ion.core.process.lifecycle}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from ion.core import exception as exc
from ion.core.process import context
from ion.core.process.exit import KILLED, NORMAL, SHUTDOWN, of_exception
from ion.core.process.mailbox import Mailbox

if TYPE_CHECKING:
    from twisted.logger import Logger

    from ion.core.cc.container import Container
    from ion.core.config import Config
    from ion.core.id import ProcessId
    from ion.core.process.lifecycle import Lifecycle
    from ion.core.process.runtime import ProcessRuntime
    from ion.core.process.timers import Timers


class Termination(Mailbox):
    """Terminate, kill and exit (a base of Process)."""

    #: Whether a handler's error (other than an ApplicationError, the caller's
    #: mistake) ends the process with C{error:<Type>} once answered: OTP's
    #: "let it crash", for a process under a supervisor.
    crash_on_error: ClassVar[bool] = False

    id: ProcessId | None
    container: Container | None
    log: Logger
    config: Config
    _lifecycle: Lifecycle
    _place: context.Here
    runtime: ProcessRuntime
    timers: Timers
    _owned: list[Any]
    children: list[Any]

    if TYPE_CHECKING:

        def intake(self) -> list[tuple[str, str]]: ...

    def on_terminate(self) -> Any:
        """Called when terminating, after in-flight work drained (may be async);
        not when killed."""

    async def terminate(self, reason: str = SHUTDOWN) -> None:
        """Stop intake, wait (bounded) for in-flight handlers, terminate children,
        run C{on_terminate} and release the queues; the process is TERMINATING
        meanwhile and ends with exit reason C{reason}. Until then it can still
        send (handlers finishing, C{on_terminate} saying goodbye). Each step is
        attempted even when an earlier one failed (a broker link may be down); a
        failing hook is reported to the caller, and the process is TERMINATED
        all the same. Called again while under way, it waits for the first call.

        @raise IllegalStateError: it is TERMINATED already.
        """
        under_way = self._lifecycle.terminate(reason)
        if under_way is not None:
            await under_way
            return
        await self._terminate()

    async def kill(self, reason: str = KILLED) -> None:
        """End at once with C{reason}: handlers under way are cancelled (their
        requests of a shared queue go back to it, unanswered, for another
        instance; those sent to this process's id are answered with an error),
        children are killed, C{on_terminate} does not run. A terminate under way
        is cut short at the step it awaits. Killing a terminated process does
        nothing."""
        if self._lifecycle.kill(reason):
            await self._terminate()
        elif not self.terminated:  # type: ignore[attr-defined]
            under_way = self._lifecycle.terminate(reason)  # joins the one under way
            if under_way is not None:
                await under_way

    def exit(self, reason: str = NORMAL) -> NoReturn:
        """End this process with C{reason}, from its own handler or hook: raises
        L{ProcessExit}, which ends the handler (its request is answered with
        that error) and then the process."""
        raise exc.ProcessExit(reason)

    def crash(self, reason: str) -> None:
        """Begin ending with C{reason} without waiting for it (called from this
        process's own handlers, which terminate would wait for)."""
        if self._lifecycle.state not in ("READY", "ACTIVE", "ERROR"):
            return
        assert self.container is not None
        ending = self.container.proc_manager.terminate(self, reason)  # type: ignore[arg-type]
        Deferred.fromCoroutine(ending).addErrback(
            lambda f: self.log.failure("{proc}: ending with {r} failed", f, proc=self, r=reason)
        )

    def crash_reason(self, failure: Failure) -> str | None:
        """The exit reason a handler's C{failure} makes, or None: it stays an error reply."""
        if failure.check(exc.ProcessExit, exc.FatalError):
            return of_exception(failure.value)
        if type(self).crash_on_error and not failure.check(exc.ApplicationError, CancelledError):
            return of_exception(failure.value)
        return None

    async def _terminate(self) -> None:
        assert self.container is not None
        lifecycle = self._lifecycle
        runtime = self.runtime
        manager = self.container.proc_manager
        hook_error: Failure | None = None
        intake = self.intake()
        timers = self.timers
        timers.halt()  # nothing more is scheduled: no run starts from now on
        try:
            # Its own queue is still consumed until it is deleted: what arrives
            # there meanwhile is answered (signals, requests), not left to vanish.
            await runtime.stop_intake(intake, self._attempt)
            runtime.release_waiting()  # requests not started go back for another instance
            for thing in reversed(self._owned):
                await self._attempt(thing.stop(), f"stopping {thing!r}")
            self._owned.clear()
            if (runtime.inflight or timers.busy) and not lifecycle.forced:  # (most: neither)
                timeout = float(self.config.get("container.terminate_timeout", 10.0))
                await self._interruptible(_drain(runtime, timers, timeout), "waiting for handlers")
            if lifecycle.forced:
                runtime.abandon_running()
            # Timer runs that outlived the drain (or a kill) are cancelled, as
            # killed handlers are: none runs once the process is TERMINATED.
            timers.cancel_running()
            for child in reversed(self.children):
                if not child.terminated and not lifecycle.forced:
                    await self._interruptible(manager.terminate(child), f"terminating {child}")
                if not child.terminated and lifecycle.forced:
                    await self._attempt(manager.kill(child), f"killing {child}")
            # A class with no on_terminate of its own has nothing to run (most
            # processes: a container stops thousands at once).
            if not lifecycle.forced and type(self).on_terminate is not Termination.on_terminate:
                try:
                    hook = run_hook(self.on_terminate, self._place)
                    await lifecycle.interruptible(Deferred.fromCoroutine(hook))
                except Exception:
                    if not lifecycle.forced:
                        hook_error = Failure()
        finally:
            try:
                runtime.release_waiting(all_of_them=True)
            except Exception:
                self.log.failure("{proc}: giving back waiting requests failed", proc=self)
            self.fail_conversations(exc.ProcessError(f"{self} terminated"))
            await runtime.close(self._attempt)
            self._announce("TERMINATED")  # type: ignore[attr-defined]
            reason = lifecycle.reason
            lifecycle.finished()
            self._signal_exits(reason or SHUTDOWN)  # type: ignore[attr-defined]
        if hook_error is not None:
            hook_error.raiseException()

    async def _interruptible(self, step: Any, what: str) -> None:
        """Await C{step} (a coroutine) unless a kill cuts it short; log its failure."""
        try:
            await self._lifecycle.interruptible(Deferred.fromCoroutine(step))
        except CancelledError:
            if not self._lifecycle.forced:
                self.log.warn("{proc}: {what} was cancelled", proc=self, what=what)
        except Exception as e:
            self.log.warn("{proc}: {what} failed: {err}", proc=self, what=what, err=e)

    def _attempt(self, step: Any, what: str) -> Any:
        """One step of terminating to await; its failure is logged instead of
        stopping there. A step done already is awaited as it is (the embedded
        broker's are: a container of many processes stops that much sooner)."""
        if isinstance(step, Deferred) and step.called and not isinstance(step.result, Failure):
            return step
        return self._attempted(step, what)

    async def _attempted(self, step: Any, what: str) -> None:
        try:
            await step
        except Exception as e:
            self.log.warn("{proc}: {what} failed: {err}", proc=self, what=what, err=e)


async def _drain(runtime: ProcessRuntime, timers: Timers, timeout: float) -> None:
    """Wait for the handlers and the timer runs under way, together, for at
    most C{timeout} seconds each."""
    waits = [
        Deferred.fromCoroutine(runtime.drain(timeout)),
        Deferred.fromCoroutine(timers.drain(timeout)),
    ]
    try:
        for d in waits:
            await d
    except BaseException:
        for d in waits:
            d.cancel()
        raise


async def run_hook(hook: Callable[[], Any], place: context.Here) -> None:
    """Run a life cycle hook (plain or async) where the process's handlers run."""
    token = context.entered(place)  # awaited in this coroutine: reset in its context
    try:
        result = hook()
        if isinstance(result, Deferred) or hasattr(result, "__await__"):
            await result
    finally:
        context.left(token)
