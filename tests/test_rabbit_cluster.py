"""The suite's three-node RabbitMQ cluster (tests/rabbit_cluster.py): it forms, a
quorum queue on it is served by every node, and leader() names the member
leading a quorum queue, also while that member is paused. Talks to the cluster
with pika directly, so that the fixture is tested apart from ion; killing,
stopping, pausing and restarting nodes (and the whole cluster) is used, and
so tested, by tests/core/cc/test_cluster_amqp.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pika
import pytest

from tests.rabbit_cluster import LEADER_ASK_TIMEOUT, RabbitCluster
from tests.rabbit_node import NodeStartError

pytestmark = pytest.mark.rabbitmq


def _channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        yield connection.channel()
    finally:
        connection.close()


def _declare_quorum(url: str, queue: str) -> None:
    for channel in _channel(url):
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})


def _publish(url: str, queue: str, body: bytes) -> None:
    for channel in _channel(url):
        channel.confirm_delivery()  # returns once the quorum has the message
        channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))


def _get(url: str, queue: str, timeout: float = 15.0) -> bytes:
    """The next message of C{queue} via C{url}, polling until one is there."""
    deadline = time.monotonic() + timeout
    for channel in _channel(url):
        while True:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return bytes(body)
            assert time.monotonic() < deadline, f"no message in {queue} via {url}"
            time.sleep(0.05)
    raise AssertionError("unreachable")


def _passive_count(url: str, queue: str) -> int:
    for channel in _channel(url):
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    raise AssertionError("unreachable")


def test_three_nodes_run(rabbit_cluster: RabbitCluster) -> None:
    assert len(rabbit_cluster.nodes) == len(set(rabbit_cluster.nodes)) == 3
    assert all(u.startswith("amqp://guest:guest@127.0.0.1:") for u in rabbit_cluster.urls)
    assert len(set(rabbit_cluster.urls)) == 3
    for i in range(3):
        assert rabbit_cluster.running_nodes(via=i) == set(rabbit_cluster.nodes)


def test_a_quorum_queue_is_served_by_every_node(rabbit_cluster: RabbitCluster) -> None:
    url1, url2, url3 = rabbit_cluster.urls
    queue = f"q-{uuid.uuid4().hex[:8]}"
    _declare_quorum(url1, queue)
    assert _passive_count(url3, queue) == 0  # visible from node 3
    _publish(url2, queue, b"via node 2")
    assert _get(url3, queue) == b"via node 2"


def test_leader_names_the_member_leading_a_quorum_queue(rabbit_cluster: RabbitCluster) -> None:
    url1, url2, url3 = rabbit_cluster.urls
    queue = f"q-{uuid.uuid4().hex[:8]}"
    _declare_quorum(url1, queue)  # the leader is on the declaring node (client-local)
    first = rabbit_cluster.wait_leader(queue)
    assert first == rabbit_cluster.leader(queue) == 0
    with pytest.raises(NodeStartError, match="not_found"):
        rabbit_cluster.leader(f"no-such-{queue}")

    # A paused leader keeps leading until the others' net_ticktime (60 s) runs
    # out; leader() asks the members not paused and answers at once.
    rabbit_cluster.pause(first)
    try:
        began = time.monotonic()
        assert rabbit_cluster.leader(queue) == first
        assert time.monotonic() - began < LEADER_ASK_TIMEOUT
    finally:
        rabbit_cluster.resume(first)
