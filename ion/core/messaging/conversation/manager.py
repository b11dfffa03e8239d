"""The initiator side of one process's conversations: deadlines, replies, collection."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from ion.core.drops import Drops
from ion.core.exception import (
    ConversationError,
    RequestRefused,
    TimeoutError,
    received_error,
)
from ion.core.messaging.conversation.core import (
    INITIATOR,
    PARTICIPANT,
    Conversation,
    new_conversation,
)
from ion.core.messaging.message import SENDER, STATUS, STATUS_ERROR, Message

log = Logger()


class ConversationManager:
    """Holds a process's open initiated conversations until they finish or time out.

    Conversation ids are C{<owner>#<incarnation>.<n>}, numbered in order by
    L{next_id}, so a reply to one that has finished is told from a reply to one
    this process never had (or to a one-off message, C{<owner>#<incarnation>.s<n>})
    without remembering finished ones. The incarnation is random per manager: a
    process id comes back when a container is restarted with its C{--container-id}
    (or a frozen one resumes beside its replacement), and the replies to the old
    incarnation's calls, which reach the new one's reply queue, must not answer
    the new one's calls of the same number.

    @ivar open: conv-id -> conversation; empty again once every call has ended.
    """

    def __init__(
        self, owner: str, clock: Any, incarnation: str | None = None, drops: Drops | None = None
    ) -> None:
        self.owner = owner
        self.clock = clock
        #: Where replies nobody waits for are counted and logged.
        self.drops = drops if drops is not None else Drops(clock)
        self.open: dict[str, Conversation] = {}
        self.on_agree: dict[str, Callable[[Message], None]] = {}
        self.generic: dict[str, Conversation] = {}
        if incarnation is None:
            incarnation = secrets.token_hex(6)  # 48 bits: two incarnations never meet
        self._prefix = f"{owner}#{incarnation}."
        self._issued = 0
        self._one_offs = 0

    def next_id(self, one_off: bool = False) -> str:
        """A new conversation id of this owner; C{one_off} for a message that awaits
        no reply (C{<owner>#<incarnation>.s<n>}), so a reply to it is unknown rather
        than late."""
        if one_off:
            self._one_offs += 1
            return f"{self._prefix}s{self._one_offs}"
        self._issued += 1
        return f"{self._prefix}{self._issued}"

    def _was_issued(self, conv_id: Any) -> bool:
        if not isinstance(conv_id, str) or not conv_id.startswith(self._prefix):
            return False
        n = conv_id[len(self._prefix) :]
        return n.isascii() and n.isdigit() and 0 < int(n) <= self._issued

    def start(self, conv_id: str, protocol: str, timeout: float) -> Conversation:
        """Open a conversation whose request is about to be sent; arm its deadline."""
        conv = new_conversation(conv_id, protocol, INITIATOR)
        conv.feed("request")
        conv.deferred = Deferred(lambda d: self._cancelled(conv))
        conv.timer = self.clock.callLater(timeout, self._timed_out, conv, timeout)
        self.open[conv_id] = conv
        return conv

    def start_generic(self, conv_id: str, idle: float) -> Conversation:
        """Open a C{generic} conversation that closes after C{idle} quiet seconds."""
        conv = new_conversation(conv_id, "generic", INITIATOR)
        self.generic[conv_id] = conv
        self.touch(conv, idle)
        return conv

    def generic_received(self, msg: Message, idle: float) -> Conversation:
        """Feed a C{generic} message to its conversation, opening it if new."""
        conv = self.generic.get(msg.conv_id)  # type: ignore[arg-type]
        if conv is None:
            if self._was_issued(msg.conv_id):  # one of ours, closed: not a new one
                error = ConversationError(
                    f"{self.owner}: generic conversation {msg.conv_id} is closed; "
                    f"late {msg.performative!r} dropped"
                )
                error.reason = "late message of a closed generic conversation"  # type: ignore[attr-defined]
                raise error
            conv = new_conversation(msg.conv_id, "generic", PARTICIPANT)  # type: ignore[arg-type]
            conv.feed(msg.performative)  # type: ignore[arg-type]  # kept only if it takes it
            self.generic[conv.conv_id] = conv
        else:
            conv.feed(msg.performative)  # type: ignore[arg-type]
        self.touch(conv, idle)
        return conv

    def touch(self, conv: Conversation, idle: float) -> None:
        """(Re)start the idle timer of generic conversation C{conv}: it is in use."""
        if conv.timer is not None and conv.timer.active():
            conv.timer.reset(idle)
        else:
            conv.timer = self.clock.callLater(idle, self._idle, conv)

    def _idle(self, conv: Conversation) -> None:
        conv.timer = None
        conv.expire()
        self.generic.pop(conv.conv_id, None)

    def received(self, msg: Message) -> None:
        """Feed a reply to its conversation; finish it when the protocol says so."""
        conv_id = msg.conv_id
        conv = self.open.get(conv_id)  # type: ignore[arg-type]
        if conv is None:
            late = self._was_issued(conv_id)
            self.drops.dropped("late reply" if late else "reply for unknown conversation",
                               sender=msg.headers.get(SENDER), where=self.owner, detail=msg,
                               level="info" if late else "warn")  # fmt: skip
            return
        performative = msg.performative
        try:
            conv.feed(performative)  # type: ignore[arg-type]
        except ConversationError as e:
            self.drops.dropped("unexpected message in a conversation", detail=e,
                               sender=msg.headers.get(SENDER), where=self.owner)  # fmt: skip
            return
        if not conv.finished:
            agree = self.on_agree.get(conv_id)  # type: ignore[arg-type]
            if agree is not None:
                try:
                    agree(msg)
                except Exception:
                    log.failure("{owner}: on_agree of {conv_id} raised", owner=self.owner,
                                conv_id=conv_id)  # fmt: skip
            return
        self._close(conv)
        if performative == "refuse":
            conv.deferred.errback(RequestRefused(msg.headers, msg.content))
        elif performative == "failure" or msg.headers.get(STATUS) == STATUS_ERROR:
            conv.deferred.errback(received_error(msg.headers, msg.content))
        else:
            conv.deferred.callback(msg)

    def fail(self, conv: Conversation, error: BaseException) -> None:
        """End a conversation that could not go on (its request could not be sent)."""
        if self.open.get(conv.conv_id) is conv:
            self._close(conv)
            conv.deferred.errback(error)

    def fail_all(self, error: Exception) -> None:
        """End every open conversation with C{error} (the process is going away)."""
        for conv in list(self.open.values()):
            self.fail(conv, error)
        for conv in list(self.generic.values()):
            if conv.timer is not None and conv.timer.active():
                conv.timer.cancel()
            self._idle(conv)

    def _timed_out(self, conv: Conversation, timeout: float) -> None:
        conv.timer = None
        conv.expire()
        self._close(conv)
        conv.deferred.errback(
            TimeoutError(
                f"{self.owner}: no reply within {timeout:g}s in {conv.protocol} "
                f"conversation {conv.conv_id}"
            )
        )

    def _cancelled(self, conv: Conversation) -> None:
        # The caller cancelled the Deferred: forget the conversation; Deferred
        # itself errbacks with CancelledError.
        if self.open.get(conv.conv_id) is conv:
            self._close(conv)

    def _close(self, conv: Conversation) -> None:
        del self.open[conv.conv_id]
        self.on_agree.pop(conv.conv_id, None)
        if conv.timer is not None:
            conv.timer.cancel()
            conv.timer = None
