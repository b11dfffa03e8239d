"""The implicit process a helper sends from when it is given none: spawned on
first use (and again once it has ended), one spawn shared by every caller that
asks while it is under way (over RabbitMQ a spawn takes round trips, and
callers starting together would otherwise each spawn their own).

L{ion.core.process.service.ServiceClient} and the shell's helpers use one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ion.core.process.process import Process

if TYPE_CHECKING:
    from ion.core.cc.container import Container

__all__ = ["ImplicitProcess"]


class ImplicitProcess:
    """The process named C{name} in C{container} that L{get} returns.

    @ivar proc: the process last spawned (None before, or once forgotten).
    """

    def __init__(self, container: Container, name: str) -> None:
        self.container = container
        self.name = name
        self.proc: Process | None = None
        self._waiters: list[Deferred[Process]] = []  # while a spawn is under way

    async def get(self) -> Process:
        """The process, spawned first if there is none ACTIVE."""
        if self.proc is not None and self.proc.state == "ACTIVE":
            return self.proc
        waiter: Deferred[Process] = Deferred()
        self._waiters.append(waiter)  # before spawning: it may finish at once
        if len(self._waiters) == 1:
            spawning = Deferred.fromCoroutine(self.container.spawn(Process, name=self.name))
            spawning.addBoth(self._spawned)
        return await waiter

    async def settled(self) -> Process | None:
        """Wait for a spawn under way, if any; the process there is then, or None."""
        if self._waiters:
            waiter: Deferred[Process] = Deferred()
            self._waiters.append(waiter)
            try:
                await waiter
            except Exception:  # nothing was spawned; the caller of get() hears why
                pass
        return self.proc

    def _spawned(self, result: Any) -> None:
        if not isinstance(result, Failure):
            self.proc = result
        waiters, self._waiters = self._waiters, []  # a failed spawn may be tried again
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)
