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

L{RemoteLinks.container_lost} is the hook for an epoch of a container ended
(by the container agent: declared dead, gone, or come back under a newer
epoch): links and monitors into it fire C{noconnection}, and nothing is owed
to it; L{RemoteLinks.cut_all} ends them all when this container rejoins its
system under a new epoch.

Epochs. A container's processes outlive its epochs, so a link between the
same two processes can be made again under a newer epoch of either side, and
a container may meet another's new epoch after a link made with it (the
agents' traffic and a process's signals travel on different queues). So a
link or monitor belongs to the epochs it was made under, and only the end of
those ends it:

- every signal carries its sender's epoch (C{sender-epoch}: the epoch when
  it was sent, or, for one owed, when it became owed); a link or monitor
  asked of another container carries too the epoch of that container this
  one's agent knows, when it knows one not ended (C{receiver-epoch});
- each side of a link or monitor across containers remembers the other
  container's epoch it was made under: the asker the C{receiver-epoch} it
  sent, the other side the C{sender-epoch} it got (unknown: none was sent);
- a link or monitor asked of another epoch than the receiver's is not
  recorded: an older one ended, with its links, when the receiver's
  container took its new epoch, and the asker ends its side on meeting that
  epoch (or, for a container id used again, on the earlier run's end);
- ending epoch E of a container ends the links and monitors into it made
  under E or earlier, or under an unknown epoch, not those made under a newer
  one: a container declared dead (its newest epoch) so ends every link into
  it;
- an exit signal of an epoch older than the one its link was made under is
  the late end of an earlier link between the same two processes, and is
  dropped (a monitor's down signal names its own reference).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

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

    @property
    def epoch(self) -> int | None:
        """This container's epoch (None: it has no agent)."""
        agent = self._manager.container.agent
        return None if agent is None else agent.epoch

    def epoch_of(self, container_id: str) -> int | None:
        """The epoch of container C{container_id} this container's agent knows,
        UP or SUSPECT (None: it knows none, or only one ended)."""
        agent = self._manager.container.agent
        membership = None if agent is None else agent.membership
        peer = None if membership is None else membership.peers.get(container_id)
        return None if peer is None or peer.ended else peer.epoch

    def _cut(self, gone: Callable[[str, int | None], bool]) -> list[Owed]:
        owed: list[Owed] = []
        epoch = self.epoch
        for proc in list(self._manager.processes.values()):
            if not proc.terminated:
                owed.extend(proc._cut(gone, epoch))
        return owed

    def connection_lost(self) -> None:
        """The broker connection is lost: every link and monitor into another
        container fires C{noconnection} here; the other side is told once the
        connection is back (L{reconnected})."""
        here = self._manager.container.id
        owed = self._cut(lambda pid, _epoch: signals.container_of(pid) != here)
        if owed:
            log.info("{n} links and monitors into other containers ended: noconnection",
                     n=len(owed))  # fmt: skip
        self.owed.extend(owed)

    def reconnected(self) -> None:
        """The broker connection is back: send the signals owed since it was lost."""
        owed, self.owed = self.owed, []
        for o in owed:
            sender, to, op, content, epoch = o
            d = signals.send(self._manager.container, sender, to, op, content, epoch)
            d.addErrback(self._not_sent, o)

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
        ended = self._cut(lambda pid, _epoch: signals.container_of(pid) != here)
        self.owed.clear()
        return len(ended)

    def container_lost(self, container_id: str, epoch: int | None = None) -> int:
        """Epoch C{epoch} of container C{container_id} has ended (None: the
        container is gone): every link and monitor of a process here into it
        made under that epoch, an earlier one or an unknown one fires
        C{noconnection}, such watchers of processes here are dropped, and
        nothing is owed to it. Return how many links, monitors and watchers ended.

        @raise ProcessError: C{container_id} is this container's own.
        """
        if container_id == self._manager.container.id:
            raise ProcessError(f"container {container_id} cannot lose itself")

        def gone(pid: str, made_under: int | None) -> bool:
            if signals.container_of(pid) != container_id:
                return False
            return epoch is None or made_under is None or made_under <= epoch

        ended = self._cut(gone)
        self.owed = [o for o in self.owed if signals.container_of(o[1]) != container_id]
        return len(ended)
