"""Broker presence notices: a peer's agent queue deleted, told by the broker itself.

RabbitMQ's C{rabbitmq_event_exchange} plugin publishes C{queue.deleted} on the
topic exchange C{amq.rabbitmq.event} (vhost C{/}, for every vhost) within
milliseconds of a queue's deletion, a crashed container's exclusive queues
included; its headers name the queue and vhost. The embedded broker publishes
the same notices. Where the exchange cannot be bound (the plugin is off, or
the vhost is not C{/}, or we may not read it) there are no notices, and the
agent confirms a silent peer with a probe instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from ion.core.exception import BrokerError
from ion.core.messaging.broker import IDelivery

log = Logger()

EVENT_EXCHANGE = "amq.rabbitmq.event"
QUEUE_DELETED = "queue.deleted"
PRESENCE, PROBE = "presence", "probe"


async def watch(
    broker: Any,
    queue: str,
    prefix: str,
    on_deleted: Callable[[str], None],
    vhost: str | None = None,
) -> str:
    """Take C{queue.deleted} notices for queues named C{prefix}... into the
    private queue C{queue}; call C{on_deleted(name)} for each. Return the mode:
    L{PRESENCE}, or L{PROBE} when the broker gives no notices (then C{queue}
    is deleted again).

    @param vhost: take only notices of this vhost (None: any).
    """
    await broker.declare_queue(queue, exclusive=True, auto_delete=True)
    try:
        await broker.bind_queue(queue, EVENT_EXCHANGE, QUEUE_DELETED)
    except BrokerError as e:
        log.debug("no broker presence notices ({why})", why=e)
        try:
            await broker.delete_queue(queue)
        except BrokerError:
            pass  # exclusive: it goes with the connection anyway
        return PROBE

    def delivered(delivery: IDelivery) -> None:
        headers = delivery.headers or {}
        name = _text(headers.get("name"))
        if not name or not name.startswith(prefix):
            return
        if vhost is not None and _text(headers.get("vhost")) not in (None, vhost):
            return
        on_deleted(name)

    await broker.consume(queue, delivered, 0, auto_ack=True)
    return PRESENCE


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None
