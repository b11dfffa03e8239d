"""Several broker addresses: the nodes taken in turn, the first connect trying each,
and a lost connection made again at once to the next node (two proxies to
RabbitMQ stand for two nodes)."""

from __future__ import annotations

import random
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint

from ion.core.exception import BrokerError, ConfigurationError
from ion.core.messaging.amqp import AmqpBroker
from ion.core.messaging.amqp_connection import parse_amqp_url
from ion.core.messaging.amqp_nodes import NodeRotation
from ion.test.proxy import Proxy
from tests.helpers import Collector, wait_for
from tests.rabbit import HOST, PORT, require_rabbitmq

NODES = [parse_amqp_url(f"amqp://guest:guest@127.0.0.1:{p}/") for p in (5701, 5702, 5703)]


class _Endpoint:
    def __init__(self, params: Any, dialled: list[int]) -> None:
        self.params, self.dialled = params, dialled

    def connect(self, factory: Any) -> Any:
        self.dialled.append(self.params.port)
        return defer.succeed(None)


def test_each_attempt_goes_to_the_next_node() -> None:
    dialled: list[int] = []
    nodes = NodeRotation(None, NODES, lambda r, p: _Endpoint(p, dialled), shuffle=False)
    for _ in range(4):
        nodes.connect(None)
    assert dialled == [5701, 5702, 5703, 5701]
    assert nodes.current.port == 5701


def test_no_wait_until_every_node_failed_in_a_round() -> None:
    nodes = NodeRotation(None, NODES, lambda r, p: None, shuffle=False)
    backoff = {1: 1.0, 2: 2.0}.__getitem__
    assert [nodes.retry_delay(k, backoff) for k in range(1, 7)] == [0, 0, 1.0, 0, 0, 2.0]
    one = NodeRotation(None, NODES[:1], lambda r, p: None)
    assert [one.retry_delay(k, backoff) for k in (1, 2)] == [1.0, 2.0]


def test_shuffled_order_is_a_permutation_kept_after() -> None:
    dialled: list[int] = []
    nodes = NodeRotation(None, NODES, lambda r, p: _Endpoint(p, dialled), rng=random.Random(3))
    order = [a.port for a in nodes.addresses]
    assert sorted(order) == [5701, 5702, 5703]
    for _ in range(6):
        nodes.connect(None)
    assert dialled == order + order  # shuffled once, then taken in turn
    orders = {
        tuple(a.port for a in NodeRotation(None, NODES, lambda r, p: None).addresses)
        for _ in range(50)
    }
    assert len(orders) > 1  # 50 orders of 3 nodes all alike: 1 in 6**49


@pytest.mark.parametrize(
    ("other", "complaint"),
    [
        ("amqp://guest:guest@127.0.0.1:5702/other", "vhost"),
        ("amqp://admin:guest@127.0.0.1:5702/", "username"),
        ("amqp://guest:secret@127.0.0.1:5702/", "another password than"),
        ("amqp://guest:guest@127.0.0.1:5701/", "names a node twice"),
    ],
)
def test_nodes_of_one_cluster_share_their_login(other: str, complaint: str) -> None:
    with pytest.raises(ConfigurationError, match=complaint) as caught:
        NodeRotation(None, [NODES[0], parse_amqp_url(other)], lambda r, p: None)
    assert "secret" not in str(caught.value)


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _broker(ports: list[int], **kwargs: Any) -> AmqpBroker:
    urls = ",".join(f"amqp://guest:guest@127.0.0.1:{p}/" for p in ports)
    kwargs.setdefault("max_retry_delay", 1.0)
    return AmqpBroker(
        _reactor(),
        urls,
        endpoint_factory=lambda r, params: TCP4ClientEndpoint(r, "127.0.0.1", params.port),
        shuffle=False,
        **kwargs,
    )


async def _proxy() -> Proxy:
    require_rabbitmq()
    p = Proxy(_reactor(), (HOST, PORT))
    await p.start()
    return p


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_first_connect_tries_the_next_node(logs: Any) -> None:
    """A node that refuses the connection is passed over, and the log says so."""
    up = await _proxy()
    down = await _proxy()
    dead_port = down.port
    await down.stop()
    broker = _broker([dead_port, up.port])
    try:
        await wait_for(broker.connect(), timeout=10)
        assert broker.params.port == up.port
        assert any(
            f"cannot connect to 127.0.0.1:{dead_port}" in t and "trying the next node" in t
            for t in logs.texts()
        )
    finally:
        await broker.close()
        await up.stop()


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_first_connect_fails_once_every_node_failed() -> None:
    ports = []
    for _ in range(2):
        p = await _proxy()
        ports.append(p.port)
        await p.stop()
    broker = _broker(ports)
    with pytest.raises(BrokerError) as caught:
        await wait_for(broker.connect(), timeout=10)
    assert f"any of 127.0.0.1:{ports[0]}, 127.0.0.1:{ports[1]}" in str(caught.value)
    await broker.close()


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_lost_node_replaced_by_the_next_at_once(logs: Any) -> None:
    """The node a connection is on goes away (it stops listening and resets its
    connections): the connection is made again to the next node without a
    backoff wait, and its consumer works there."""
    first, second = await _proxy(), await _proxy()
    broker = _broker([first.port, second.port])
    try:
        await wait_for(broker.connect(), timeout=10)
        assert broker.params.port == first.port
        queue = f"nodes.{id(broker)}"
        await broker.declare_queue(queue, exclusive=True)
        got = Collector(ack=True)
        await broker.consume(queue, got)
        back = Collector()
        broker.on_reconnected(lambda: back(True))
        lost_at = _reactor().seconds()
        await first.stop()
        await back.wait(1, timeout=10)
        # One node: the first retry would wait 1 s (backoff) and go to the same node.
        assert _reactor().seconds() - lost_at < 0.9
        assert broker.params.port == second.port
        assert any(f"connected to amqp://guest:***@127.0.0.1:{second.port}" in t
                   for t in logs.texts())  # fmt: skip
        await broker.publish("", queue, b"after", confirm=True)
        assert [d.body for d in await got.wait(1)] == [b"after"]
    finally:
        await broker.close()
        await second.stop()
