"""Poison requests: one redelivered more than C{process.max_redeliveries} times
goes to its system's dead-letter queue instead of running (and taking its
instance down) again.

ion's service queues are classic queues, which count no deliveries (only
quorum queues have C{x-delivery-limit}, and they cannot be exclusive or
auto-delete, nor can a queue change its type under running instances), and the
embedded broker must behave the same. So the count travels with the message:
a delivery flagged redelivered is acked and published again, confirmed, to
where it was first sent, its transport header L{REDELIVERIES} one higher; the
copy runs. Past the limit it is published to C{<sysname>.dead_letters}
instead, with headers naming where it came from.

The ack goes out first, in the reactor turn before the copy is published: the
broker then has it before the copy exists. Published first, the copy could
run (and kill its instance) before the ack left, and the original, back again
with no count, would start a new round each time. The price is a window of
one turn in which an instance that dies loses the request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.task import deferLater

from ion.core.messaging import message as m
from ion.core.messaging.broker import settle

if TYPE_CHECKING:
    from ion.core.process.process import Process

REDELIVERIES = "x-ion-redeliveries"
DEAD_LETTER_KEY = "dead_letters"
ORIGIN_EXCHANGE = "x-ion-origin-exchange"
ORIGIN_KEY = "x-ion-origin-key"
DEAD_BY = "x-ion-dead-lettered-by"


def count(delivery: Any) -> int:
    """How many times C{delivery} was redelivered before, as its header says."""
    n = (getattr(delivery, "headers", None) or {}).get(REDELIVERIES, 0)
    return n if type(n) is int and n >= 0 else 0


async def redelivered(proc: Process, msg: m.Message, limit: int) -> None:
    """Ack the redelivered C{msg}, then send it round once more, or, past
    C{limit}, to the dead-letter queue."""
    assert proc.container is not None
    settle(msg.delivery)
    # Acks of one turn go out at its end: the copy is published in the next one.
    await deferLater(proc.container.reactor, 0, lambda: None)
    exchange = proc.container.exchange
    broker: Any = exchange.broker  # an IBroker (mypy reads zope methods as unbound)
    delivery = msg.delivery
    n = count(delivery) + 1
    headers = {**(delivery.headers or {}), REDELIVERIES: n}
    try:
        if n <= limit:
            await broker.publish(
                delivery.exchange, delivery.routing_key, delivery.body, headers, True, True
            )
        else:
            queue = exchange.queue_name(DEAD_LETTER_KEY)
            await exchange.declare_shared(queue)
            headers.update({ORIGIN_EXCHANGE: delivery.exchange, ORIGIN_KEY: delivery.routing_key,
                            DEAD_BY: str(proc.id)})  # fmt: skip
            await broker.publish("", queue, delivery.body, headers, True, True)
            proc.log.warn(
                "{proc}: {msg!r} (sent to {key!r} by {sender}) was redelivered {n} times, more "
                "than process.max_redeliveries ({limit}); moved to {queue}",
                proc=proc, msg=msg, key=delivery.routing_key, sender=msg.sender, n=n,
                limit=limit, queue=queue,
            )  # fmt: skip
    except Exception as e:
        proc.log.error("{proc}: redelivered {msg!r} (sent to {key!r} by {sender}) lost: it "
                       "could not be published again: {err}", proc=proc, msg=msg,
                       key=delivery.routing_key, sender=msg.sender, err=e)  # fmt: skip
