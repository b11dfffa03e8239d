"""Poison requests: one redelivered more than C{process.max_redeliveries} times
goes to its system's dead-letter queue instead of running (and taking its
instance down) again.

A quorum queue counts deliveries itself (the C{x-delivery-count} header of a
redelivered message): such a request runs again as it is while the count is
within the limit. Past the limit a request is published, confirmed, to the
dead letters and only then acked (requeued instead if that fails), so it is
never lost there.

Classic queues count nothing, and the embedded broker must behave the same.
So there the count travels with the message: a delivery flagged redelivered
is acked and published again, confirmed, to where it was first sent, its
transport header L{REDELIVERIES} one higher (with signing on, vouched for by
L{VOUCHER}); the copy runs. Past the limit it
is published to C{<sysname>.dead_letters} instead, with headers naming where
it came from.

The ack goes out first, in the reactor turn before the copy is published: the
broker then has it before the copy exists. Published first, the copy could
run (and kill its instance) before the ack left, and the original, back again
with no count, would start a new round each time. The price is a window of
one turn in which an instance that dies loses the request (and a copy the
broker refuses is lost: logged at error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.task import deferLater

from ion.core.messaging import message as m
from ion.core.messaging.broker import settle

if TYPE_CHECKING:
    from ion.core.process.process import Process

REDELIVERIES = "x-ion-redeliveries"
#: With signing on, what vouches for a copy's count (L{ion.core.security.signing.Signer.voucher}).
VOUCHER = "x-ion-redelivery-voucher"
DEAD_LETTER_KEY = "dead_letters"
ORIGIN_EXCHANGE = "x-ion-origin-exchange"
ORIGIN_KEY = "x-ion-origin-key"
DEAD_BY = "x-ion-dead-lettered-by"


DELIVERY_COUNT = "x-delivery-count"  # set by quorum queues on a redelivered message


def broker_count(delivery: Any) -> int | None:
    """How many times C{delivery} was delivered before, as its quorum queue counts
    (None: its queue counts nothing)."""
    n = (getattr(delivery, "headers", None) or {}).get(DELIVERY_COUNT)
    return n if type(n) is int and n >= 0 else None


def count(delivery: Any) -> int:
    """How many times C{delivery} was redelivered before, as its header says."""
    n = (getattr(delivery, "headers", None) or {}).get(REDELIVERIES, 0)
    return n if type(n) is int and n >= 0 else 0


async def redelivered(proc: Process, msg: m.Message, limit: int) -> None:
    """Send the redelivered C{msg} round once more (acked first, then copied), or,
    past C{limit}, to the dead-letter queue (L{dead_letter})."""
    assert proc.container is not None
    delivery = msg.delivery
    counted = broker_count(delivery)
    n = counted if counted is not None else count(delivery) + 1
    if n > limit:
        await dead_letter(proc, msg, n, limit)
        return
    settle(delivery)
    # Acks of one turn go out at its end: the copy is published in the next one.
    await deferLater(proc.container.reactor, 0, lambda: None)
    broker: Any = proc.container.exchange.broker  # an IBroker (mypy reads zope methods as unbound)
    headers = {**(delivery.headers or {}), REDELIVERIES: n}
    signer = proc.container.exchange.signer
    voucher = signer.voucher(delivery.body, n) if signer is not None else None
    if voucher is not None:  # (signing on: a copy without one is taken as a replay)
        headers[VOUCHER] = voucher
    try:
        await broker.publish(
            delivery.exchange, delivery.routing_key, delivery.body, headers, True, True
        )
    except Exception as e:
        proc.log.error("{proc}: redelivered {msg!r} (sent to {key!r} by {sender}) lost: it "
                       "could not be published again: {err}", proc=proc, msg=msg,
                       key=delivery.routing_key, sender=msg.sender, err=e)  # fmt: skip


async def dead_letter(proc: Process, msg: m.Message, n: int, limit: int) -> None:
    """Move C{msg}, redelivered C{n} times, to the dead-letter queue: published
    confirmed, then acked (nothing runs it: no need to ack first); requeued
    if it cannot be published."""
    assert proc.container is not None
    exchange = proc.container.exchange
    delivery = msg.delivery
    queue = exchange.queue_name(DEAD_LETTER_KEY)
    headers = {**(delivery.headers or {}), REDELIVERIES: n, ORIGIN_EXCHANGE: delivery.exchange,
               ORIGIN_KEY: delivery.routing_key, DEAD_BY: str(proc.id)}  # fmt: skip
    try:
        await exchange.declare_shared(queue)
        await exchange.broker.publish("", queue, delivery.body, headers, True, True)
    except Exception as e:
        settle(delivery, requeue=True)
        proc.log.error("{proc}: {msg!r} (sent to {key!r} by {sender}) could not be moved to "
                       "{queue}: {err}; it goes back to its queue", proc=proc, msg=msg,
                       key=delivery.routing_key, sender=msg.sender, queue=queue, err=e)  # fmt: skip
        return
    settle(delivery)
    proc.log.warn(
        "{proc}: {msg!r} (sent to {key!r} by {sender}) was redelivered {n} times, more "
        "than process.max_redeliveries ({limit}); moved to {queue}",
        proc=proc, msg=msg, key=delivery.routing_key, sender=msg.sender, n=n,
        limit=limit, queue=queue,
    )  # fmt: skip
