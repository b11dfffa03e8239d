"""Poison requests: one redelivered more than C{process.max_redeliveries} times
goes to its system's dead-letter queue instead of running (and taking its
instance down) again.

ion's service queues are classic queues, which count no deliveries (only
quorum queues have C{x-delivery-limit}, and they cannot be exclusive or
auto-delete, nor can a queue change its type under running instances), and the
embedded broker must behave the same. So the count travels with the message:
a delivery flagged redelivered is not run but published again, confirmed, to
where it was first sent, its transport header L{REDELIVERIES} one higher, and
then acked; the copy runs. Past the limit it is published to
C{<sysname>.dead_letters} instead, with headers naming where it came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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
    """Send the redelivered C{msg} round once more, or, past C{limit}, to the
    dead-letter queue; ack it once the broker has the copy (put it back if not)."""
    assert proc.container is not None
    exchange = proc.container.exchange
    broker = exchange.broker
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
            await broker.declare_queue(queue, durable=True)
            exchange.shared_queues.add(queue)
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
        proc.log.warn("{proc}: could not pass on redelivered {msg!r}: {err}; putting it back",
                      proc=proc, msg=msg, err=e)  # fmt: skip
        settle(delivery, requeue=True)
        return
    settle(delivery)
