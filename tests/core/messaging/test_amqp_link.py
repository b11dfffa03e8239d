"""The AMQP link's state machine: its transition table, as declared."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.task import Clock

from ion.core.exception import ConnectionClosedError, ConnectionLostError, IllegalStateError
from ion.core.messaging.amqp_connection import parse_amqp_url
from ion.core.messaging.amqp_link import TRANSITIONS, Link
from ion.core.messaging.amqp_nodes import NodeRotation


def _link() -> Link:
    async def nothing() -> None:
        return None

    clock = Clock()
    return Link(
        clock,
        NodeRotation(clock, [parse_amqp_url("amqp://127.0.0.1/")], lambda r, p: None),
        "test-link",
        pika_params=None,
        open_channels=nothing,
        replay=nothing,
        before_close=lambda: None,
    )


def _walk(link: Link, *inputs: str) -> str:
    for name in inputs:
        link._step(name)
    return link.state


def _table() -> dict[tuple[str, str], str]:
    return {(src.name, inp.__name__): dst.name for src, inp, dst in TRANSITIONS}


def test_close_from_every_live_state_and_nothing_leaves_closed() -> None:
    table = _table()
    for state in ("new", "connecting", "open", "lost", "recovering"):
        assert table[(state, "close")] == "closing"
    assert not [key for key in table if key[0] == "closed"]
    assert [key for key in table if key[0] == "closing"] == [("closing", "closed")]


def test_first_connect_and_a_reconnect() -> None:
    link = _link()
    assert _walk(link, "connect", "handshake_failed", "give_up") == "new"
    assert _walk(link, "connect", "opened", "lost") == "lost"
    assert _walk(link, "handshake_failed", "lost", "recover") == "recovering"
    assert _walk(link, "opened") == "open"


def test_impossible_input_is_a_clear_error() -> None:
    link = _link()
    with pytest.raises(IllegalStateError, match="test-link: 'recover' is not allowed when new"):
        link._step("recover")
    _walk(link, "connect", "opened", "close", "closed")
    with pytest.raises(IllegalStateError, match="'opened' is not allowed when closed"):
        link._step("opened")  # a handshake finishing after close: refused, not reopened


def test_gone_says_why_by_state() -> None:
    link: Any = _link()
    assert isinstance(link.gone(), ConnectionClosedError) and "is new" in str(link.gone())
    _walk(link, "connect", "opened", "lost")
    link.error = ConnectionLostError("test-link: connection lost: reset")
    error = link.gone("declare")
    assert isinstance(error, ConnectionLostError)
    assert str(error) == "test-link: connection lost: reset; reconnecting (declare)"
