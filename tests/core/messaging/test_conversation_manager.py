"""The initiator-side conversation manager, on a fake clock: deadlines and collection."""

from __future__ import annotations

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.logger import formatEvent

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.messaging.conversation.manager import ConversationManager


def reply(conv_id: str, performative: str = "inform_result", content: object = "ok", **h: object):
    headers = {m.CONV_ID: conv_id, m.PERFORMATIVE: performative, m.PROTOCOL: "rpc", **h}
    return m.Message(headers, content)


def make() -> tuple[Clock, ConversationManager]:
    clock = Clock()
    return clock, ConversationManager("me.1@c", clock, incarnation="i")


def test_reply_resolves_and_collects() -> None:
    """A reply fires the caller's Deferred with the message and forgets the conversation."""
    clock, manager = make()
    conv = manager.start("c#1", "rpc", 5)
    manager.received(reply("c#1"))
    result = conv.deferred.result
    assert result.content == "ok"
    assert manager.open == {} and clock.getDelayedCalls() == []


def test_timeout_fails_and_collects() -> None:
    """At the deadline the caller gets TimeoutError and nothing is left behind."""
    clock, manager = make()
    conv = manager.start("c#1", "rpc", 5)
    failures: list = []
    conv.deferred.addErrback(failures.append)
    clock.advance(4.9)
    assert failures == []
    clock.advance(0.1)
    assert failures[0].check(exc.TimeoutError)
    assert "no reply within 5s" in str(failures[0].value)
    assert manager.open == {} and conv.state == "TIMEDOUT"


def test_late_reply_told_apart_from_unknown() -> None:
    """A reply after the deadline is recognised as late; a stranger's, or one to a
    one-off message (which awaits none), as unknown: each counted under its cause,
    the first of each logged (L{ion.core.drops})."""
    from twisted.logger import globalLogPublisher

    seen: list[str] = []
    observer = lambda e: seen.append(formatEvent(e))  # noqa: E731
    globalLogPublisher.addObserver(observer)
    try:
        clock, manager = make()
        conv_id = manager.next_id()
        conv = manager.start(conv_id, "rpc", 1)
        conv.deferred.addErrback(lambda f: None)
        clock.advance(1)
        manager.received(reply(conv_id))
        one_off = manager.next_id(one_off=True)
        for stranger in (
            one_off,
            "me.1@c#i.2",
            "me.1@c#i.0",
            "me.1@c#i.x",
            "me.1@c#i.\u00b2",
            "me.1@c#1",
            "me.1@c#j.1",
            "other.1@c#i.1",
            "me.1@c",
        ):
            manager.received(reply(stranger))
    finally:
        globalLogPublisher.removeObserver(observer)
    assert manager.drops.causes == {"late reply": 1, "reply for unknown conversation": 9}
    assert sum("late reply" in s for s in seen) == 1
    assert sum("unknown conversation" in s for s in seen) == 1


def test_conversation_ids_are_the_owners_in_order() -> None:
    """next_id numbers the owner's conversations; finishing them leaves nothing behind."""
    clock, manager = make()
    ids = [manager.next_id() for _ in range(3)]
    assert ids == ["me.1@c#i.1", "me.1@c#i.2", "me.1@c#i.3"]
    for conv_id in ids:
        manager.start(conv_id, "rpc", 5)
        manager.received(reply(conv_id))
    assert manager.open == {} and manager.on_agree == {} and clock.getDelayedCalls() == []


def test_a_reply_to_another_incarnation_of_the_same_owner_answers_nothing() -> None:
    """A process id comes back when its container restarts with a fixed container
    id: the old incarnation's late replies carry ids of the same owner and number,
    and must not answer the new incarnation's calls."""
    clock = Clock()
    old, new = ConversationManager("me.1@c", clock), ConversationManager("me.1@c", clock)
    old_id, new_id = old.next_id(), new.next_id()
    assert old_id != new_id and old_id.startswith("me.1@c#") and new_id.endswith(".1")
    conv = new.start(new_id, "rpc", 5)
    new.received(reply(old_id, content="the old one's"))
    assert not conv.deferred.called and new_id in new.open
    new.received(reply(new_id, content="mine"))
    assert conv.deferred.result.content == "mine"


def test_error_and_refusal_replies() -> None:
    """failure replies errback a ReceivedError subclass; refuse errbacks RequestRefused."""
    clock, manager = make()
    failed = manager.start("c#1", "rpc", 5)
    refused = manager.start("c#2", "request", 5)
    errors: list = []
    failed.deferred.addErrback(errors.append)
    refused.deferred.addErrback(errors.append)
    manager.received(reply("c#1", "failure", {"code": 404, "message": "gone"}, status="ERROR"))
    manager.received(reply("c#2", "refuse", {"code": 403, "message": "no"}))
    assert errors[0].check(exc.ReceivedApplicationError) and errors[0].value.code == 404
    assert errors[1].check(exc.RequestRefused)
    assert manager.open == {}


def test_cancel_forgets_conversation() -> None:
    """Cancelling the caller's Deferred forgets the conversation and its deadline."""
    clock, manager = make()
    conv = manager.start("c#1", "rpc", 5)
    conv.deferred.cancel()
    assert conv.deferred.result.check(CancelledError)
    conv.deferred.addErrback(lambda f: None)
    assert manager.open == {} and clock.getDelayedCalls() == []


def test_generic_closes_when_idle() -> None:
    """A generic conversation stays open while used and is collected once idle."""
    clock, manager = make()
    conv = manager.start_generic("g#1", idle=10)
    clock.advance(9)
    msg = m.Message({m.CONV_ID: "g#1", m.PERFORMATIVE: "inform", m.PROTOCOL: "generic"})
    assert manager.generic_received(msg, idle=10) is conv
    clock.advance(9)
    assert "g#1" in manager.generic
    clock.advance(1)
    assert manager.generic == {} and conv.state == "CLOSED"


def test_a_late_message_of_a_closed_generic_conversation_is_refused() -> None:
    """A message for a generic conversation this owner opened and that has closed
    is late: refused, not taken as a new conversation (which would run the op
    and start a timer again)."""
    clock, manager = make()
    conv_id = manager.next_id()
    manager.start_generic(conv_id, idle=1)
    clock.advance(1)
    late = m.Message({m.CONV_ID: conv_id, m.PERFORMATIVE: "inform", m.PROTOCOL: "generic"})
    with pytest.raises(exc.ConversationError, match="is closed; late 'inform' dropped"):
        manager.generic_received(late, idle=1)
    assert manager.generic == {} and clock.getDelayedCalls() == []


def test_fail_all_ends_everything() -> None:
    """fail_all ends open calls with the error and closes generic conversations."""
    clock, manager = make()
    conv = manager.start("c#1", "rpc", 5)
    manager.start_generic("g#1", idle=10)
    errors: list = []
    conv.deferred.addErrback(errors.append)
    manager.fail_all(exc.ProcessError("gone"))
    assert errors[0].check(exc.ProcessError)
    assert manager.open == {} and manager.generic == {} and clock.getDelayedCalls() == []


def test_refused_generic_message_leaves_nothing() -> None:
    """A first generic message whose performative is refused opens no conversation."""
    clock, manager = make()
    msg = m.Message({m.CONV_ID: "g#9", m.PERFORMATIVE: "agree", m.PROTOCOL: "generic"})
    with pytest.raises(exc.ConversationError):
        manager.generic_received(msg, idle=10)
    assert manager.generic == {} and clock.getDelayedCalls() == []


def test_an_on_agree_that_raises_is_logged_and_the_request_goes_on() -> None:
    """The caller's on_agree raising is its own bug: logged as such, and the
    result that follows still completes the request."""
    from twisted.logger import formatEvent, globalLogPublisher

    clock, manager = make()
    conv = manager.start("c#1", "request", 5)

    def on_agree(msg: m.Message) -> None:
        raise RuntimeError("callback bug")

    manager.on_agree["c#1"] = on_agree
    seen: list[str] = []

    def observer(event: dict) -> None:
        seen.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    try:
        manager.received(reply("c#1", "agree", None, **{m.PROTOCOL: "request"}))
    finally:
        globalLogPublisher.removeObserver(observer)
    assert any("on_agree of c#1 raised" in s for s in seen)
    manager.received(reply("c#1", **{m.PROTOCOL: "request"}))
    assert conv.deferred.result.content == "ok"
    assert manager.open == {} and manager.on_agree == {} and clock.getDelayedCalls() == []
