"""Unit-test helpers that need no broker.

- L{process_factory}: one real process instance, initialized and ACTIVE, in an
  L{OfflineContainer} (no broker: what it publishes is recorded), with its
  service clients replaced by fakes (nameko's C{worker_factory}).
- L{replace_clients}: swap a process's clients for fakes (C{replace_dependencies}).
- L{call_op}: call one op of a process and get its L{Reply} (C{entrypoint_hook});
  offline through the process's own intake, live through the broker.
- L{next_op}: a Deferred for the next time a process handles an op (the
  original's C{defer_next_op}).

Recording processes (collect what they receive) are in L{ion.test.recording}.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from twisted.internet import defer
from twisted.python.failure import Failure

from ion.core import exception as exc
from ion.core.config import DEFAULTS, Config
from ion.core.messaging import message as m
from ion.core.process.manager import ProcessManager
from ion.core.process.process import REPLY_KEY_SUFFIX, Process
from ion.core.process.service import ServiceClient
from ion.test.waiting import Collector

_hooks = itertools.count(1)
_FINAL = frozenset({"inform_result", "failure", "refuse"})


class FakeDelivery:
    """A delivery that only records whether it was acked or rejected."""

    def __init__(self, body: bytes, routing_key: str = "", exchange: str = "") -> None:
        self.body = body
        self.routing_key = routing_key
        self.exchange = exchange
        self.headers: dict[str, Any] = {}
        self.redelivered = False
        self.acked = False
        self.rejected: bool | None = None  # None, or whether it was requeued

    def ack(self) -> None:
        self.acked = True

    def reject(self, requeue: bool = False) -> None:
        self.rejected = requeue


class _NoBroker:
    """The broker of an offline exchange: there is none, so it is never lost."""

    def on_connection_lost(self, callback: Callable[[Exception], None]) -> None:
        pass

    def on_returned(self, callback: Callable[[str, str, bytes], None]) -> None:
        pass

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        pass

    def on_consumer_failed(self, callback: Callable[[str, str, Exception], None]) -> None:
        pass


class OfflineExchange:
    """Stands in for a container's exchange manager without a broker.

    Every message a process publishes is decoded and kept in L{published} as
    C{(routing key, Message)}; events also in L{events}. A mandatory publish to a
    key nobody L{route}d fails as unroutable, so a call to a real service
    fails with L{NoSuchServiceError}: replace that client with a fake.
    """

    max_message_size: int = DEFAULTS["broker"]["max_message_size"]
    tap: Any = None  # records nothing
    drops: Any = None  # each runtime counts its own
    signer: Any = None  # signs nothing (an offline container is not signing)

    def __init__(self, sysname: str) -> None:
        self.broker = _NoBroker()
        self.sysname = sysname
        self.exchange_name = f"ion.{sysname}"
        self.events_exchange = f"ion.{sysname}.events"
        self.published: list[tuple[str, m.Message]] = []
        self.events: list[Any] = []
        self._routes: dict[str, Callable[[m.Message], None]] = {}
        self._tags = itertools.count(1)

    def route(self, key: str, receiver: Callable[[m.Message], None] | None) -> None:
        """Hand messages published with C{key} to C{receiver} (None: stop)."""
        if receiver is None:
            self._routes.pop(key, None)
        else:
            self._routes[key] = receiver

    def restoring(self, queue: str) -> bool:
        return False

    def queue_name(self, key: str) -> str:
        return f"{self.sysname}.{key}"

    async def declare_queue(self, key: str, exclusive: bool = False) -> str:
        return self.queue_name(key)

    async def declare_subscription(
        self, binding_key: str, name: str | None = None, owner: str = "subscriber"
    ) -> str:
        return self.queue_name(name or f"{owner}.events.{next(self._tags)}")

    def consume(
        self, queue: str, on_delivery: Any, prefetch: int, auto_ack: bool = False
    ) -> defer.Deferred[str]:
        return defer.succeed(f"offline-{next(self._tags)}")

    def cancel(self, tag: str) -> defer.Deferred[None]:
        return defer.succeed(None)

    def delete_queue(self, queue: str) -> defer.Deferred[None]:
        return defer.succeed(None)

    def publish(
        self, key: str, body: bytes, mandatory: bool = False, **_: Any
    ) -> defer.Deferred[None]:
        """Keep and route the message; the rest (C{report_returns}, C{expiration}) is the broker's."""
        msg = m.decode(body)
        self.published.append((key, msg))
        receiver = self._routes.get(key)
        if receiver is not None:
            receiver(msg)
        elif mandatory:
            return defer.fail(exc.UnroutableError(f"offline: nobody takes {key!r}"))
        return defer.succeed(None)

    def event_unheard(self, key: str) -> bool:
        return False  # every event is kept in events

    def publish_event(self, key: str, body: bytes, confirm: bool = False) -> defer.Deferred[None]:
        self.events.append(m.decode(body).content)
        return defer.succeed(None)

    def sent(self, op: str | None = None) -> list[m.Message]:
        """The requests and one-off messages published (not replies), optionally of one op."""
        return [
            msg
            for _key, msg in self.published
            if msg.performative == "request" and (op is None or msg.op == op)
        ]


class OfflineContainer:
    """Just enough of a container for processes to run without a broker."""

    def __init__(
        self, *, reactor: Any = None, sysname: str = "offline", config: Config | None = None
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415 - no reactor at import time
        self.reactor = reactor
        self.id = "offline"
        self.sysname = sysname
        self.config = config if config is not None else Config(DEFAULTS)
        self.exchange = OfflineExchange(sysname)
        self.tap = None  # no message tap: OfflineExchange.published holds what was sent
        self.hub = None  # no observer
        self.stopping = False
        self.proc_manager = ProcessManager(self)  # type: ignore[arg-type]

    async def spawn(self, target: Any, name: str | None = None, args: Any = None, config=None):
        return await self.proc_manager.spawn(target, name=name, args=args, config=config)

    async def terminate(self, proc_or_id: Process | str) -> None:
        await self.proc_manager.terminate(proc_or_id)

    async def stop(self) -> None:
        """Terminate every process, newest first."""
        self.stopping = True
        for proc in reversed(list(self.proc_manager.processes.values())):
            if proc.parent is None and str(proc.id) in self.proc_manager.processes:
                await self.proc_manager.terminate(proc)


def _fake_for(value: Any) -> Any:
    if isinstance(value, ServiceClient):
        fake = mock.create_autospec(type(value), instance=True)
        fake.target = value.target
        return fake
    return mock.MagicMock(name=type(value).__name__)


def replace_clients(proc: Process, *names: str, **replacements: Any) -> dict[str, Any]:
    """Replace attributes of C{proc} by fakes; return C{{name: fake}}.

    Each name in C{names} gets a fake made from its current value (an autospec
    of its client class: C{async} methods become C{AsyncMock}s); each keyword
    sets that attribute to the object given. With neither, every attribute
    that holds a L{ServiceClient} is faked.
    """
    if not names and not replacements:
        names = tuple(k for k, v in vars(proc).items() if isinstance(v, ServiceClient))
    done: dict[str, Any] = {}
    for name in names:
        if not hasattr(proc, name):
            raise AttributeError(f"{proc!r} has no attribute {name!r} to replace")
        done[name] = _fake_for(getattr(proc, name))
    done.update(replacements)
    for name, fake in done.items():
        setattr(proc, name, fake)
    return done


async def process_factory(
    cls: type[Process] | str,
    *,
    name: str | None = None,
    args: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    container: OfflineContainer | None = None,
    fake_clients: bool = True,
    **replacements: Any,
) -> Process:
    """An ACTIVE instance of C{cls} in an offline container, its clients faked.

    Its C{on_init} and C{on_activate} have run (clients made there are found).
    With C{fake_clients}, every L{ServiceClient} attribute becomes a fake;
    keywords replace attributes by the objects given. Stop it with
    C{await proc.container.stop()}.
    """
    container = container or OfflineContainer()
    proc = await container.spawn(cls, name=name, args=args, config=config)
    if fake_clients:
        replace_clients(proc)
    if replacements:
        replace_clients(proc, **replacements)
    return proc


@dataclass
class Reply:
    """The answer to L{call_op}: the final message's performative, content and headers."""

    performative: str
    content: Any
    headers: dict[str, Any] = field(default_factory=dict)
    agreed: bool = False  # a request was agreed to before its result

    @property
    def ok(self) -> bool:
        """Whether the op answered with a result (status OK)."""
        return self.performative == "inform_result" and self.headers.get(m.STATUS) != "ERROR"

    @property
    def refused(self) -> bool:
        return self.performative == "refuse"

    @property
    def error_code(self) -> int | None:
        """The code of an error or refusal (None for a result)."""
        return self.content.get("code") if not self.ok and isinstance(self.content, dict) else None

    @classmethod
    def from_message(cls, msg: m.Message, agreed: bool = False) -> Reply:
        return cls(str(msg.performative), msg.content, dict(msg.headers), agreed)


async def call_op(
    proc: Process,
    op: str,
    content: Any = None,
    *,
    protocol: str = "rpc",
    headers: dict[str, Any] | None = None,
    timeout: float = 5.0,
) -> Reply:
    """Call C{op} of C{proc} in an C{rpc} or C{request} conversation and return the L{Reply}.

    Error replies and refusals are returned, not raised. Offline (a process of
    L{process_factory}) the message enters the process's own intake directly;
    in a container it goes through the broker from a short-lived caller process.
    """
    if protocol not in ("rpc", "request"):
        raise ValueError(f"call_op speaks rpc or request, not {protocol!r}")
    if proc.container is None or proc.id is None:
        raise exc.IllegalStateError(f"{proc!r} is not spawned")
    if isinstance(proc.container.exchange, OfflineExchange):
        return await _call_offline(proc, op, content, protocol, headers or {}, timeout)
    caller = await proc.container.spawn(Process, name="call_op")
    agreed: list[m.Message] = []
    try:
        msg = await caller.call(
            proc.id, op, content, protocol=protocol, timeout=timeout, headers=headers,
            on_agree=agreed.append,
        )  # fmt: skip
        return Reply.from_message(msg, bool(agreed))
    except exc.ReceivedError as e:
        return Reply(str(e.headers.get(m.PERFORMATIVE)), e.content, dict(e.headers), bool(agreed))
    finally:
        await proc.container.terminate(caller)


async def _call_offline(
    proc: Process, op: str, content: Any, protocol: str, extra: dict[str, Any], timeout: float
) -> Reply:
    exchange: OfflineExchange = proc.container.exchange  # type: ignore[union-attr]
    caller = f"call_op.{next(_hooks)}@offline"
    reply_key = caller + REPLY_KEY_SUFFIX
    replies: Collector[m.Message] = Collector(proc.container.reactor)  # type: ignore[union-attr]
    headers = {
        m.SENDER: caller,
        m.SENDER_NAME: "call_op",
        m.RECEIVER: str(proc.id),
        m.REPLY_TO: reply_key,
        m.CONV_ID: f"{caller}#1",
        m.CONV_SEQ: 1,
        m.PROTOCOL: protocol,
        m.PERFORMATIVE: "request",
        m.OP: op,
        m.TS: int(time.time() * 1000),
        **extra,
    }
    exchange.route(reply_key, replies)
    try:
        proc.runtime.deliver(FakeDelivery(m.encode(headers, content), str(proc.id)))
        final = await replies.wait_until(lambda r: r.performative in _FINAL, timeout)
    except defer.TimeoutError:
        raise exc.TimeoutError(f"{proc} did not answer {op!r} within {timeout}s") from None
    finally:
        exchange.route(reply_key, None)
    agreed = any(r.performative == "agree" for r in replies.items)
    return Reply.from_message(final, agreed)


@dataclass
class OpCall:
    """One handled message, as L{next_op} reports it: what came in and what the handler gave."""

    content: Any
    headers: dict[str, Any]
    msg: m.Message
    result: Any = None  # the handler's value, or a Failure if it raised


def next_op(proc: Process, op: str, timeout: float = 5.0) -> defer.Deferred[OpCall]:
    """A Deferred that fires with an L{OpCall} once C{proc} has next handled C{op}.

    Fails with C{defer.TimeoutError} after C{timeout}s. Set it up before the
    message is sent.
    """
    attr = "op_" + op
    handler = getattr(proc, attr, None)
    if handler is None:
        raise AttributeError(f"{proc!r} has no operation {op!r}")
    d: defer.Deferred[OpCall] = defer.Deferred()

    def restore() -> None:
        if vars(proc).get(attr) is wrapper:
            del proc.__dict__[attr]

    def fire(result: Any, call: OpCall) -> Any:
        call.result = result
        if not d.called:
            d.callback(call)
        return result

    def wrapper(content: Any, headers: dict[str, Any], msg: m.Message) -> Any:
        restore()
        call = OpCall(content, headers, msg)
        try:
            result = handler(content, headers, msg)
        except Exception:
            fire(Failure(), call)
            raise
        if isinstance(result, defer.Deferred) or hasattr(result, "__await__"):
            return defer.ensureDeferred(result).addBoth(fire, call)
        return fire(result, call)

    setattr(proc, attr, wrapper)
    reactor = proc.container.reactor if proc.container is not None else None
    if reactor is None:
        from twisted.internet import reactor  # noqa: PLC0415

    def timed_out(result: Any, seconds: float) -> Any:
        restore()
        if isinstance(result, Failure):
            result.trap(defer.CancelledError)
            raise defer.TimeoutError(seconds, f"next_op({proc}, {op!r})")
        return result

    d.addTimeout(timeout, reactor, onTimeoutCancel=timed_out)
    return d


defer_next_op = next_op  # the original's name
