"""The sending API of a process: one-off messages, calls, conversations, replies.

L{Mailbox} is a base of L{ion.core.process.process.Process}. It holds no state:
each method hands over to the process's runtime, whose L{Outbox} base does the
work (L{ion.core.process.outbox} documents each in full).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from ion.core import exception as exc
from ion.core.id import ProcessId
from ion.core.messaging import message as m
from ion.core.process.outbox import REPLY_KEY_SUFFIX, UnknownOpError

if TYPE_CHECKING:
    from ion.core.messaging.conversation.manager import ConversationManager
    from ion.core.process.runtime import ProcessRuntime

__all__ = ["REPLY_KEY_SUFFIX", "Mailbox", "UnknownOpError"]


class Mailbox:
    """Sending and replying for one process (a base of Process)."""

    runtime: ProcessRuntime

    @property
    def conversations(self) -> ConversationManager:
        """This process's conversations: open calls and generic conversations."""
        conversations = self.runtime.conversations
        assert conversations is not None, "process is not spawned"
        return conversations

    # -- sending -------------------------------------------------------------

    def send(
        self,
        to: str | ProcessId,
        op: str,
        content: Any = None,
        headers: dict[str, Any] | None = None,
        *,
        conv: Any = None,
        performative: str = "request",
        timeout: float | None = None,
    ) -> Deferred[None]:
        """Send a one-off message, or one of the C{generic} conversation C{conv};
        no reply is awaited (L{Outbox.send})."""
        return self.runtime.send(
            to, op, content, headers, conv=conv, performative=performative, timeout=timeout
        )

    def start_generic(self) -> Any:
        """Open a C{generic} conversation; it closes after the idle timeout."""
        return self.runtime.start_generic()

    def call(
        self,
        to: str | ProcessId,
        op: str,
        content: Any = None,
        *,
        protocol: str = "rpc",
        timeout: float | None = None,
        headers: dict[str, Any] | None = None,
        on_agree: Callable[[m.Message], None] | None = None,
    ) -> Deferred[m.Message]:
        """Start an C{rpc} or C{request} conversation; fire with the final reply
        message (L{Outbox.call})."""
        return self.runtime.call(
            to, op, content, protocol=protocol, timeout=timeout, headers=headers, on_agree=on_agree
        )

    def rpc_send(
        self,
        to: str | ProcessId,
        op: str,
        content: Any = None,
        *,
        timeout: float | None = None,
        headers: dict[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Call C{op} of C{to} in an C{rpc} conversation; fire with the reply content."""
        return self.runtime.rpc_send(to, op, content, timeout=timeout, headers=headers)

    def request(
        self,
        to: str | ProcessId,
        op: str,
        content: Any = None,
        *,
        timeout: float | None = None,
        headers: dict[str, Any] | None = None,
        on_agree: Callable[[m.Message], None] | None = None,
    ) -> Deferred[Any]:
        """Ask C{to} to do C{op} in a C{request} conversation; fire with the result content."""
        return self.runtime.request(
            to, op, content, timeout=timeout, headers=headers, on_agree=on_agree
        )

    def returned(self, conv_id: str, to: str) -> None:
        """The request of call C{conv_id} came back unroutable: fail it with
        L{NoSuchServiceError} now (a call already over is left alone)."""
        self.runtime.returned(conv_id, to)

    def fail_conversations(self, error: Exception) -> None:
        """End every open conversation with C{error} (say, the broker link is lost)."""
        self.runtime.fail_conversations(error)

    # -- replying ------------------------------------------------------------

    def reply(
        self,
        msg: m.Message,
        content: Any = None,
        performative: str = "inform_result",
        status: str = m.STATUS_OK,
        headers: dict[str, Any] | None = None,
    ) -> Deferred[None]:
        """Answer C{msg} in its conversation (C{inform_result} by default)."""
        return self.runtime.reply(msg, content, performative, status, headers)

    def reply_ok(
        self, msg: m.Message, content: Any = None, headers: dict[str, Any] | None = None
    ) -> Deferred[None]:
        """Answer C{msg} with a result, status OK."""
        return self.runtime.reply_ok(msg, content, headers)

    def reply_err(
        self,
        msg: m.Message,
        content: Any = None,
        exception: BaseException | None = None,
        code: int | None = None,
    ) -> Deferred[None]:
        """Answer C{msg} with an error envelope (C{code}, C{type}, C{message}), status ERROR."""
        return self.runtime.reply_err(msg, content, exception, code)

    def reply_agree(self, msg: m.Message) -> Deferred[None]:
        """Agree to a request; the result follows later."""
        return self.runtime.reply_agree(msg)

    def reply_refuse(
        self, msg: m.Message, reason: str = "", code: int = exc.FORBIDDEN
    ) -> Deferred[None]:
        """Refuse a request."""
        return self.runtime.reply_refuse(msg, reason, code)
