"""The sending side of a process's runtime: one-off messages, calls,
conversations and replies.

L{Outbox} is the base of L{ion.core.process.runtime.ProcessRuntime}, which
holds the state it works on (exchange, clock, the process's id and
conversations); L{ion.core.process.mailbox.Mailbox} gives the process its
public sending API over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.process import context

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from ion.core.id import ProcessId
    from ion.core.messaging.conversation.manager import ConversationManager
    from ion.core.process.interfaces import Exchange, Host

REPLY_KEY_SUFFIX = ".reply"


class UnknownOpError(exc.ApplicationError):
    """The process has no handler for the operation asked for."""

    code = exc.BAD_REQUEST


class Outbox:
    """Sending and replying for one process (the base of its runtime)."""

    _host: Host
    _me: str
    _reply_key: str
    _reply_queue: str  # the queue of _reply_key
    exchange: Exchange | None
    clock: IReactorTime | None
    conversations: ConversationManager | None
    log: Logger
    #: Seconds a call waits for its answer unless told (C{container.rpc_timeout}).
    rpc_timeout: float = 15.0
    #: Seconds an idle C{generic} conversation stays open (C{container.conversation_timeout}).
    conversation_timeout: float = 60.0
    max_message_size: int = 128 * 1024 * 1024

    # -- sending -------------------------------------------------------------

    def request_headers(self, to: str, op: str, protocol: str, conv_id: str) -> dict[str, Any]:
        """The headers of a new request or one-off message of this process."""
        host = self._host
        h = {
            m.SENDER: self._me,
            m.SENDER_NAME: host.proc_name,
            m.RECEIVER: to,
            m.REPLY_TO: self._reply_key,
            m.CONV_ID: conv_id,
            m.CONV_SEQ: 1,
            m.PROTOCOL: protocol,
            m.PERFORMATIVE: "request",
            m.OP: op,
            m.TS: int(time.time() * 1000),
        }
        user = host.user_id or context.user_id()
        if user is not None:  # (the caller's headers may still say otherwise)
            h[m.USER_ID] = user
        return h

    def _may_send(self) -> bool:
        """Sending works from READY until terminate has finished."""
        return self._host.state not in ("INIT", "TERMINATED")

    def _encode(self, headers: dict[str, Any], content: Any, signed: bool = True) -> bytes:
        """The message's bytes, if the broker will take that many.

        @raise MessageFormatError: it cannot be encoded, or is over C{broker.max_message_size}
            (RabbitMQ would close the channel over it, and its caller would wait out
            the deadline).
        """
        signer = getattr(self.exchange, "signer", None) if signed else None
        body = m.encode(headers, content, signer)
        limit = self.max_message_size
        if len(body) > limit:
            raise exc.MessageFormatError(
                f"a message of {len(body):,} bytes is over broker.max_message_size ({limit:,})"
            )
        return body

    def _publish(self, to: str, headers: dict[str, Any], content: Any) -> Deferred[None]:
        if self.exchange is None or not self._may_send():
            raise exc.IllegalStateError(f"{self._host}: cannot send in state {self._host.state}")
        body = self._encode(headers, content)
        self._record(headers, body, content)
        return self.exchange.publish(to, body, mandatory=True)

    def _record(self, headers: dict[str, Any], body: bytes, content: Any) -> None:
        """Put a message about to go out on the container's tap, if it has one."""
        tap = self.exchange.tap  # type: ignore[union-attr]
        if tap is not None:
            tap.sent(headers, len(body), content)

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
        """Send a one-off message (protocol C{none}), or one message of the
        C{generic} conversation C{conv} (see L{start_generic}); no reply is awaited.

        The Deferred fails with L{NoSuchServiceError} when nobody serves C{to},
        and with L{TimeoutError} when the broker has not taken the message within
        C{timeout} seconds (default: C{container.rpc_timeout}; a message still
        waiting to be sent, as while the broker blocks the connection, is dropped).
        """
        to = str(to)
        if conv is None:
            assert self.conversations is not None, "process is not spawned"
            h = self.request_headers(to, op, "none", self.conversations.next_id(one_off=True))
        else:
            h = self.request_headers(to, op, "generic", conv.conv_id)
            h[m.PERFORMATIVE] = performative
        if headers:
            h.update(headers)
        if conv is not None:
            conv.feed(performative)  # first: a performative it refuses sends nothing
            assert self.conversations is not None
            self.conversations.touch(conv, self.conversation_timeout)  # sending is use too
        d = self._publish(to, h, content)
        if not _succeeded(d):
            d = self._within(d, self.rpc_timeout if timeout is None else timeout, to)
        return d.addErrback(self._unroutable, to)

    def _within(self, d: Deferred[None], timeout: float, to: str) -> Deferred[None]:
        def timed_out(failure: Failure | None, _timeout: float) -> Failure:
            assert failure is not None
            failure.trap(CancelledError)
            return Failure(
                exc.TimeoutError(
                    f"{self._host}: the broker did not take a message to {to!r} within {timeout:g}s"
                )  # fmt: skip
            )

        clock: Any = self.clock
        return d.addTimeout(timeout, clock, onTimeoutCancel=timed_out)

    def start_generic(self) -> Any:
        """Open a C{generic} conversation; it closes after the idle timeout."""
        assert self.conversations is not None, "process is not spawned"
        conv_id = self.conversations.next_id()
        return self.conversations.start_generic(conv_id, self.conversation_timeout)

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
        """Start an C{rpc} or C{request} conversation; fire with the final reply message.

        Fails with L{TimeoutError} after C{timeout} seconds (default: the
        C{container.rpc_timeout} config; the request carries that deadline as
        its C{expiry} header, and is not run once it passed), with a L{ReceivedError} subclass for
        an error reply, with L{RequestRefused} for a refusal, and at once with
        L{NoSuchServiceError} when nobody serves C{to}.
        """
        conversations = self.conversations
        assert conversations is not None, "process is not spawned"
        to = str(to)
        if timeout is None:
            timeout = self.rpc_timeout
        conv_id = conversations.next_id()
        h = self.request_headers(to, op, protocol, conv_id)
        clock: Any = self.clock
        # The caller's deadline, absolute (ms since the epoch, by this host's
        # clock): past it nobody waits, and the server drops the request unrun.
        # Rounded down: on one clock a request is never started past its caller's
        # deadline (a handler under way gets watchdog.EXPIRY_GRACE more).
        h[m.EXPIRY] = int((clock.seconds() + timeout) * 1000)
        if headers:
            h.update(headers)
        body = self._encode(h, content)
        if not self._may_send():
            raise exc.IllegalStateError(f"{self._host}: cannot send in state {self._host.state}")
        assert self.exchange is not None
        if self.exchange.restoring(self._reply_queue):
            # The reply would be dropped: the queue it goes to is not back yet.
            return fail(
                exc.ConnectionLostError(
                    f"{self._host}: reconnected to the broker, but the reply queue "
                    f"{self._reply_queue} is not declared again yet; call again shortly"
                )
            )
        conv = conversations.start(conv_id, protocol, timeout)
        if on_agree is not None:
            conversations.on_agree[conv_id] = on_agree
        # An unroutable request comes back through the process manager's
        # on_returned (no confirm round trip), or, the first time, as a failure.
        # The deadline as AMQP's TTL too: the broker drops it unread once it passed.
        ttl = max(1, round(timeout * 1000))
        self._record(h, body, content)
        sent = self.exchange.publish(to, body, mandatory=True, report_returns=True, expiration=ttl)
        if not _succeeded(sent):
            sent.addErrback(self._call_not_sent, conv, to)
            # A request not yet sent when its call ends (while the broker blocks
            # the connection, say) is dropped: nobody waits for its answer.
            conv.deferred.addBoth(_drop_unsent, sent)
        return conv.deferred

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
        d = self.call(to, op, content, timeout=timeout, headers=headers)
        return d.addCallback(_content)

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
        d = self.call(
            to, op, content, protocol="request", timeout=timeout, headers=headers, on_agree=on_agree
        )
        return d.addCallback(_content)

    def _unroutable(self, failure: Failure, to: str) -> Failure:
        if failure.check(exc.UnroutableError):
            return Failure(self._no_such(to))
        return failure

    def _no_such(self, to: str) -> exc.NoSuchServiceError:
        return exc.NoSuchServiceError(
            f"no process or service named {to!r} in system {self._host.sysname!r}"
        )

    def returned(self, conv_id: str, to: str) -> None:
        """The request of call C{conv_id} came back unroutable: fail it with
        L{NoSuchServiceError} now (a call already over is left alone)."""
        if self.conversations is not None:
            conv = self.conversations.open.get(conv_id)
            if conv is not None:
                self.conversations.fail(conv, self._no_such(to))

    def fail_conversations(self, error: Exception) -> None:
        """End every open conversation with C{error} (say, the broker link is lost)."""
        if self.conversations is not None:
            self.conversations.fail_all(error)

    def _call_not_sent(self, failure: Failure, conv: Any, to: str) -> None:
        if failure.check(CancelledError):  # the call ended first (see _drop_unsent)
            return
        error = self._no_such(to) if failure.check(exc.UnroutableError) else failure.value
        assert self.conversations is not None
        self.conversations.fail(conv, error)

    # -- replying ------------------------------------------------------------

    def reply(
        self,
        msg: m.Message,
        content: Any = None,
        performative: str = "inform_result",
        status: str = m.STATUS_OK,
        headers: dict[str, Any] | None = None,
        signed: bool = True,
    ) -> Deferred[None]:
        """Answer C{msg} in its conversation (C{inform_result} by default); not
        C{signed}, a signing container's answer is one no signing process takes."""
        h = msg.headers
        reply_to = h.get(m.REPLY_TO)
        if not isinstance(reply_to, str):
            raise exc.ConversationError(f"{self._host}: {msg!r} has no reply-to; cannot answer it")
        out = {
            m.SENDER: self._me,
            m.SENDER_NAME: self._host.proc_name,
            m.RECEIVER: reply_to,
            m.REPLY_TO: self._reply_key,
            m.CONV_ID: h[m.CONV_ID],
            m.CONV_SEQ: m.next_seq(h),
            m.PROTOCOL: h[m.PROTOCOL],
            m.PERFORMATIVE: performative,
            # A generic conversation goes on with the same op; others answer "result".
            m.OP: h.get(m.OP) if h[m.PROTOCOL] == "generic" else "result",
            m.STATUS: status,
            m.TS: int(time.time() * 1000),
        }
        if m.USER_ID in h:
            out[m.USER_ID] = h[m.USER_ID]
        if headers:
            out.update(headers)
        assert self.exchange is not None
        body = self._encode(out, content, signed)  # before the conversation moves: it may not go
        conv = msg.conversation
        if conv is not None:
            conv.feed(performative)
            if conv.finished:
                msg.replied = True
        else:
            msg.replied = True
        self._record(out, body, content)
        d = self.exchange.publish(reply_to, body)
        return d if _succeeded(d) else d.addErrback(self._reply_lost, msg)

    def reply_ok(self, msg: m.Message, content: Any = None, headers: dict[str, Any] | None = None):
        """Answer C{msg} with a result, status OK."""
        return self.reply(msg, content, "inform_result", m.STATUS_OK, headers)

    def reply_err(
        self,
        msg: m.Message,
        content: Any = None,
        exception: BaseException | None = None,
        code: int | None = None,
        signed: bool = True,
    ) -> Deferred[None]:
        """Answer C{msg} with an error envelope (C{code}, C{type}, C{message}), status ERROR."""
        if content is None:
            content = exc.error_content(exception) if exception else {"message": "error"}
            if code is not None:
                content["code"] = code
            content.setdefault("code", exc.INTERNAL_ERROR)
        return self.reply(msg, content, "failure", m.STATUS_ERROR, signed=signed)

    def reply_agree(self, msg: m.Message) -> Deferred[None]:
        """Agree to a request; the result follows later."""
        return self.reply(msg, None, "agree")

    def reply_refuse(self, msg: m.Message, reason: str = "", code: int = exc.FORBIDDEN):
        """Refuse a request."""
        content = {"code": code, "type": "Refuse", "message": reason}
        return self.reply(msg, content, "refuse", m.STATUS_ERROR)

    def _reply_lost(self, failure: Failure, msg: m.Message) -> None:
        self.log.warn(
            "{proc}: reply to {msg!r} lost: {f}", proc=self._host, msg=msg, f=failure.value
        )


def _succeeded(d: Deferred[Any]) -> bool:
    """Whether C{d} already fired with success (the embedded broker's publish
    does); then there is no errback worth adding on the message path."""
    return d.called and not isinstance(d.result, Failure)


def _drop_unsent(result: Any, sent: Deferred[None]) -> Any:
    if not sent.called:
        sent.cancel()
    return result


def _content(msg: m.Message) -> Any:
    return msg.content
