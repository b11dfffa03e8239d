"""Conversation machines: rpc, request and generic, allowed and refused sequences."""

from __future__ import annotations

import pytest

from ion.core.exception import ConversationError
from ion.core.messaging.conversation import new_conversation
from ion.core.messaging.conversation.core import Conversation


def _take(conv: Conversation, performative: str) -> str:
    """One step: C{timeout} is the deadline's (expire), the others are messages (feed)."""
    return conv.expire() if performative == "timeout" else conv.feed(performative)


@pytest.mark.parametrize(
    "protocol,sequence,final_state",
    [
        ("rpc", ["request", "inform_result"], "DONE"),
        ("rpc", ["request", "failure"], "FAILED"),
        ("rpc", ["request", "timeout"], "TIMEDOUT"),
        ("request", ["request", "agree", "inform_result"], "DONE"),
        ("request", ["request", "agree", "failure"], "FAILED"),
        ("request", ["request", "refuse"], "REFUSED"),
        ("request", ["request", "inform_result"], "DONE"),
        ("request", ["request", "agree", "timeout"], "TIMEDOUT"),
        ("generic", ["inform", "request", "inform_result", "failure", "timeout"], "CLOSED"),
    ],
)
def test_sequences_reach_final_state(protocol: str, sequence: list[str], final_state: str):
    """A protocol's legal sequence ends in the expected final state, and not before."""
    conv = new_conversation("p.1@c#1", protocol, "initiator")
    for performative in sequence[:-1]:
        _take(conv, performative)
        assert not conv.finished
    assert _take(conv, sequence[-1]) == final_state
    assert conv.finished


@pytest.mark.parametrize(
    "protocol,sequence",
    [
        ("rpc", ["inform_result"]),
        ("rpc", ["request", "request"]),
        ("rpc", ["request", "agree"]),
        ("rpc", ["request", "inform_result", "inform_result"]),
        ("request", ["request", "refuse", "inform_result"]),
        ("request", ["request", "agree", "agree"]),
        ("request", ["agree"]),
        ("generic", ["timeout", "inform"]),
    ],
)
def test_illegal_sequences_are_refused(protocol: str, sequence: list[str]) -> None:
    """A performative the protocol does not allow now raises ConversationError naming it."""
    conv = new_conversation("p.1@c#2", protocol, "participant")
    for performative in sequence[:-1]:
        _take(conv, performative)
    before = conv.state
    with pytest.raises(ConversationError, match=sequence[-1]):
        conv.feed(sequence[-1])
    assert conv.state == before


def test_unknown_performative_and_protocol() -> None:
    """Performatives and protocols outside the vocabulary are refused, not looked up."""
    conv = new_conversation("p.1@c#3", "rpc", "initiator")
    with pytest.raises(ConversationError, match="unknown performative"):
        conv.feed("__init__")
    with pytest.raises(ConversationError, match="unknown conversation protocol"):
        new_conversation("p.1@c#4", "negotiate", "initiator")


@pytest.mark.parametrize("protocol", ["rpc", "request", "generic"])
def test_timeout_is_never_sent_or_received(protocol: str) -> None:
    """Only a conversation's deadline times it out: 'timeout' fed as a message
    (sent by a process, or arriving on the wire) is refused and changes nothing."""
    conv = new_conversation("p.1@c#7", protocol, "participant")
    conv.feed("request")
    before = conv.state
    with pytest.raises(ConversationError, match="times out by its deadline"):
        conv.feed("timeout")
    assert conv.state == before
    assert conv.expire() in ("TIMEDOUT", "CLOSED")


def _machine_step(protocol: str, taken: list[str], performative: str) -> str | None:
    """Where a fresh Automat machine of C{protocol} goes after C{taken}, then C{performative}."""
    from automat import NoTransition

    from ion.core.messaging.conversation.core import PROTOCOL_MACHINES, ConversationCore

    core = ConversationCore()
    machine = PROTOCOL_MACHINES[protocol][0](core)
    for p in taken:
        getattr(machine, p)()
    step = getattr(machine, performative, None)
    if step is None:
        return "unknown"
    try:
        step()
    except NoTransition:
        return None
    return core.state


@pytest.mark.parametrize("protocol", ["rpc", "request", "generic"])
def test_conversations_step_as_their_automat_machine_does(protocol: str) -> None:
    """From every reachable state, on every performative, a conversation (taking
    the step first or again) goes where the protocol's Automat machine goes."""
    from ion.core.messaging.conversation.core import _INPUTS

    paths = {"INIT": []}
    todo = ["INIT"]
    while todo:
        path = paths[todo.pop()]
        for performative in sorted(_INPUTS):
            want = _machine_step(protocol, path, performative)
            for _ in range(2):  # the first time asks the machine, the second takes the kept step
                conv = new_conversation("p.1@c#3", protocol, "participant")
                for p in path:
                    _take(conv, p)
                if want in (None, "unknown"):
                    with pytest.raises(ConversationError):
                        _take(conv, performative)
                else:
                    assert _take(conv, performative) == want
            if want not in (None, "unknown") and want not in paths:
                paths[want] = [*path, performative]
                todo.append(want)
    assert len(paths) > 2


def test_a_step_taken_before_runs_no_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a protocol's steps have been taken, a new conversation builds no Automat machine."""
    from ion.core.messaging.conversation import core

    first = new_conversation("p.1@c#4", "rpc", "initiator")
    first.feed("request")
    first.feed("inform_result")
    machine, final = core.PROTOCOL_MACHINES["rpc"]
    built: list[object] = []
    monkeypatch.setitem(
        core.PROTOCOL_MACHINES, "rpc", (lambda c: built.append(c) or machine(c), final)
    )
    conv = new_conversation("p.1@c#5", "rpc", "initiator")
    conv.feed("request")
    assert conv.feed("inform_result") == "DONE"
    assert built == []


def test_a_long_generic_conversation_keeps_no_history() -> None:
    """A generic conversation can go on for ever: what it holds does not grow with it."""
    import tracemalloc

    conv = new_conversation("p.1@c#6", "generic", "initiator")
    conv.feed("inform")  # the step is known from here on
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(10_000):
            conv.feed("inform")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4_000, f"{grown} bytes more after 10,000 steps"
