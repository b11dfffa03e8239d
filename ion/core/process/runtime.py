"""The runtime of a process: the deliveries it takes, decoded and routed to a
conversation or a handler, how many handlers run at once and for how long, and
how each request is answered and acked.

L{ProcessRuntime} is owned by L{ion.core.process.process.Process} (its
C{runtime}); it holds the process's queues, consumers, conversations and the
handlers under way or waiting, and sends and answers for it. Its bases:
L{ion.core.process.giveback.GiveBack} (deliveries given back or dropped) over
L{ion.core.process.outbox.Outbox} (sending, replies). It reaches the broker through an L{Exchange},
time through a clock, and the process only through the narrow L{Host}
(L{ion.core.process.interfaces}), so a test can drive it alone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from ion.core import exception as exc
from ion.core.deadline import ended_within
from ion.core.drops import Drops, cause_of
from ion.core.messaging import message as m
from ion.core.messaging.broker import settle
from ion.core.messaging.conversation import new_conversation
from ion.core.messaging.conversation.core import PARTICIPANT
from ion.core.messaging.conversation.manager import ConversationManager
from ion.core.process import context, poison, watchdog
from ion.core.process.giveback import JUDGED, REPLY_PERFORMATIVES, GiveBack
from ion.core.process.outbox import REPLY_KEY_SUFFIX, UnknownOpError
from ion.core.process.signals import SIGNAL

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from ion.core.process.interfaces import Exchange, Host
    from ion.core.security.policy import Policy

__all__ = ["REPLY_KEY_SUFFIX", "ProcessRuntime", "UnknownOpError"]

_GONE: Any = object()  # not among the handlers under way (any more)

#: How terminate awaits one of its steps: C{attempt(step, what)} is awaitable
#: and logs the step's failure instead of raising it.
Attempt = Callable[[Any, str], Awaitable[Any]]


class ProcessRuntime(GiveBack):
    """Takes deliveries for one process, runs its handlers and sends for it.

    @ivar consumers: tags of the request intake (mailbox, service queue).
    @ivar reply_consumer: the tag of the reply queue's consumer, once there is one.
    @ivar queues: the queues declared for the process.
    @ivar expired_dropped: requests dropped unrun because their caller's deadline passed.
    @ivar policy: the container's policy, which each request must pass (None: none set).
    """

    def __init__(self, host: Host) -> None:
        self._host = host
        self.log = host.log
        self.exchange: Exchange | None = None
        self.clock: IReactorTime | None = None
        self.conversations: ConversationManager | None = None
        self.consumers: list[str] = []
        self.reply_consumer: str | None = None
        self.queues: list[str] = []
        self.expired_dropped = 0
        self.policy: Policy | None = None  # the container's (security.policy), set at attach
        self.service = "<unattached>"  # the name the policy knows this process by
        self.concurrency = 0  # handlers at once (0: no limit); set at activate
        self.handler_limit: float | None = None  # set at activate
        self.max_redeliveries = 5  # set at activate
        self._me = self._reply_key = "<unattached>"  # (no routing key is)
        self._verify: m.Verify | None = None  # the signer's verifier of fresh deliveries
        self._place = context.Here()
        self._inflight = 0
        self._waiting: deque[m.Message] = deque()  # delivered, not started (concurrency)
        self._starting = False
        self._idle: list[Deferred[None]] = []
        self._running: dict[m.Message, Deferred[Any] | None] = {}  # handlers under way

    def attach(
        self,
        exchange: Exchange,
        clock: IReactorTime,
        pid: str,
        place: context.Here,
        rpc_timeout: float = 15.0,
        conversation_timeout: float = 60.0,
    ) -> None:
        """Bind to the process's exchange, clock, id and the place its handlers
        run; C{rpc_timeout} and C{conversation_timeout} are the process's config."""
        self.exchange = exchange
        self.max_message_size = exchange.max_message_size
        self.rpc_timeout = rpc_timeout
        self.conversation_timeout = conversation_timeout
        self.clock = clock
        self._me = pid
        self._verify = None  # (made again for this pid)
        self._reply_key = pid + REPLY_KEY_SUFFIX
        self._reply_queue = exchange.queue_name(self._reply_key)
        self._place = place
        self.drops = getattr(exchange, "drops", None) or Drops(clock)
        self.conversations = ConversationManager(pid, clock, drops=self.drops)

    @property
    def inflight(self) -> int:
        """How many handlers are under way (started, not finished)."""
        return self._inflight

    @property
    def waiting(self) -> tuple[m.Message, ...]:
        """The requests delivered but not started (the concurrency limit holds them)."""
        return tuple(self._waiting)

    def consumes(self, tag: str) -> bool:
        """Whether C{tag} is one of this process's consumers."""
        return tag == self.reply_consumer or tag in self.consumers

    # -- queues and consumers (the process's initialize, activate, terminate) ---

    async def open(self, intake: list[tuple[str, str]]) -> None:
        """Declare the reply queue and the C{intake} (queue, routing key) pairs'
        queues, and take replies."""
        exchange = self.exchange
        assert exchange is not None, "runtime is not attached"
        reply_queue = await exchange.declare_queue(self._reply_key, exclusive=True)
        self.queues.append(reply_queue)
        for queue, key in intake:
            if queue not in self.queues:
                await exchange.declare_queue(key, exclusive=key == self._me)
                self.queues.append(queue)
        # Replies are auto-acked: only this process waits for them, and one
        # it did not finish handling is of no use to anyone else.
        self.reply_consumer = await exchange.consume(reply_queue, self.deliver, 0, auto_ack=True)

    async def start_intake(self, intake: list[tuple[str, str]], prefetch: int) -> None:
        """Take requests from the C{intake} queues, C{prefetch} unacked at a time each."""
        exchange = self.exchange
        assert exchange is not None, "runtime is not attached"
        for queue, _key in intake:
            self.consumers.append(await exchange.consume(queue, self.deliver, prefetch))

    async def stop_intake(self, intake: list[tuple[str, str]], attempt: Attempt) -> None:
        """Stop taking requests from the C{intake} queues but the process's own:
        what arrives there is answered until it is deleted (L{close}). Each step
        goes through C{attempt}, which logs its failure instead of raising."""
        exchange = self.exchange
        assert exchange is not None, "runtime is not attached"
        mailbox = exchange.queue_name(self._me)
        pairs = zip(intake, self.consumers, strict=False)
        kept = [tag for (queue, _key), tag in pairs if queue == mailbox]
        for tag in self.consumers:
            if tag not in kept:
                await attempt(exchange.cancel(tag), "stopping intake")
        self.consumers[:] = kept

    def leave_shared_intake(self, intake: list[tuple[str, str]]) -> None:
        """Stop taking requests from the C{intake} queues but the process's own,
        without waiting (the process is in ERROR: other instances serve them)."""
        exchange = self.exchange
        assert exchange is not None, "runtime is not attached"
        mailbox = exchange.queue_name(self._me)
        for (queue, _key), tag in list(zip(intake, self.consumers, strict=False)):
            if queue != mailbox:
                self.consumers.remove(tag)
                exchange.cancel(tag).addErrback(lambda _: None)

    async def close(self, attempt: Attempt) -> None:
        """Stop taking replies, delete the process's own queues (a service's
        queue stays for its other instances) and stop the consumers left; each
        step through C{attempt}."""
        exchange = self.exchange
        assert exchange is not None, "runtime is not attached"
        if self.reply_consumer is not None:
            await attempt(exchange.cancel(self.reply_consumer), "stopping replies")
            self.reply_consumer = None
        own = {exchange.queue_name(key) for key in (self._me, self._reply_key)}
        for queue in self.queues:
            if queue in own:
                await attempt(exchange.delete_queue(queue), f"deleting {queue}")
        self.queues.clear()
        for tag in self.consumers:  # (gone with the queue, unless not deleted)
            await attempt(exchange.cancel(tag), "stopping intake")
        self.consumers.clear()

    # -- taking deliveries -----------------------------------------------------

    def deliver(self, delivery: Any) -> None:
        """Take one delivery: verify (signing on), decode, route to a conversation
        or handler, ack when done."""
        try:
            msg = m.decode(delivery.body, delivery, self._verifier(delivery))
        except (exc.MessageFormatError, exc.SignatureError) as e:
            self._bad_message(delivery, e, getattr(e, "headers", None))
            return
        try:
            m.check_headers(msg.headers)
        except exc.MessageFormatError as e:
            self._bad_message(delivery, e, msg.headers)
            return
        tap = self.exchange.tap  # type: ignore[union-attr]
        if tap is not None:
            tap.received(
                msg.headers, len(delivery.body), self._me, self._host.proc_name, msg.content
            )
        if msg.performative in REPLY_PERFORMATIVES and msg.protocol != "generic":
            settle(delivery)
            assert self.conversations is not None
            self.conversations.received(msg)
            return
        protocol = msg.protocol
        state = self._host.state
        if protocol == SIGNAL and state != "ACTIVE":
            settle(delivery)
            self._host.signal_inactive(msg)
            return
        if state != "ACTIVE" and not self._takes_while_inactive(msg, state):
            self._not_taken(msg)
            return
        if self.policy is not None and protocol in JUDGED and self._refused(msg):
            return
        if delivery.redelivered:
            counted = poison.broker_count(delivery)  # by a quorum queue: it runs as it is
            if not self._auto_acked(delivery) and (
                counted is None or counted > self.max_redeliveries
            ):
                # Its holder may have died of it: count the round, or dead-letter it.
                poisoned = poison.redelivered(self._host, msg, self.max_redeliveries)  # type: ignore[arg-type]
                Deferred.fromCoroutine(poisoned)
                return
        elif delivery.headers and poison.REDELIVERIES in delivery.headers:
            delivery.redelivered = True  # the copy poison sent round: it was delivered before
        if protocol == "rpc" or protocol == "request":
            conv = new_conversation(msg.conv_id, protocol, PARTICIPANT)  # type: ignore[arg-type]
            conv.feed("request")
            msg.conversation = conv
        elif protocol == "generic":
            assert self.conversations is not None
            try:
                timeout = self.conversation_timeout
                msg.conversation = self.conversations.generic_received(msg, timeout)
            except exc.ConversationError as e:
                self._bad_message(delivery, e)
                return
        if self.concurrency and self._inflight >= self.concurrency:
            self._waiting.append(msg)  # unacked: prefetch bounds how many wait
            return
        self._run(msg)

    def _verifier(self, delivery: Any) -> m.Verify | None:
        """What checks C{delivery}'s signature before it is decoded; None when
        signing is off or the container made the delivery itself (a signal
        injected for a process of its own never went through the broker)."""
        signer = getattr(self.exchange, "signer", None)
        if signer is None or getattr(delivery, "local", False):
            return None
        me = self._me
        headers = delivery.headers
        again = bool(delivery.redelivered) or bool(
            headers
            and poison.REDELIVERIES in headers
            and signer.vouches(
                delivery.body, headers[poison.REDELIVERIES], headers.get(poison.VOUCHER)
            )
        )
        if again:
            return signer.verifier(me, True)
        if self._verify is None:  # (the container's signer is set once, before any process)
            self._verify = signer.verifier(me)
        return self._verify

    def _takes_while_inactive(self, msg: m.Message, state: str) -> bool:
        """A message of a C{generic} conversation this process already holds is
        its own business while C{on_init} runs (READY) and while it terminates,
        as when ACTIVE: an answer to what those hooks asked."""
        return (
            msg.protocol == "generic"
            and state in ("READY", "TERMINATING")
            and self.conversations is not None
            and msg.conv_id in self.conversations.generic
        )

    # -- running handlers ------------------------------------------------------

    def _run(self, msg: m.Message) -> None:
        """Run the handler of C{msg}; L{_finish} answers and acks it."""
        expiry = msg.headers.get(m.EXPIRY)
        if expiry is not None and self._expired(msg, expiry):
            return
        self._inflight += 1
        host = self._host
        handler = host.handler_for(msg)
        if handler is None:
            error = UnknownOpError(
                f"{host.proc_name} has no operation {m.shown(msg.op, quote=True)}"
            )
            self._finish(msg, Failure(error))
            return
        # The handler runs here (its coroutine in a copy of this context): clients
        # made without arguments find this process, calls carry the request's user.
        user = msg.headers.get(m.USER_ID)
        place = self._place.of_user(user) if isinstance(user, str) and user else self._place
        token = context.entered(place)
        running = self._running
        running[msg] = None  # until its Deferred exists: a kill meanwhile abandons it
        try:
            result = handler(msg.content, msg.headers, msg)
            waited = context.waitable(result)
            if waited is None:
                if running.pop(msg, _GONE) is not _GONE:
                    self._finish(msg, result)
                return
        except BaseException:
            # SystemExit and KeyboardInterrupt too: a handler is user code, and
            # one op's sys.exit() must not stop a container serving many
            # processes (nor, raised into the broker link, drop the connection
            # and have the request redelivered forever). Its call is answered
            # with an error and the process stays ACTIVE, as for an async
            # handler, whose Deferred catches them anyway.
            if self._running.pop(msg, _GONE) is not _GONE:
                self._finish(msg, Failure())
            return
        finally:
            context.left(token)
        if msg not in self._running:  # killed while it started
            waited.cancel()
            return
        self._running[msg] = waited
        clock: Any = self.clock
        limit = watchdog.deadline(handler, self.handler_limit, msg.headers.get(m.EXPIRY),
                                  clock.seconds())  # fmt: skip
        if limit is None:
            waited.addBoth(self._finish_async, msg)
        else:
            watchdog.watch(waited, limit, clock, lambda result: self._finish_async(result, msg),
                           lambda seconds: self._cut_off(msg, seconds))  # fmt: skip

    def _cut_off(self, msg: m.Message, seconds: float) -> None:
        """The handler of C{msg} ran past its deadline: answer it with a timeout
        error and give back its slot; the handler is cancelled."""
        error = exc.HandlerTimeoutError(
            f"{self._host}: the handler of {msg.op!r} was cut off after {seconds:g}s (its deadline)"
        )
        self._finish_async(Failure(error), msg)

    def _expired(self, msg: m.Message, expiry: Any) -> bool:
        """Drop C{msg} (acked, counted) if its C{expiry} (the caller's deadline, ms
        since the epoch) has passed: nobody waits for its answer any more."""
        clock: Any = self.clock
        if not watchdog.passed(expiry, clock.seconds()):
            return False
        settle(msg.delivery)
        self.expired_dropped += 1
        self.log.debug("{proc}: {msg!r} dropped unrun: its caller's deadline passed",
                       proc=self._host, msg=msg)  # fmt: skip
        return True

    def _finish_async(self, result: Any, msg: m.Message) -> None:
        if self._running.pop(msg, _GONE) is _GONE:
            return  # abandoned: the process was killed
        try:
            self._finish(msg, result)
        except Exception:
            self.log.failure("{proc}: finishing {msg!r} failed", proc=self._host, msg=msg)

    def _finish(self, msg: m.Message, result: Any) -> None:
        """After a handler: answer an rpc/request if it did not, ack, count it done;
        then, if its error ends the process, begin that."""
        host = self._host
        crash = None
        try:
            owed = msg.protocol in ("rpc", "request") and not msg.replied
            # Nowhere to answer: a request that asks for none, or a forged one.
            lost = owed and not isinstance(msg.headers.get(m.REPLY_TO), str)
            if isinstance(result, Failure):
                if not (lost and result.check(exc.ApplicationError)):  # (counted below)
                    self._handler_error(msg, result)
                crash = host.crash_reason(result)
            if lost:
                detail = f"{msg!r}: {result.value}" if isinstance(result, Failure) else repr(msg)
                self.drops.dropped("answer to a message with no reply-to", detail=detail,
                                   sender=msg.sender, where=self._me, level="info")  # fmt: skip
            elif owed:
                if isinstance(result, Failure):
                    refusable = msg.protocol == "request" and msg.conversation.state == "REQUESTED"
                    if refusable and result.check(exc.Refuse):
                        reason = exc.describe(result.value)
                        self._answer(msg, "refusal", self.reply_refuse, reason, result.value.code)
                    else:
                        self._answer(msg, "error", self.reply_err, exception=result.value)
                else:
                    self._answer(msg, "result", self.reply_ok, result)
        except Exception:
            self.log.failure("{proc}: could not answer {msg!r}", proc=host, msg=msg)
        finally:
            settle(msg.delivery)
            self._inflight -= 1
            if self._waiting:  # the common case, no limit set, costs one test
                self._start_waiting()
            if self._inflight == 0 and self._idle:
                self._now_idle()
        if crash is not None:
            host.crash(crash)

    async def drain(self, timeout: float) -> None:
        """Wait until no handler is under way, for at most C{timeout} seconds."""
        if self._inflight == 0:
            return
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        if not await ended_within(d, timeout, self.clock):
            self.log.warn("{proc}: {n} handlers still running after {t}s; terminating anyway",
                          proc=self._host, n=self._inflight, t=timeout)  # fmt: skip

    def _start_waiting(self) -> None:
        """Start waiting deliveries while the concurrency allows (a loop, not a
        recursion: a handler that finishes at once comes back here)."""
        if self._starting:
            return
        self._starting = True
        try:
            while self._waiting and self._inflight < self.concurrency:
                self._run(self._waiting.popleft())
        finally:
            self._starting = False

    def _handler_error(self, msg: m.Message, failure: Failure) -> None:
        host = self._host
        if failure.check(exc.ApplicationError):
            # Expected: the caller's problem, not ours, and anyone can cause it,
            # so it is counted and logged at a bounded rate, as bad messages are.
            self.drops.dropped(cause_of(failure.value),
                               sender=msg.sender, where=self._me, detail=failure.value,
                               level="info", answered=True)  # fmt: skip
        else:
            # Answered (a 500): handled, so not logged as a Failure, which test
            # runners (trial) count as an unhandled error; the traceback goes as text.
            host.log.error("{proc}: handler for {op} raised:\n{traceback}", proc=host,
                           op=msg.op, traceback=failure.getTraceback().rstrip("\n"))  # fmt: skip

    def _answer(self, msg: m.Message, what: str, reply: Any, *a: Any, **kw: Any) -> None:
        """Send C{reply(msg, ...)}; one that cannot be encoded (too big, say) is the
        handler's bug, not the caller's: answer a 500 instead, at once."""
        try:
            reply(msg, *a, **kw)
        except exc.MessageFormatError as e:
            error = exc.IonError(f"the {what} of {msg.op!r} cannot be sent: {e}")
            self.log.error("{proc}: {err}", proc=self._host, err=error)
            self.reply_err(msg, exception=error)
