"""Conversation machines: rpc, request and generic, allowed and refused sequences."""

from __future__ import annotations

import pytest

from ion.core.exception import ConversationError
from ion.core.messaging.conversation import new_conversation


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
        conv.feed(performative)
        assert not conv.finished
    assert conv.feed(sequence[-1]) == final_state
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
        conv.feed(performative)
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
