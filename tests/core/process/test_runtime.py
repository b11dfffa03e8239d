"""The process runtime alone: no container, no process, no reactor. A fake host
supplies the handlers; the runtime answers on an in-memory exchange; time is
a C{task.Clock}."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core import exception as exc
from ion.core.messaging import message as m
from ion.core.process import context
from ion.core.process.interfaces import Host
from ion.core.process.runtime import ProcessRuntime
from ion.test.fakes import FakeDelivery, OfflineExchange

ME = "unit.1@test"
CALLER = "caller.1@test.reply"


class FakeHost:
    """The process side: the ops it is given, and the crashes asked of it."""

    proc_name = "unit"
    sysname = "test"
    user_id = None

    def __init__(self, **ops: Any) -> None:
        self.log = Logger(namespace="test.runtime", source=self)
        self.state = "ACTIVE"
        self.ops = ops
        self.crashed: list[str] = []

    def handler_for(self, msg: m.Message) -> Any:
        return self.ops.get(msg.op)

    def signal_inactive(self, msg: m.Message) -> None:
        """Signals do not reach these tests."""

    def crash_reason(self, failure: Failure) -> str | None:
        return None

    def crash(self, reason: str) -> None:
        self.crashed.append(reason)


def make(**ops: Any) -> tuple[ProcessRuntime, OfflineExchange, Clock]:
    """A runtime attached to an in-memory exchange and a clock at 1000 s."""
    clock = Clock()
    clock.advance(1_000)
    exchange = OfflineExchange("test")
    host: Host = FakeHost(**ops)
    runtime = ProcessRuntime(host)
    runtime.attach(exchange, clock, ME, context.Here())
    return runtime, exchange, clock


def request(op: str, content: Any = None, n: int = 1, **extra: Any) -> FakeDelivery:
    """A delivery of an rpc request to C{ME}'s own queue."""
    headers = {
        m.SENDER: "caller.1@test",
        m.SENDER_NAME: "caller",
        m.RECEIVER: ME,
        m.REPLY_TO: CALLER,
        m.CONV_ID: f"caller.1@test#{n}",
        m.CONV_SEQ: 1,
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "request",
        m.OP: op,
        **extra,
    }
    return FakeDelivery(m.encode(headers, content), ME)


def answers(exchange: OfflineExchange) -> list[tuple[str, Any]]:
    return [(msg.headers[m.STATUS], msg.content) for key, msg in exchange.published]


def test_a_delivery_runs_its_handler_and_is_acked_and_answered() -> None:
    """The op's handler runs with the request's content; its result is the
    answer, and the delivery is acked once it is sent."""
    runtime, exchange, _ = make(echo=lambda content, headers, msg: {"echo": content})
    delivery = request("echo", "hi")
    runtime.deliver(delivery)
    assert answers(exchange) == [(m.STATUS_OK, {"echo": "hi"})]
    assert delivery.acked and runtime.inflight == 0


def test_an_unknown_op_is_answered_with_an_error() -> None:
    """A request for an op the host has no handler for is answered 400 and acked."""
    runtime, exchange, _ = make()
    delivery = request("nothing")
    runtime.deliver(delivery)
    [(status, content)] = answers(exchange)
    assert status == m.STATUS_ERROR and content["code"] == exc.BAD_REQUEST
    assert delivery.acked


def test_the_concurrency_limit_holds_deliveries_waiting() -> None:
    """With a limit of one, later deliveries wait, unacked and in order, and
    start one by one as the handler before them finishes."""
    gates: dict[int, defer.Deferred[Any]] = {}

    def work(content: int, headers: Any, msg: m.Message) -> defer.Deferred[Any]:
        gates[content] = defer.Deferred()
        return gates[content]

    runtime, exchange, _ = make(work=work)
    runtime.concurrency = 1
    deliveries = [request("work", i, n=i) for i in range(3)]
    for delivery in deliveries:
        runtime.deliver(delivery)
    assert list(gates) == [0] and runtime.inflight == 1
    assert [msg.content for msg in runtime.waiting] == [1, 2]
    assert not any(d.acked for d in deliveries)
    gates[0].callback("zero")
    assert list(gates) == [0, 1] and [msg.content for msg in runtime.waiting] == [2]
    assert [d.acked for d in deliveries] == [True, False, False]
    gates[1].callback("one")
    gates[2].callback("two")
    assert answers(exchange) == [(m.STATUS_OK, "zero"), (m.STATUS_OK, "one"), (m.STATUS_OK, "two")]
    assert all(d.acked for d in deliveries) and runtime.inflight == 0


def test_a_handler_past_its_deadline_is_cut_off_on_the_clock() -> None:
    """A handler still running at the runtime's handler limit is answered with a
    timeout error, its delivery acked and its slot given back; it is cancelled."""
    hung: defer.Deferred[Any] = defer.Deferred()
    cancelled: list[bool] = []
    hung.addErrback(lambda f: cancelled.append(f.check(defer.CancelledError) is not None))
    runtime, exchange, clock = make(hang=lambda content, headers, msg: hung)
    runtime.handler_limit = 2.0
    delivery = request("hang")
    runtime.deliver(delivery)
    clock.advance(1.9)
    assert answers(exchange) == [] and runtime.inflight == 1 and not delivery.acked
    clock.advance(0.2)
    [(status, content)] = answers(exchange)
    assert status == m.STATUS_ERROR and "cut off after 2s" in content["message"]
    assert delivery.acked and runtime.inflight == 0 and cancelled == [True]
    assert clock.getDelayedCalls() == []


def test_an_expired_request_is_dropped_unrun() -> None:
    """A request whose expiry (its caller's deadline, ms) passed by the runtime's
    clock is acked and counted, neither run nor answered; one in time runs."""
    ran: list[Any] = []
    runtime, exchange, _ = make(work=lambda content, headers, msg: ran.append(content))
    late = request("work", "late", n=1, **{m.EXPIRY: 1_000_000})
    in_time = request("work", "in time", n=2, **{m.EXPIRY: 1_000_001})
    runtime.deliver(late)
    runtime.deliver(in_time)
    assert ran == ["in time"] and runtime.expired_dropped == 1
    assert late.acked and in_time.acked
    assert answers(exchange) == [(m.STATUS_OK, None)]


def done(coro: Any) -> Any:
    """Run C{coro}, which the in-memory exchange lets finish at once; its result."""
    d = defer.Deferred.fromCoroutine(coro)
    assert d.called, "it waited"
    result: list[Any] = []
    d.addBoth(result.append)
    if isinstance(result[0], Failure):
        result[0].raiseException()
    return result[0]


def test_queues_are_opened_and_closed_in_steps() -> None:
    """open declares the reply queue and the intake's and takes replies;
    stop_intake leaves only the process's own queue consumed; close deletes
    the process's own queues (a service's stays) and stops every consumer."""
    runtime, exchange, _ = make()
    mailbox, service = exchange.queue_name(ME), exchange.queue_name("svc")
    intake = [(mailbox, ME), (service, "svc")]
    done(runtime.open(intake))
    assert runtime.queues == [exchange.queue_name(ME + ".reply"), mailbox, service]
    assert runtime.reply_consumer is not None and runtime.consumers == []
    done(runtime.start_intake(intake, prefetch=4))
    own, shared = runtime.consumers
    assert runtime.consumes(own) and runtime.consumes(shared)
    steps: list[str] = []

    async def attempt(step: Any, what: str) -> None:
        steps.append(what)
        await step

    done(runtime.stop_intake(intake, attempt))
    assert runtime.consumers == [own] and steps == ["stopping intake"]
    done(runtime.close(attempt))
    assert steps[1:] == [
        "stopping replies",
        f"deleting {exchange.queue_name(ME + '.reply')}",
        f"deleting {mailbox}",
        "stopping intake",
    ]
    assert runtime.queues == [] and runtime.consumers == [] and runtime.reply_consumer is None


def test_leaving_the_shared_intake_keeps_the_process_own_queue() -> None:
    """leave_shared_intake stops the consumers of a service's queue at once and
    keeps the one of the process's own queue."""
    runtime, exchange, _ = make()
    intake = [(exchange.queue_name(ME), ME), (exchange.queue_name("svc"), "svc")]
    done(runtime.open(intake))
    done(runtime.start_intake(intake, prefetch=4))
    own, shared = runtime.consumers
    runtime.leave_shared_intake(intake)
    assert runtime.consumers == [own] and not runtime.consumes(shared)
