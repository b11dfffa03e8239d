"""What a process's runtime does with deliveries it does not run to the end:
each goes back to its queue for another instance, is answered with an error,
or is dropped, as where it came from allows.

L{GiveBack} is a base of L{ion.core.process.runtime.ProcessRuntime}, over
L{ion.core.process.outbox.Outbox}; the runtime holds the state it works on.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from ion.core import exception as exc
from ion.core.drops import About, Drops, cause_of
from ion.core.messaging import message as m
from ion.core.messaging.broker import settle
from ion.core.messaging.conversation import new_conversation
from ion.core.messaging.conversation.core import PARTICIPANT
from ion.core.process.outbox import Outbox

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from ion.core.security.policy import Policy

#: Performatives that answer a request (its conversation goes on with them).
REPLY_PERFORMATIVES = frozenset({"agree", "refuse", "inform_result", "failure"})
_ENDING = frozenset({"TERMINATING", "TERMINATED"})
#: Protocols whose messages run a handler by their op: each must pass the
#: policy, a one-off (C{none}) too, or it would be a way round it. (Signals and
#: the agents' C{cc} wire run no op handler.)
JUDGED = frozenset({"rpc", "request", "none", "generic"})


class GiveBack(Outbox):
    """Deliveries given back, answered with an error or dropped (a base of the runtime)."""

    _inflight: int
    _waiting: deque[m.Message]
    _running: dict[m.Message, Deferred[Any] | None]
    _idle: list[Deferred[None]]
    policy: Policy | None
    service: str
    _me: str
    drops: Drops

    def _now_idle(self) -> None:
        idle, self._idle = self._idle, []
        for d in idle:
            d.callback(None)

    def _not_taken(self, msg: m.Message) -> None:
        """A delivery that reached a process not ACTIVE. One of a shared queue
        that races with terminate goes back to it for another instance; a process
        in ERROR, or ending, answers requests of its own queue with an error, as
        putting them back would bring them straight back to it."""
        delivery = msg.delivery
        host = self._host
        state = host.state
        if state == "ERROR" or (state in _ENDING and self._on_own_queue(delivery)):
            settle(delivery)
            if msg.protocol in ("rpc", "request") and msg.performative == "request":
                msg.conversation = new_conversation(msg.conv_id, msg.protocol, PARTICIPANT)  # type: ignore[arg-type]
                msg.conversation.feed("request")
                error = exc.ProcessError(f"{host} is in state {state}; it takes no requests")
                try:
                    self.reply_err(msg, exception=error, code=exc.SERVICE_UNAVAILABLE)
                except exc.IonError as e:  # (one with no reply-to, say)
                    self._dropped(msg, f"unanswerable while {state}", e)
            else:
                self._dropped(msg, f"arrived while {state}")
            return
        settle(delivery, requeue=True)
        if self._auto_acked(delivery):
            # Auto-acked: there is no queue to go back to.
            self._dropped(msg, f"arrived while {state}")

    def _dropped(self, msg: m.Message, cause: str, detail: Any = None) -> None:
        """Count and log (at a bounded rate) C{msg} dropped for C{cause}."""
        self.drops.dropped(cause, sender=msg.sender, where=self._me, detail=About(msg, detail))

    def _refused(self, msg: m.Message) -> bool:
        """Whether the policy refuses C{msg}, which is then never run. A request
        (rpc or request) is answered with the typed 401 or 403; one with no
        reply-to, and a one-off or generic message (no reply is awaited), is
        dropped and counted."""
        policy = self.policy
        assert policy is not None
        clock: Any = self.clock
        # Signing on, every message taken from the broker was verified (one the
        # container made itself never crossed it, and carries no broker user).
        verified = getattr(self.exchange, "signer", None) is not None
        error = policy.judge(self.service, msg, clock.seconds(), verified)
        if error is None:
            return False
        settle(msg.delivery)
        answerable = msg.protocol in ("rpc", "request") and msg.performative == "request"
        if not answerable or not isinstance(msg.headers.get(m.REPLY_TO), str):
            policy.unanswered += 1
            return True
        msg.conversation = new_conversation(msg.conv_id, msg.protocol, PARTICIPANT)  # type: ignore[arg-type]
        msg.conversation.feed("request")
        try:
            self.reply_err(msg, exception=error)
        except exc.IonError as e:  # (too big to answer, say): the sender's text, so debug only
            self.log.debug("{proc}: refusal of {msg!r} not sent: {e}", proc=self._host, msg=msg, e=e)  # fmt: skip
        return True

    def abandon_running(self) -> None:
        """The process is killed: cancel the handlers under way, unanswered. A
        request of a shared queue goes back to it for another instance; one sent
        to this process's id has nowhere to go and is answered with an error."""
        host = self._host
        running, self._running = self._running, {}
        for msg, waited in running.items():
            self._inflight -= 1
            if self._on_own_queue(msg.delivery):
                if msg.protocol in ("rpc", "request") and not msg.replied:
                    try:
                        self.reply_err(msg, exception=exc.ProcessError(f"{host} was killed"))
                    except Exception as e:
                        self.log.warn("{proc}: cannot answer {msg!r}: {e}", proc=host, msg=msg, e=e)
                settle(msg.delivery)
            else:
                settle(msg.delivery, requeue=True)
            if waited is not None:  # (None: it is starting; it ends unanswered)
                waited.cancel()
        if self._inflight == 0 and self._idle:
            self._now_idle()

    def release_waiting(self, all_of_them: bool = False) -> None:
        """Give back the deliveries waiting for a turn: to their queue, for another
        instance. Those of the process's own queues have no other instance: they
        stay to run while terminating drains, unless C{all_of_them}, when requests
        among them are answered "terminated" and the rest dropped."""
        host = self._host
        keep: list[m.Message] = []
        for msg in self._waiting:  # each goes back to its place: the order stays
            if not self._on_own_queue(msg.delivery):
                settle(msg.delivery, requeue=True)
            elif all_of_them:
                self.log.warn("{proc}: {msg!r} dropped: not started before terminating",
                              proc=host, msg=msg)  # fmt: skip
                if msg.protocol in ("rpc", "request"):
                    try:
                        self.reply_err(msg, exception=exc.ProcessError(f"{host} terminated"))
                    except Exception as e:  # a request with no reply-to, say
                        self.log.warn("{proc}: cannot answer {msg!r}: {e}", proc=host, msg=msg, e=e)
                settle(msg.delivery)
            else:
                keep.append(msg)
        self._waiting.clear()
        self._waiting.extend(keep)

    def forget_waiting(self) -> None:
        """The broker link was lost: it gives the unacked deliveries of shared
        queues back and delivers them again, so the copies waiting here must not
        run too. Those of the process's own queues stay: an exclusive queue went
        with the connection, so they are the only copies."""
        self._waiting = deque(msg for msg in self._waiting if self._on_own_queue(msg.delivery))

    def _auto_acked(self, delivery: Any) -> bool:
        return getattr(delivery, "routing_key", None) == self._reply_key

    def _on_own_queue(self, delivery: Any) -> bool:
        """Whether C{delivery} came from a queue of this process alone (its id or
        reply queue), which goes with it: nothing there can go back for another."""
        key = getattr(delivery, "routing_key", None)
        return key == self._me or key == self._reply_key

    def _bad_message(self, delivery: Any, error: Exception, h: Any = None) -> None:
        """Answer a malformed request if its headers say where to, fail the call a
        malformed reply belongs to, then drop it: counted, and logged at a bounded
        rate, by the error's class and words (L{ion.core.drops.cause_of}).

        The headers of a message that did not verify (L{exc.SignatureError}) are
        anybody's: they fail no call, and the 401 to them goes unsigned, so that
        it cannot be aimed at a signing process's open call (a signed answer
        would be taken as that call's failure); a caller that does not sign
        still reads it."""
        sender = h.get(m.SENDER) if isinstance(h, dict) else None
        where = getattr(delivery, "routing_key", None) or self._me
        self.drops.dropped(cause_of(error), sender=sender, where=where, detail=error)
        settle(delivery)
        if not isinstance(h, dict) or h.get(m.PROTOCOL) not in ("rpc", "request"):
            return
        performative, conv_id = h.get(m.PERFORMATIVE), h.get(m.CONV_ID)
        if not isinstance(performative, str):  # (a dict cannot even be looked up)
            return
        unverified = isinstance(error, exc.SignatureError)
        if performative in REPLY_PERFORMATIVES:
            if not unverified and self.conversations is not None and isinstance(conv_id, str):
                conv = self.conversations.open.get(conv_id)
                if conv is not None:
                    self.conversations.fail(conv, error)
            return
        if (
            isinstance(h.get(m.REPLY_TO), str)
            and isinstance(h.get(m.CONV_ID), str)
            and h.get(m.PERFORMATIVE) == "request"
            and self._host.state == "ACTIVE"
        ):
            try:
                self.reply_err(m.Message(h), exception=error, signed=not unverified)
            except exc.IonError as e:  # its headers cannot travel back (nor be signed)
                self.drops.dropped("bad message's answer not sent", sender=sender, where=where,
                                   detail=e)  # fmt: skip
