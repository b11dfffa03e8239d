"""The exchange manager: a container's door to the broker, scoped by sysname.

Everything a system declares is named from its sysname: the exchange
C{ion.<sysname>} and the queues C{<sysname>.<key>}, so two systems on one
broker never meet and a system's objects can be listed and cleaned.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from ion.core.config import DEFAULTS, Config
from ion.core.drops import Drops
from ion.core.exception import (
    BrokerError,
    BrokerRefusedError,
    PreconditionFailedError,
    QueueTypeError,
    StartupError,
)
from ion.core.id import check_name, check_sysname
from ion.core.messaging.broker import IBroker, IDelivery
from ion.core.messaging.connect import queue_type
from ion.core.messaging.secure import system_exchange_type
from ion.core.observe.tap import MessageTap
from ion.core.security.signing import Signer

log = Logger()


class ExchangeManager(Service):
    """Owns the broker connection and the system's exchange; publishes and consumes."""

    name = "exchange"

    def __init__(
        self, broker: IBroker, sysname: str, config: Config | None = None, clock: Any = None
    ) -> None:
        self.broker: Any = broker  # an IBroker (mypy reads zope methods as unbound)
        self.config = config if config is not None else Config(DEFAULTS)
        self._clock = clock
        self.sysname = check_sysname(sysname)
        self.exchange_name = f"ion.{sysname}"
        self.events_exchange = f"ion.{sysname}.events"
        self.shared_queues: set[str] = set()  # declared here and left behind on stop
        self.max_message_size = int(
            self.config.get("broker.max_message_size", DEFAULTS["broker"]["max_message_size"])
        )
        self._subscriptions = 0  # private subscription queues named so far
        #: The container's message tap (L{ion.core.observe.tap}); None records nothing.
        self.tap: MessageTap | None = None
        #: Where processes count and log the messages they drop (the container's).
        self.drops: Drops | None = None
        #: Signs what the container sends and verifies what it takes
        #: (L{ion.core.security.signing}); None: signing is off.
        self.signer: Signer | None = None
        self.queue_type = queue_type(self.config)
        self.exchange_type = system_exchange_type(self.config)  # topic when broker.secure
        # Shared queues of quorum type survive a node's loss, and so must what is
        # queued in them: requests and events go out persistent and confirmed
        # (see publish, publish_event). On classic (transient) queues requests
        # go out unconfirmed: one the broker refuses leaves its call to the
        # deadline. A tool making one call (ion-rpc) confirms, and hears it.
        self.confirm_mandatory = self.durable
        broker.on_reconnected(lambda: log.info("broker connection restored; consumers resumed"))
        self._abandoned = False
        self._connecting = False
        self._retry_wait: Deferred[None] | None = None

    @property
    def durable(self) -> bool:
        """Whether the system's shared queues keep what they hold through a node's loss."""
        return self.queue_type == "quorum"

    def abandon_boot(self) -> None:
        """Give up connecting (the container is stopping): no more retries, and
        an attempt under way is ended by closing the connection."""
        self._abandoned = True
        if self._retry_wait is not None:
            self._retry_wait.cancel()
        if self._connecting:
            self.broker.close().addErrback(
                lambda f: log.warn("closing the broker connection failed: {f}", f=f.value)
            )

    async def boot(self) -> None:
        """Connect (retrying with backoff, C{broker.connect_attempts} times) and
        declare the system's exchanges.

        @raise StartupError: the broker could not be reached, or refused us (at once:
            a refused login or certificate is not retried).
        """
        attempts = max(1, int(self.config.get("broker.connect_attempts", 5)))
        delay = float(self.config.get("broker.retry_delay", 0.5))
        for attempt in range(1, attempts + 1):
            try:
                await self._connect_once()
                break
            except BrokerRefusedError as e:
                raise StartupError(f"the broker refused the connection: {e}") from None
            except BrokerError as e:
                error = e
            if self._abandoned:
                raise StartupError(f"stopped while connecting to the broker: {error}")
            if attempt == attempts:
                raise StartupError(f"broker unreachable after {attempts} attempts: {error}")
            log.warn(
                "broker unreachable (attempt {n} of {total}): {why}; retrying in {delay:.1f}s",
                n=attempt,
                total=attempts,
                why=error,
                delay=delay,
            )
            await self._wait_to_retry(delay)
            delay = min(delay * 2, 10.0)
        for name, kind in (
            (self.exchange_name, self.exchange_type),
            (self.events_exchange, "topic"),
        ):
            try:
                await self.broker.declare_exchange(name, kind)
            except PreconditionFailedError as e:
                raise StartupError(
                    f"exchange {name} exists on the broker, but not as the {kind} exchange "
                    f"ion declares ({e}); another program (or an older ion) made it, or a "
                    "container of the system with another broker.secure (all must agree): "
                    "delete it once nothing uses it, or choose another sysname"
                ) from None
            except BrokerError as e:  # the connection went right after it was made
                raise StartupError(f"declaring exchange {name} failed: {e}") from None

    async def _connect_once(self) -> None:
        self._connecting = True
        try:
            await self.broker.connect()
        finally:
            self._connecting = False

    async def _wait_to_retry(self, delay: float) -> None:
        if self._abandoned:  # a log observer may have stopped the container just now
            raise StartupError("stopped while connecting to the broker")
        self._retry_wait = deferLater(self._clock, delay, lambda: None)
        try:
            await self._retry_wait
        except CancelledError:
            raise StartupError("stopped while waiting to retry the broker") from None
        finally:
            self._retry_wait = None

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.broker.close()

    def queue_name(self, key: str) -> str:
        """The queue name for routing key C{key} in this system."""
        return f"{self.sysname}.{key}"

    def service_consumers(self, service: str) -> Deferred[int]:
        """How many consumers, in every container of this system, take C{service}'s calls."""
        return self.broker.queue_consumers(self.queue_name(service))

    async def declare_queue(self, key: str, exclusive: bool = False) -> str:
        """Declare the queue for C{key} and bind it; return its name.

        An exclusive queue (a process's own) goes with its connection; a shared
        one (a service's) stays when its consumers go, so no message that was
        accepted for a service is lost while no instance runs.
        """
        queue = self.queue_name(key)
        if exclusive:
            await self.broker.declare_queue(queue, exclusive=True, auto_delete=True)
        else:
            await self.declare_shared(queue, durable=False)
        await self.broker.bind_queue(queue, self.exchange_name, key)
        return queue

    async def declare_shared(self, queue: str, durable: bool = True) -> None:
        """Declare C{queue}, shared by the system's containers, of L{queue_type}: a
        quorum queue, or a classic one (C{durable} or not); it is left behind on stop.

        @raise QueueTypeError: it exists as the other type; names both.
        """
        quorum = self.queue_type == "quorum"
        try:
            await self.broker.declare_queue(
                queue, durable=durable or quorum, queue_type=self.queue_type
            )
        except PreconditionFailedError as e:
            other = "classic" if quorum else "quorum"
            raise QueueTypeError(
                f"queue {queue} exists, but not as the {self.queue_type} queue this container "
                f"declares (broker.queue_type {self.config.get('broker.queue_type', 'auto')}); "
                f"it is a {other} queue, or a classic one with other flags. Give every "
                "container of the system the same broker.queue_type, or delete the queue once "
                f"nothing uses it. The broker said: {e}"
            ) from None
        self.shared_queues.add(queue)

    def publish(
        self,
        key: str,
        body: bytes,
        mandatory: bool = False,
        report_returns: bool = False,
        expiration: int | None = None,
    ) -> Deferred[None]:
        """Publish to this system's exchange with routing key C{key} (mandatory ones
        confirmed if L{confirm_mandatory}; C{expiration}: a TTL in ms)."""
        return self.broker.publish(
            self.exchange_name,
            key,
            body,
            None,
            mandatory,
            mandatory and self.confirm_mandatory,
            report_returns,
            expiration,
        )

    def restoring(self, queue: str) -> bool:
        """Whether C{queue} is being declared and consumed again after a reconnect
        (or a deletion), so that nothing sent to it now would arrive."""
        return bool(self.broker.restoring(queue))

    def event_unheard(self, key: str) -> bool:
        """Whether an event with routing key C{key} would reach nobody, as the
        embedded broker can tell (RabbitMQ is not asked: False)."""
        unheard = getattr(self.broker, "unheard", None)
        return unheard is not None and unheard(self.events_exchange, key)

    def publish_event(self, key: str, body: bytes, confirm: bool = False) -> Deferred[None]:
        """Publish to this system's events exchange (nobody listening is fine);
        confirmed (and persistent) when C{confirm} is given or the system's shared
        queues are quorum queues, so a named subscription keeps it through a node's
        loss. Confirmed, the Deferred fires once the broker has taken it."""
        return self.broker.publish(
            self.events_exchange, key, body, None, False, confirm or self.durable
        )

    async def declare_subscription(
        self, binding_key: str, name: str | None = None, owner: str = "subscriber"
    ) -> str:
        """A queue bound to the events exchange: private (exclusive, auto-delete,
        C{<sysname>.<owner>.events.<n>}) or, with C{name}, the durable shared queue
        C{<sysname>.<name>}, which outlives its subscribers; return its name.

        A private queue is named here, not by the broker, so that a reconnect
        can declare it again under its name."""
        if name:
            queue = self.queue_name(check_name(name, "subscription queue name"))
            await self.declare_shared(queue)
        else:
            self._subscriptions += 1
            queue = self.queue_name(f"{owner}.events.{self._subscriptions}")
            await self.broker.declare_queue(queue, exclusive=True, auto_delete=True)
        await self.broker.bind_queue(queue, self.events_exchange, binding_key)
        return queue

    def consume(
        self,
        queue: str,
        on_delivery: Callable[[IDelivery], None],
        prefetch: int,
        auto_ack: bool = False,
    ) -> Deferred[str]:
        return self.broker.consume(queue, on_delivery, prefetch, auto_ack)

    def cancel(self, tag: str) -> Deferred[None]:
        return self.broker.cancel(tag)

    def delete_queue(self, queue: str) -> Deferred[Any]:
        return self.broker.delete_queue(queue)
