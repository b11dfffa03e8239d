"""Flow control on RabbitMQ: while the broker blocks the connection
(connection.blocked, its resource alarm) publishes wait in ion, bounded, and
one whose caller gave up is never sent; the confirm backlog is bounded too.

The broker's frames are fed in as if from the broker, whose alarms a test must
not set off.
"""

from __future__ import annotations

from typing import Any

import pika.frame
import pika.spec
import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core.exception import BrokerBusyError
from ion.core.messaging.amqp_channel import Publisher
from tests.helpers import Collector, wait_for
from tests.rabbit import block, unblock


async def _consuming(make_broker: Any, prefix: str, **kwargs: Any) -> tuple[Any, str, Collector]:
    broker = await make_broker(**kwargs)
    queue = await broker.declare_queue(f"{prefix}.q")
    got = Collector(ack=True)
    await broker.consume(queue, got)
    return broker, queue, got


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_publishes_wait_while_blocked_and_a_cancelled_one_is_never_sent(
    make_broker: Any, prefix: str, logs: Any
) -> None:
    broker, queue, got = await _consuming(make_broker, prefix)
    block(broker)
    assert logs.texts_with("blocks this connection (low on memory)")
    gone = broker.publish("", queue, b"caller gone", mandatory=True, confirm=True)
    kept = broker.publish("", queue, b"kept", mandatory=True, confirm=True)
    plain = broker.publish("", queue, b"plain")
    assert not (gone.called or kept.called or plain.called)
    gone.cancel()
    with pytest.raises(defer.CancelledError):
        await gone
    unblock(broker)
    await wait_for(kept, timeout=10)
    await wait_for(plain, timeout=10)
    await broker.publish("", queue, b"last", confirm=True)
    # (plain and confirmed publishes go on two channels: no order between them)
    bodies = sorted(d.body for d in await got.wait(3, timeout=10))
    assert bodies == [b"kept", b"last", b"plain"]
    assert len(got.items) == 3


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_past_max_unconfirmed_a_blocked_publish_is_refused_at_once(
    make_broker: Any, prefix: str
) -> None:
    broker, queue, got = await _consuming(make_broker, prefix, max_unconfirmed=2)
    block(broker)
    waiting = [broker.publish("", queue, b"%d" % i, confirm=True) for i in range(2)]
    with pytest.raises(BrokerBusyError, match=r"blocks this connection \(low on memory\).*"
                       r"broker.max_unconfirmed is 2"):  # fmt: skip
        await wait_for(broker.publish("", queue, b"one too many", confirm=True))
    unblock(broker)
    for d in waiting:
        await wait_for(d, timeout=10)
    assert sorted(d.body for d in await got.wait(2, timeout=10)) == [b"0", b"1"]


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_a_lost_connection_fails_what_is_held(proxy: Any, make_broker: Any, prefix: str):
    from ion.core.exception import ConnectionLostError

    broker, queue, _got = await _consuming(make_broker, prefix)
    block(broker)
    held = broker.publish("", queue, b"held", confirm=True)
    proxy.cut()
    with pytest.raises(ConnectionLostError):
        await wait_for(held, timeout=10)


class _RawChannel:
    is_open = True

    def basic_publish(self, *args: Any) -> None:
        pass


class _Chan:
    raw = _RawChannel()
    is_open = True


def _ack(tag: int, multiple: bool = False) -> Any:
    return pika.frame.Method(1, pika.spec.Basic.Ack(delivery_tag=tag, multiple=multiple))


def test_the_confirm_backlog_is_bounded() -> None:
    """Confirms that do not come (a broker too busy to answer) hold at most
    C{limit} publishes; the next is refused with BrokerBusyError until one is confirmed."""
    publisher = Publisher(_Chan(), confirming=True, limit=2)  # type: ignore[arg-type]
    first = publisher.publish("ex", "k", b"1", None, False, True)
    publisher.publish("ex", "k", b"2", None, False, True)
    with pytest.raises(BrokerBusyError, match="2 publishes await the broker's confirm"):
        publisher.publish("ex", "k", b"3", None, False, True)
    publisher.on_confirm(_ack(1))
    assert first.called
    publisher.publish("ex", "k", b"3", None, False, True)


def test_a_confirm_for_a_publish_its_caller_cancelled_is_ignored() -> None:
    publisher = Publisher(_Chan(), confirming=True)  # type: ignore[arg-type]
    d = publisher.publish("ex", "k", b"1", None, False, True)
    d.cancel()
    d.addErrback(lambda f: f.trap(defer.CancelledError))
    publisher.on_confirm(_ack(1))  # no AlreadyCalledError
    assert publisher.unconfirmed == {}
