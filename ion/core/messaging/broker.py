"""The broker interface: what the exchange manager needs from a message broker.

Two implementations satisfy it and pass one conformance suite
(C{tests/core/messaging/test_broker_conformance.py}): the embedded in-memory broker
(L{ion.core.messaging.embedded}) and RabbitMQ over AMQP 0-9-1.

An L{IBroker} is one I{connection}: exclusive queues belong to the connection
that declared them, and closing it deletes them and gives every message it had
not acknowledged back to its queue, marked redelivered. Every operation on a
connection that is not open fails with L{ion.core.exception.BrokerError}.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import Attribute, Interface

from ion.core.exception import BrokerError, PreconditionFailedError

EXCHANGE_TYPES = ("topic", "direct", "fanout")


class IDelivery(Interface):
    """One message handed to a consumer; it must be acked or rejected once."""

    body: bytes = Attribute("The message body, always bytes.")
    exchange: str = Attribute("The exchange it was published to.")
    routing_key: str = Attribute("The routing key it was published with.")
    headers: dict[str, Any] = Attribute("Transport headers (may be empty).")
    redelivered: bool = Attribute("True when an earlier delivery was not acked.")
    user_id: str | None = Attribute(
        "The AMQP user_id property: on RabbitMQ the broker user that published it, which "
        "the broker checked against that connection's login (None when unset, and on the "
        "embedded broker)."
    )

    def ack() -> None:
        """Acknowledge: the broker forgets the message.

        Settling a delivery twice raises L{ion.core.exception.BrokerError}.
        """

    def reject(requeue: bool = False) -> None:
        """Refuse: drop the message, or put it back in its queue if C{requeue}: in its
        place, ahead of the messages queued after it."""


class IBroker(Interface):
    """A connection to a broker with AMQP 0-9-1 semantics.

    Every method returns a Deferred (noted as its result type).
    """

    def connect() -> Any:
        """Open the connection. -> Deferred[None]"""

    def close() -> Any:
        """Close (idempotent): exclusive queues go, unacked messages return. -> Deferred[None]"""

    def declare_exchange(name: str, type: str = "topic", auto_delete: bool = False) -> Any:
        """Declare an exchange (idempotent for equal arguments). -> Deferred[None]"""

    def delete_exchange(name: str) -> Any:
        """Delete an exchange and its bindings. -> Deferred[None]"""

    def declare_queue(
        name: str = "",
        exclusive: bool = False,
        auto_delete: bool = False,
        durable: bool = False,
        queue_type: str = "classic",
    ) -> Any:
        """Declare a queue; an empty name asks the broker to choose one. -> Deferred[str]

        C{queue_type} is C{classic} or C{quorum} (replicated over a cluster's nodes:
        durable, neither exclusive nor auto-delete). Declaring a queue that
        exists with other flags or of another type fails with
        L{ion.core.exception.PreconditionFailedError}."""

    def delete_queue(name: str) -> Any:
        """Delete a queue; messages in it are dropped. -> Deferred[None]"""

    def exchange_exists(name: str) -> Any:
        """Whether an exchange of that name exists; declares nothing. -> Deferred[bool]"""

    def queue_exists(name: str) -> Any:
        """Whether a queue of that name exists (also another connection's exclusive one). -> Deferred[bool]"""

    def queue_consumers(name: str) -> Any:
        """The consumers of queue C{name}, on every connection (AMQP's passive
        declare); 0 when there is no such queue. Another connection's exclusive
        queue fails with L{ion.core.exception.ResourceLockedError}. -> Deferred[int]"""

    def queue_info(name: str) -> Any:
        """The ready messages and the consumers of queue C{name}, on every
        connection (AMQP's passive declare), or None when there is no such
        queue; declares nothing. Another connection's exclusive queue fails
        with L{ion.core.exception.ResourceLockedError}.
        -> Deferred[tuple[int, int] | None]"""

    def bind_queue(queue: str, exchange: str, binding_key: str) -> Any:
        """Route messages whose key matches C{binding_key} to C{queue}. -> Deferred[None]"""

    def unbind_queue(queue: str, exchange: str, binding_key: str) -> Any:
        """Remove a binding. -> Deferred[None]"""

    def publish(
        exchange: str,
        routing_key: str,
        body: bytes,
        headers: dict[str, Any] | None = None,
        mandatory: bool = False,
        confirm: bool = False,
        report_returns: bool = False,
        expiration: int | None = None,
    ) -> Any:
        """Publish a message. -> Deferred[None]

        With C{expiration} (ms, AMQP's per-message TTL), a message still queued
        that long after it was published is dropped instead of delivered.

        With C{mandatory}, a message that matches no queue fails the Deferred
        with L{ion.core.exception.UnroutableError}. With C{confirm}, the Deferred
        fires when the broker has taken responsibility for the message, and the
        message is persistent: a durable queue keeps it through a restart of its
        node (and a quorum queue through the loss of a minority of its nodes).

        With C{mandatory} and C{report_returns}, the Deferred fires as soon as
        the message is sent, and one that matches no queue is handed later to
        the L{on_returned} callbacks instead: no confirm round trip per message
        (ion's requests use this; their headers say whose call to fail).
        """

    def consume(
        queue: str,
        on_delivery: Callable[[IDelivery], None],
        prefetch: int = 0,
        auto_ack: bool = False,
    ) -> Any:
        """Start delivering the queue's messages to C{on_delivery}. -> Deferred[str] (tag)

        C{prefetch} bounds the deliveries not yet acked (0: unbounded). Consumers
        of one queue take its messages round robin. Deliveries never re-enter
        the caller: C{on_delivery} never runs inside C{publish}, only from the
        reactor (the embedded broker may run it in the same drain that delivered
        the message whose handler published, once that handler has returned).

        With C{auto_ack} the broker forgets each message as it hands it over:
        C{ack}/C{reject} do nothing, C{prefetch} does not apply, and a message
        the consumer had not finished is not redelivered. (ion uses it for
        replies, which only their caller waits for.)
        """

    def on_returned(callback: Callable[[str, str, bytes], None]) -> None:
        """Call C{callback(exchange, routing_key, body)} for each message sent with
        C{report_returns} that matched no queue."""

    def on_connection_lost(callback: Callable[[Exception], None]) -> None:
        """Call C{callback(error)} each time the connection is lost (never, for
        a broker that cannot lose it)."""

    def on_reconnected(callback: Callable[[], None]) -> None:
        """Call C{callback()} each time a lost connection is back with its topology."""

    def restoring(queue: str) -> Any:
        """Whether C{queue} is being declared and consumed again (after a reconnect,
        or a deletion by someone else), so that nothing sent to it now arrives. -> bool"""

    def on_consumer_failed(callback: Callable[[str, str, Exception], None]) -> None:
        """Call C{callback(consumer_tag, queue, error)} for a consumer that ended
        against its owner's will and could not be resumed (its queue could not
        be declared or consumed again after a reconnect or a deletion)."""

    def cancel(consumer_tag: str) -> Any:
        """Stop a consumer; its unacked deliveries stay owned until acked. -> Deferred[None]"""


def settle(delivery: IDelivery, requeue: bool | None = None) -> bool:
    """Ack (or reject, when C{requeue} is given) a delivery; return False instead of
    raising when its connection has gone, since the broker has then given the
    message back to its queue already."""
    try:
        if requeue is None:
            delivery.ack()
        else:
            delivery.reject(requeue)
        return True
    except BrokerError:
        return False


# AMQP's limits, checked the same way by both brokers: a name RabbitMQ would
# refuse is refused by the embedded broker too, and pika's own errors for them
# (ShortStringTooLong, struct.error) become BrokerErrors.
SHORT_STRING_BYTES = 255
SHORT_ENOUGH = SHORT_STRING_BYTES // 4  # chars: no str this long can be over in UTF-8
MAX_PREFETCH = 65535


def short_string_error(value: Any, what: str) -> BrokerError | None:
    """The error for C{value} as an AMQP short string (a name or key), or None if it is one."""
    if not isinstance(value, str):
        return BrokerError(f"{what} must be a str, not {type(value).__name__}")
    if len(value) > SHORT_ENOUGH and len(value.encode()) > SHORT_STRING_BYTES:
        return BrokerError(
            f"{what} is {len(value.encode())} bytes; AMQP allows {SHORT_STRING_BYTES}"
        )
    return None


def declared_name_error(name: Any, kind: str) -> BrokerError | None:
    """The error for declaring a {kind} (queue, exchange) named C{name}, or None."""
    error = short_string_error(name, f"{kind} name")
    if error is None and name.startswith("amq."):
        error = BrokerError(
            f"ACCESS_REFUSED - {kind} name '{name}' contains reserved prefix 'amq.*'"
        )
    return error


QUEUE_TYPES = ("classic", "quorum")


def queue_type_error(
    name: str, queue_type: Any, exclusive: bool, auto_delete: bool, durable: bool
) -> BrokerError | None:
    """The error for declaring queue C{name} of C{queue_type} with these flags, or None."""
    if queue_type not in QUEUE_TYPES:
        return BrokerError(
            f"queue type must be one of {', '.join(QUEUE_TYPES)}, not {queue_type!r}"
        )
    if queue_type == "quorum":
        for flag, value in (("exclusive", exclusive), ("auto_delete", auto_delete)):
            if value:
                return PreconditionFailedError(
                    f"PRECONDITION_FAILED - invalid property '{flag}' for quorum queue '{name}'"
                )
        if not durable:
            return PreconditionFailedError(
                f"PRECONDITION_FAILED - invalid property 'non-durable' for quorum queue '{name}'"
            )
    return None


def prefetch_error(prefetch: Any) -> Exception | None:
    """The error for C{prefetch} as a consumer's prefetch count, or None."""
    if isinstance(prefetch, bool) or not isinstance(prefetch, int):
        return ValueError(f"prefetch must be a whole number, not {prefetch!r}")
    if not 0 <= prefetch <= MAX_PREFETCH:
        return ValueError(f"prefetch must be from 0 to {MAX_PREFETCH}, not {prefetch}")
    return None
