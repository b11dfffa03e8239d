"""Links and monitors across containers when a connection or a container is lost.

When this container loses its broker connection, its processes' mailboxes go
with it, so every link and monitor between one of them and a process of
another container ends at once with C{noconnection}: here as signals handed to
the local processes (L{Linking._cut}), there once the connection is back, as
the signals this container then owes: an exit signal per link and a down
signal per watcher, both C{noconnection}, and a demonitor per monitor. Nothing
is linked again by itself; a process links anew if it wants to. A receiver
acts on the first exit or down signal of a link or monitor and drops any
later one, so the other side sees each end once, whichever signal comes first.

L{RemoteLinks.container_lost} is the hook for a container declared dead (by
the container agent): links and monitors into it fire C{noconnection}, and
nothing is owed to it; L{RemoteLinks.cut_all} ends them all when this
container rejoins its system under a new epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.exception import ConnectionLostError, ProcessError, UnroutableError
from ion.core.process import signals
from ion.core.process.signals import Owed

if TYPE_CHECKING:
    from ion.core.process.manager import ProcessManager

log = Logger()


class RemoteLinks:
    """The cross-container side of a process manager's links and monitors."""

    def __init__(self, manager: ProcessManager) -> None:
        self._manager = manager
        self.owed: list[Owed] = []  # to send once the broker connection is back

    def _cut(self, gone: Any) -> list[Owed]:
        owed: list[Owed] = []
        for proc in list(self._manager.processes.values()):
            if not proc.terminated:
                owed.extend(proc._cut(gone))
        return owed

    def connection_lost(self) -> None:
        """The broker connection is lost: every link and monitor into another
        container fires C{noconnection} here; the other side is told once the
        connection is back (L{reconnected})."""
        here = self._manager.container.id
        owed = self._cut(lambda pid: signals.container_of(pid) != here)
        if owed:
            log.info("{n} links and monitors into other containers ended: noconnection",
                     n=len(owed))  # fmt: skip
        self.owed.extend(owed)

    def reconnected(self) -> None:
        """The broker connection is back: send the signals owed since it was lost."""
        owed, self.owed = self.owed, []
        for sender, to, op, content in owed:
            d = signals.send(self._manager.container, sender, to, op, content)
            d.addErrback(self._not_sent, (sender, to, op, content))

    def _not_sent(self, failure: Failure, owed: Owed) -> None:
        if failure.check(UnroutableError):
            return  # gone meanwhile: nobody to tell
        if failure.check(ConnectionLostError):
            self.owed.append(owed)  # lost again: the next reconnect sends it
            return
        log.warn("signal {op} owed to {to} lost: {f}", op=owed[2], to=owed[1], f=failure.value)

    def cut_all(self) -> int:
        """This container comes back under a new epoch (its agent was declared
        dead, or its connection came back): every link and monitor into another
        container fires C{noconnection} here, and nothing is owed, since each
        peer ends its side on meeting the new epoch. Return how many ended."""
        here = self._manager.container.id
        ended = self._cut(lambda pid: signals.container_of(pid) != here)
        self.owed.clear()
        return len(ended)

    def container_lost(self, container_id: str) -> int:
        """Container C{container_id} is gone (declared dead): every link and
        monitor of a process here into it fires C{noconnection}, its watchers of
        processes here are dropped, and nothing is owed to it. Return how many
        links, monitors and watchers ended.

        @raise ProcessError: C{container_id} is this container's own.
        """
        if container_id == self._manager.container.id:
            raise ProcessError(f"container {container_id} cannot lose itself")
        ended = self._cut(lambda pid: signals.container_of(pid) == container_id)
        self.owed = [o for o in self.owed if signals.container_of(o[1]) != container_id]
        return len(ended)
