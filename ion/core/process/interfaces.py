"""What a process runtime (L{ion.core.process.runtime}) needs from the world:
an L{Exchange} to reach the broker, and a L{Host}, the process whose handlers
it runs. Time comes as a C{twisted.internet.interfaces.IReactorTime}.

Small on purpose: a test drives the runtime with C{task.Clock}, an in-memory
exchange (L{ion.test.fakes.OfflineExchange}) and a fake host, no container.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.drops import Drops
from ion.core.messaging import message as m
from ion.core.observe.tap import MessageTap
from ion.core.security.signing import Signer

__all__ = ["Exchange", "Host"]


class Exchange(Protocol):
    """The part of a container's exchange manager a process runtime uses."""

    max_message_size: int
    #: Where sends and receives are recorded (None: nowhere).
    tap: MessageTap | None
    #: Where dropped messages are counted and logged (None: the runtime keeps its own).
    drops: Drops | None
    #: Signs what is sent and verifies what is taken (None: signing is off).
    signer: Signer | None

    def queue_name(self, key: str) -> str:
        """The queue name for routing key C{key}."""

    def restoring(self, queue: str) -> bool:
        """Whether C{queue} is not back yet after a reconnect (sent to, it loses the message)."""

    async def declare_queue(self, key: str, exclusive: bool = False) -> str:
        """Declare and bind the queue for C{key}; return its name."""

    def publish(
        self,
        key: str,
        body: bytes,
        mandatory: bool = False,
        report_returns: bool = False,
        expiration: int | None = None,
    ) -> Deferred[None]:
        """Publish C{body} with routing key C{key}."""

    def consume(
        self, queue: str, on_delivery: Callable[[Any], None], prefetch: int, auto_ack: bool = False
    ) -> Deferred[str]:
        """Hand each delivery of C{queue} to C{on_delivery}; fire with the consumer tag."""

    def cancel(self, tag: str) -> Deferred[None]:
        """Stop the consumer C{tag}."""

    def delete_queue(self, queue: str) -> Deferred[Any]:
        """Delete C{queue}."""


class Host(Protocol):
    """The process a runtime serves: its name, state and handlers, and how a
    handler's error ends it.

    L{ion.core.process.process.Process} is one; the runtime calls nothing else of it.
    """

    log: Logger
    proc_name: str
    #: The identity its calls carry (None: that of the request being handled).
    user_id: str | None

    @property
    def sysname(self) -> str:
        """The name of the system it runs in."""

    @property
    def state(self) -> str:
        """The life cycle state: INIT, READY, ACTIVE, TERMINATING, TERMINATED or ERROR."""

    def handler_for(self, msg: m.Message) -> Callable[..., Any] | None:
        """The handler of C{msg} (its op's, or the signal handler); None: there is none."""

    def signal_inactive(self, msg: m.Message) -> None:
        """Act on a signal that arrived while the process is not ACTIVE."""

    def crash_reason(self, failure: Failure) -> str | None:
        """The exit reason a handler's C{failure} makes, or None: it stays an error reply."""

    def crash(self, reason: str) -> None:
        """Begin ending the process with C{reason}, without waiting for it."""
