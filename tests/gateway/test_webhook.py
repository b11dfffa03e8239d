"""The webhook poster against a real HTTP receiver, connecting only where the
target check allows (names resolved once, by a resolver the tests give)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.error import ConnectionRefusedError

from ion.gateway.web import HttpError
from ion.gateway.webhook import HttpPoster
from tests.gateway.receiver import Receiver
from tests.helpers import closed_port

LOOPBACK = [ipaddress.ip_network("127.0.0.0/8")]


def resolver(answers: dict[str, list[str]], asked: list[str]) -> Any:
    """A getaddrinfo that answers C{answers} (name -> addresses) and records each name asked."""

    def getaddrinfo(host: str, port: Any) -> list[Any]:
        asked.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0)) for a in answers[host]]

    return getaddrinfo


@pytest_twisted.async_yield_fixture
async def poster() -> Any:
    """A poster; its pooled connections closed afterwards."""
    p = HttpPoster(reactor, per_host=4, allow=LOOPBACK)
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


@pytest_twisted.ensureDeferred
async def test_a_refused_address_is_never_connected_to() -> None:
    """Loopback without gateway.allow_targets: the post fails at once, saying why,
    and nothing connects (the receiver gets nothing)."""
    receiver = await Receiver(reactor).up()
    p = HttpPoster(reactor)
    try:
        with pytest.raises(HttpError, match="127.0.0.1, which is not a public address"):
            await p(receiver.url(), b"{}", {})
        assert receiver.got.items == [] and receiver.refused == []
    finally:
        await p.close()
        await receiver.down()


@pytest_twisted.ensureDeferred
async def test_a_name_is_resolved_once_and_connected_to_where_it_was_judged() -> None:
    """The post resolves the target's name itself and connects to that address:
    a name now pointing inside is refused, whatever it pointed to at the check
    (DNS rebinding); pointing at an allowed address, the request arrives there,
    with the name as its Host."""
    receiver = await Receiver(reactor).up()
    asked: list[str] = []
    answers = {"hooks.example": ["10.1.2.3"]}
    p = HttpPoster(reactor, allow=LOOPBACK, resolve=resolver(answers, asked))
    url = f"http://hooks.example:{receiver.port}/hook"
    try:
        with pytest.raises(HttpError, match="hooks.example resolves to 10.1.2.3"):
            await p(url, b'{"id": "e1"}', {})
        answers["hooks.example"] = ["127.0.0.1"]
        assert await p(url, b'{"id": "e2"}', {}) == 200
        (got,) = receiver.got.items
        assert got["event"] == {"id": "e2"} and got["host"] == f"hooks.example:{receiver.port}"
        assert asked == ["hooks.example", "hooks.example"]
    finally:
        await p.close()
        await receiver.down()


@pytest_twisted.ensureDeferred
async def test_every_address_of_a_name_must_be_allowed() -> None:
    """A name with one allowed address and one not is refused (a connection could
    go to either); one that does not resolve fails the post too."""
    answers = {"mixed.example": ["127.0.0.1", "192.168.0.7"]}
    p = HttpPoster(reactor, allow=LOOPBACK, resolve=resolver(answers, []))
    try:
        with pytest.raises(HttpError, match="192.168.0.7"):
            await p("http://mixed.example/hook", b"{}", {})
        with pytest.raises(HttpError, match="'nowhere.example' does not resolve"):
            await p("http://nowhere.example/hook", b"{}", {})
    finally:
        await p.close()


@pytest_twisted.ensureDeferred
async def test_the_addresses_of_a_name_are_tried_in_turn() -> None:
    """One address refusing the connection, the next one allowed is tried (as
    Twisted's own endpoints do for a name with several)."""
    receiver = await Receiver(reactor).up()  # (on 127.0.0.1 only: 127.0.0.2 refuses)
    answers = {"two.example": ["127.0.0.2", "127.0.0.1"]}
    p = HttpPoster(reactor, allow=LOOPBACK, resolve=resolver(answers, []))
    try:
        assert await p(f"http://two.example:{receiver.port}/hook", b'{"id": "e3"}', {}) == 200
        assert [g["event"] for g in receiver.got.items] == [{"id": "e3"}]
    finally:
        await p.close()
        await receiver.down()
