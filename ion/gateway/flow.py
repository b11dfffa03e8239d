"""The gateway's CloudEvent path, as one part the gateway process owns.

C{/receive} publishes accepted events (confirmed); the L{Matcher} takes them
from the shared queue into the outbox and pokes the L{DeliveryWorker}, which
posts them. Started before the gateway listens (so the matcher's queue is
bound before the first event is accepted: on the embedded broker an event
nobody is bound for is dropped), stopped before the store closes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from ion.gateway.delivery import DeliveryWorker, Poster
from ion.gateway.matcher import Matcher
from ion.gateway.publish import CloudEventPublisher
from ion.gateway.receive import ReceiveResource
from ion.gateway.webhook import HttpPoster

if TYPE_CHECKING:
    from ion.core.process.process import Process
    from ion.gateway.config import GatewayConfig

__all__ = ["EventFlow", "worker_id"]

log = Logger()


def worker_id(process: Process) -> str:
    """The delivery worker's lease owner: unique per gateway process on the system
    (container id, OS process id and ion process id)."""
    container = process.container
    assert container is not None
    return f"{container.id}/{os.getpid()}/{process.id}"


class EventFlow:
    """The receive resource, the matcher and the delivery worker of one gateway.

    @param poster: posts webhooks (default: an L{HttpPoster} on C{reactor}).
    """

    def __init__(
        self,
        process: Process,
        store: Any,
        config: GatewayConfig,
        reactor: Any,
        poster: Poster | None = None,
    ) -> None:
        if config.delivery_lease <= config.delivery_timeout:
            # A lease that ends while its post may still be under way lets another
            # instance post the same delivery meanwhile.
            log.warn("gateway: delivery.lease ({lease}s) is not longer than delivery.timeout "
                     "({timeout}s): other instances may post a delivery still under way",
                     lease=config.delivery_lease, timeout=config.delivery_timeout)  # fmt: skip
        allow = config.allow_targets
        self.http = (
            HttpPoster(reactor, config.delivery_concurrency, allow) if poster is None else None
        )

        post: Poster = self.http if poster is None else poster  # type: ignore[assignment]
        self.worker = DeliveryWorker.from_config(store, config, worker_id(process), reactor, post)
        self.matcher = Matcher(process, store, self.worker.poke, reactor,
                               owner=self.worker.worker_id, lease=config.match_lease)  # fmt: skip
        self.resource = ReceiveResource(store, CloudEventPublisher(process), config)

    async def start(self) -> None:
        """Start the worker (it claims what the outbox holds at once) and the matcher."""
        self.worker.start()
        await self.matcher.start()

    async def stop(self) -> None:
        """Stop taking events, let the posts under way end, close the connections."""
        await self.matcher.stop()
        await self.worker.stop()
        if self.http is not None:
            await self.http.close()

    def __repr__(self) -> str:
        return f"<the CloudEvent flow of worker {self.worker.worker_id}>"
