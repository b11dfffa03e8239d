"""The webhook poster against a real HTTP receiver."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.error import ConnectionRefusedError

from ion.gateway.webhook import HttpPoster
from tests.gateway.receiver import Receiver
from tests.helpers import closed_port


@pytest_twisted.async_yield_fixture
async def poster() -> Any:
    """A poster; its pooled connections closed afterwards."""
    p = HttpPoster(reactor, per_host=4)
    yield p
    await p.close()


@pytest_twisted.ensureDeferred
async def test_posts_body_and_headers_and_answers_the_status(poster: HttpPoster, logs: Any) -> None:
    """The body and headers arrive; the status comes back (2xx and not); the
    pool's connections are not logged one by one."""
    receiver = await Receiver(reactor).up()
    try:
        headers = {"Content-Type": "application/cloudevents+json", "Ion-Delivery-Id": "d1"}
        assert await poster(receiver.url(), b'{"id": "e1"}', headers) == 200
        got = receiver.got.items[0]
        assert (got["event"], got["delivery"]) == ({"id": "e1"}, "d1")
        receiver.status = 503
        assert await poster(receiver.url(), b'{"id": "e2"}', headers) == 503
        assert not logs.texts_with("_HTTP11ClientFactory")
    finally:
        await receiver.down()


@pytest_twisted.ensureDeferred
async def test_connection_refused_fails(poster: HttpPoster) -> None:
    """Nobody listening: the post fails (the worker counts it as a failed attempt)."""
    with pytest.raises(ConnectionRefusedError):
        await poster(f"http://127.0.0.1:{closed_port()}/", b"{}", {})
