"""The broker nodes an L{ion.core.messaging.amqp.AmqpBroker} connects to, in turn.

A RabbitMQ cluster is reached through any of its nodes. L{NodeRotation} is the
Twisted client endpoint the connection's C{ClientService} dials: each attempt
goes to the next node, so a connection lost with its node is made again at
once to another one, and only a round in which every node failed waits (with
backoff) before the next round. Each container shuffles the order, so that
containers spread over the nodes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from ion.core.exception import ConfigurationError
from ion.core.messaging.amqp_connection import AmqpParameters

__all__ = ["NodeRotation", "check_one_login", "node_name"]


def node_name(params: AmqpParameters) -> str:
    """The node C{params} address, for the log: C{host:port}."""
    return f"{params.host}:{params.port}"


def check_one_login(addresses: Sequence[AmqpParameters]) -> None:
    """The nodes of one cluster share the vhost, the login and the scheme: one
    connection's handshake must be good for each."""
    first = addresses[0]
    for other in addresses[1:]:
        for what in ("vhost", "username", "password", "tls", "ca", "cert", "key"):
            if getattr(other, what) != getattr(first, what):
                shown = "password" if what == "password" else f"{what} ({getattr(other, what)!r})"
                raise ConfigurationError(
                    f"broker.url: {node_name(other)} has another {shown} than "
                    f"{node_name(first)}; the addresses of one cluster must differ only "
                    "in host and port"
                )
    names = [node_name(a) for a in addresses]
    if len(set(names)) != len(names):
        raise ConfigurationError(f"broker.url names a node twice: {', '.join(names)}")


@implementer(IStreamClientEndpoint)
class NodeRotation:
    """A client endpoint that connects to each of C{addresses} in turn.

    @param endpoint_factory: C{(reactor, params) -> IStreamClientEndpoint} for one node.
    @param shuffle: start from a random order (the same order is kept after).
    """

    def __init__(
        self,
        reactor: Any,
        addresses: Sequence[AmqpParameters],
        endpoint_factory: Callable[[Any, AmqpParameters], Any],
        shuffle: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if not addresses:
            raise ConfigurationError("broker.url: no broker address")
        check_one_login(addresses)
        order = list(addresses)
        if shuffle:
            (rng or random.Random()).shuffle(order)
        self.addresses = tuple(order)
        self._endpoints = [endpoint_factory(reactor, a) for a in self.addresses]
        self._next = 0
        self.current = self.addresses[0]  # the node of the last attempt
        self.on_failed: Callable[[BaseException], None] | None = None

    def __len__(self) -> int:
        return len(self.addresses)

    def __repr__(self) -> str:
        return f"<NodeRotation {' '.join(node_name(a) for a in self.addresses)}>"

    def connect(self, factory: Any) -> defer.Deferred[Any]:
        """Connect to the next node (an attempt that fails is told to L{on_failed})."""
        i = self._next
        self._next = (i + 1) % len(self.addresses)
        self.current = self.addresses[i]

        def failed(failure: Failure) -> Failure:
            if self.on_failed is not None:
                self.on_failed(failure.value)
            return failure

        return self._endpoints[i].connect(factory).addErrback(failed)

    def retry_delay(self, failures: int, backoff: Callable[[int], float]) -> float:
        """The wait before the next attempt after C{failures} in a row: none while
        some node of this round is untried, C{backoff(rounds)} after a whole round."""
        n = len(self.addresses)
        return 0.0 if failures % n else backoff(failures // n)
