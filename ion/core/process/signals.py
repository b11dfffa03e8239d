"""Signals between processes: what links and monitors send, and how.

A signal is an ion message with protocol C{signal} and one of the C{sys_*}
operations below, published (mandatory) to the receiving process's own queue,
the path its ordinary messages take. When the broker cannot carry one (its
connection is down), a signal to a process of this container is handed to
that process directly instead (L{inject}), through the same intake.

A signal carries the epoch of its sender's container (C{sender-epoch}), and a
link or monitor asked of another container the epoch of that container its
sender knows (C{receiver-epoch}): what they are for is in
L{ion.core.process.remote}. A container without an agent has no epoch: its
signals carry none.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from ion.core.messaging import message as m

if TYPE_CHECKING:
    from ion.core.cc.container import Container

SIGNAL = "signal"
EXIT, DOWN = "sys_exit", "sys_down"
LINK, UNLINK, MONITOR, DEMONITOR = "sys_link", "sys_unlink", "sys_monitor", "sys_demonitor"
OPS = frozenset({EXIT, DOWN, LINK, UNLINK, MONITOR, DEMONITOR})

#: A signal owed to a process of another container: (sender, receiver, op,
#: content, the epoch of the sender's container when it became owed).
Owed = tuple[str, str, str, dict[str, Any], int | None]


def container_of(pid: str) -> str:
    """The container id in process id C{pid} (C{name.n@container})."""
    return pid.rpartition("@")[2]


def encode(
    sender: str, to: str, op: str, content: dict[str, Any] | None, epoch: int | None = None
) -> bytes:
    """The wire bytes of signal C{op} from C{sender} to C{to} (unsigned: for a
    process of this container, L{inject})."""
    return m.encode(headers(sender, to, op, epoch), content or {})


def headers(
    sender: str, to: str, op: str, epoch: int | None = None, to_epoch: int | None = None
) -> dict[str, Any]:
    """The headers of signal C{op} from C{sender} (of a container in C{epoch})
    to C{to} (of a container its sender knows in C{to_epoch}); None: not known."""
    h = {
        m.SENDER: sender,
        m.RECEIVER: to,
        m.CONV_ID: f"{SIGNAL}:{sender}",
        m.PROTOCOL: SIGNAL,
        m.PERFORMATIVE: "inform",
        m.OP: op,
        m.TS: int(time.time() * 1000),
    }
    if epoch is not None:
        h[m.SENDER_EPOCH] = epoch
    if to_epoch is not None:
        h[m.RECEIVER_EPOCH] = to_epoch
    return h


def epochs(msg: m.Message) -> tuple[int | None, int | None]:
    """The sender's and the receiver's epochs signal C{msg} names (None: none, or not a number)."""
    return _epoch(msg.headers.get(m.SENDER_EPOCH)), _epoch(msg.headers.get(m.RECEIVER_EPOCH))


def _epoch(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def send(
    container: Container,
    sender: str,
    to: str,
    op: str,
    content: dict[str, Any] | None = None,
    epoch: int | None = None,
    to_epoch: int | None = None,
) -> Deferred[None]:
    """Publish signal C{op} to C{to}'s queue (L{headers} for the epochs); the
    Deferred fails with L{UnroutableError} when there is no such queue."""
    h = headers(sender, to, op, epoch, to_epoch)
    body = m.encode(h, content or {}, container.exchange.signer)
    tap = container.exchange.tap
    if tap is not None:
        tap.sent(h, len(body), content)
    return container.exchange.publish(to, body, mandatory=True)


class Injected:
    """A delivery made in this container, not by a broker: nothing to ack."""

    redelivered = False
    headers = None
    #: Made by this container: nothing to verify (L{ProcessRuntime.deliver}).
    local = True

    def __init__(self, routing_key: str, body: bytes) -> None:
        self.routing_key = routing_key  # the process's own queue: it goes with it
        self.body = body

    def ack(self) -> None:
        """Nothing to acknowledge."""

    def reject(self, requeue: bool = False) -> None:
        """Nothing to give back."""


def inject(
    proc: Any, sender: str, op: str, content: dict[str, Any] | None, epoch: int | None = None
) -> None:
    """Hand signal C{op} from C{sender} (of a container in C{epoch}) to C{proc}
    (a process of this container) as if its queue had delivered it."""
    me = str(proc.id)
    proc.runtime.deliver(Injected(me, encode(sender, me, op, content, epoch)))
