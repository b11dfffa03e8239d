"""The connection under an L{ion.core.messaging.amqp.AmqpBroker}, kept up: the
first connect and its verdict, the handshake, loss, reconnects with backoff
(Twisted's C{ClientService}) and close, as one state machine (L{TRANSITIONS}).

Each TCP connection the service makes is prepared by L{Link._prepare}: pika's
AMQP handshake, then the broker's channels (and, on a reconnect, its topology
replayed). Twisted's C{ClientService} has no transition for a preparation that
fails as its connection drops, nor for any answer once it is stopping, so the
preparation never fails: a failed handshake aborts its connection and is kept
as the reason (the service then sees a connection made and lost, and retries),
and once the link is closing it never answers at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from automat import NoTransition, TypeMachineBuilder
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, protocol, task
from twisted.logger import Logger

from ion.core.deadline import ended_within
from ion.core.exception import (
    BrokerError,
    BrokerRefusedError,
    ConnectionClosedError,
    ConnectionLostError,
    IllegalStateError,
)
from ion.core.fsm import declare
from ion.core.messaging.amqp_connection import AmqpParameters, describe, is_refusal, protocol_class
from ion.core.messaging.amqp_nodes import NodeRotation, node_name

__all__ = ["Link", "TRANSITIONS"]

_log = Logger()


class LinkInputs(Protocol):
    def connect(self) -> None:
        "connect() was called: the first attempt, or again after a failed one."

    def give_up(self) -> None:
        "The first attempt failed; connect() may be called again."

    def recover(self) -> None:
        "A reconnect's channels are open; the topology is being declared again."

    def opened(self) -> None:
        "A handshake finished: operations are taken."

    def handshake_failed(self) -> None:
        "A connection was made, but its handshake failed."

    def lost(self) -> None:
        "The connection dropped."

    def close(self) -> None:
        "close() was called."

    def closed(self) -> None:
        "The connection and the reconnecting service have stopped."


@dataclass(slots=True)
class LinkCore:
    state: str = "new"


builder = TypeMachineBuilder(LinkInputs, LinkCore)
NEW = builder.state("new")
CONNECTING = builder.state("connecting")
OPEN = builder.state("open")
LOST = builder.state("lost")
RECOVERING = builder.state("recovering")
CLOSING = builder.state("closing")
CLOSED = builder.state("closed")

TRANSITIONS = [
    (NEW, LinkInputs.connect, CONNECTING),
    (CONNECTING, LinkInputs.opened, OPEN),
    (CONNECTING, LinkInputs.lost, CONNECTING),  # the handshake then fails: the verdict
    (CONNECTING, LinkInputs.handshake_failed, CONNECTING),
    (CONNECTING, LinkInputs.give_up, NEW),
    (OPEN, LinkInputs.lost, LOST),
    (LOST, LinkInputs.lost, LOST),  # a reconnect's connection dropped mid-handshake
    (LOST, LinkInputs.handshake_failed, LOST),
    (LOST, LinkInputs.recover, RECOVERING),
    (RECOVERING, LinkInputs.opened, OPEN),
    (RECOVERING, LinkInputs.lost, LOST),
    (RECOVERING, LinkInputs.handshake_failed, LOST),
    *((state, LinkInputs.close, CLOSING) for state in (NEW, CONNECTING, OPEN, LOST, RECOVERING)),
    (CLOSING, LinkInputs.closed, CLOSED),
]
declare(builder, TRANSITIONS)
Machine = builder.build()


class _Factory(protocol.Factory):
    noisy = False

    def __init__(self, link: Link) -> None:
        self.link = link

    def buildProtocol(self, addr: Any) -> Any:
        link = self.link
        proto = protocol_class()(link.pika_params, custom_reactor=link.reactor)
        proto.factory = self
        proto.on_lost = link._protocol_lost
        return proto


class Link:
    """One AMQP connection, reconnected after a loss (with C{reconnect}), to
    whichever node of C{nodes} answers first in turn.

    @param open_channels: opens the owner's channels on a new connection (L{proto}).
    @param replay: declares the owner's topology again and resumes its consumers;
        returns whether all of it is back (if not, the owner calls L{restored} later).
    @param before_close: runs first thing in L{close} (acks still owed go out).
    """

    def __init__(
        self,
        reactor: Any,
        nodes: NodeRotation,
        name: str,
        pika_params: Any,
        *,
        open_channels: Callable[[], Awaitable[None]],
        replay: Callable[[], Awaitable[bool]],
        before_close: Callable[[], None],
        reconnect: bool = True,
        max_retry_delay: float = 10.0,
        handshake_timeout: float = 10.0,
    ) -> None:
        self.reactor = reactor
        self.handshake_timeout = handshake_timeout
        self.nodes = nodes
        self.name = name
        self.pika_params = pika_params
        self.core = LinkCore()
        self.proto: Any = None  # the pika protocol while its handshake got through
        self.error: BrokerError | None = None  # why the connection was lost
        self.reconnect = reconnect
        self._machine = Machine(self.core)
        self._open_channels = open_channels
        self._replay = replay
        self._before_close = before_close
        self._max_retry_delay = max_retry_delay
        self._service: ClientService | None = None
        self._closing: defer.Deferred[None] | None = None
        self._generation = 0  # handshakes that got through
        self._complete = True  # the last replay restored everything
        self._handshake_error: BaseException | None = None
        self._failed_handshakes = 0  # in a row
        self._first_failures = 0  # attempts of the first connect that failed
        self._verdict: defer.Deferred[BaseException | None] | None = None
        self._lost_callbacks: list[Callable[[ConnectionLostError], None]] = []
        self._reconnected_callbacks: list[Callable[[], None]] = []

    @property
    def state(self) -> str:
        return self.core.state

    @property
    def params(self) -> AmqpParameters:
        """The node connected to (or last tried)."""
        return self.nodes.current

    def _step(self, name: str) -> None:
        try:
            getattr(self._machine, name)()
        except NoTransition:
            raise IllegalStateError(
                f"{self.name}: {name!r} is not allowed when {self.core.state}"
            ) from None

    def on_connection_lost(self, callback: Callable[[ConnectionLostError], None]) -> None:
        self._lost_callbacks.append(callback)

    def on_reconnected(self, callback: Callable[[], None]) -> None:
        self._reconnected_callbacks.append(callback)

    def gone(self, what: str = "") -> BrokerError:
        """The error for an operation refused in the current state."""
        suffix = f" ({what})" if what else ""
        state = self.core.state
        if state in ("lost", "recovering"):
            again = "; reconnecting" if self.reconnect else ""
            return ConnectionLostError(f"{self.error}{again}{suffix}")
        if state == "open":  # a channel went away under an open connection
            return ConnectionLostError(f"{self.name}: channel closed{suffix}")
        return ConnectionClosedError(f"{self.name} is {state}{suffix}")

    # --- connecting ---------------------------------------------------------------------------

    def connect(self) -> defer.Deferred[None]:
        if self.core.state == "open":
            return defer.succeed(None)
        if self.core.state != "new":
            return defer.fail(self.gone(f"cannot connect: {self.core.state}"))
        self._step("connect")
        self._failed_handshakes = 0
        self._first_failures = 0
        self._verdict = defer.Deferred()
        self.nodes.on_failed = self._attempt_failed
        policy = backoffPolicy(initialDelay=0.5, maxDelay=self._max_retry_delay, factor=2.0)
        endpoint: Any = self.nodes  # an IStreamClientEndpoint (mypy does not read zope's)
        self._service = ClientService(
            endpoint,
            _Factory(self),
            # A failed handshake is a connection made (which resets the service's
            # count) and lost (which counts one): the rest of the run counts here.
            retryPolicy=lambda failed: self.nodes.retry_delay(
                failed + max(0, self._failed_handshakes - 1), policy
            ),
            clock=self.reactor,
            prepareConnection=self._prepare,
        )
        self._service.startService()
        return defer.Deferred.fromCoroutine(self._first_connect(self._verdict))

    def _attempt_failed(self, error: BaseException) -> None:
        """An attempt to connect to a node failed (TCP, TLS or the AMQP handshake)."""
        verdict = self._verdict
        if self.core.state != "connecting" or verdict is None or verdict.called:
            if self._generation and self.core.state in ("lost", "recovering"):
                _log.warn("{name}: reconnecting to {node} failed: {error}", name=self.name,
                          node=node_name(self.params), error=describe(error))  # fmt: skip
            return
        self._first_failures += 1
        # The first connect fails once every node failed once, or at once when
        # turned away: the nodes of a cluster share their users.
        if is_refusal(error) or self._first_failures >= len(self.nodes):
            verdict.callback(error)
        else:
            _log.warn("{name}: cannot connect to {node}: {error}; trying the next node",
                      name=self.name, node=node_name(self.params), error=describe(error))  # fmt: skip

    async def _first_connect(self, verdict: defer.Deferred[BaseException | None]) -> None:
        error = await verdict
        if error is None:
            return
        if self.core.state in ("closing", "closed"):
            raise ConnectionClosedError(f"{self.name} was closed while connecting") from None
        self._step("give_up")
        # Not from inside the ClientService's own transition (it refuses re-entry).
        await task.deferLater(self.reactor, 0, self._service.stopService)  # type: ignore[union-attr]
        kind = BrokerRefusedError if is_refusal(error) else BrokerError
        where = self.params.url
        if len(self.nodes) > 1 and not is_refusal(error):
            where = f"any of {', '.join(node_name(a) for a in self.nodes.addresses)}"
        raise kind(f"cannot connect to {where}: {describe(error)}") from None

    async def _prepare(self, proxy: Any) -> None:
        """Called by the ClientService on each new connection; it is ours once this returns."""
        proto = getattr(proxy, "_protocol", proxy)  # the ClientService hands us a proxy
        self._handshake_error = None
        expired: list[bool] = []
        handshake = defer.Deferred.fromCoroutine(self._handshake(proto, expired))

        def expire() -> None:
            # pika times out no handshake on this adapter, and heartbeats start
            # only after it: a peer that takes the connection and says nothing
            # would hold the link here for ever. Dropping the connection fails
            # whatever step the handshake is at, wherever it would catch a cancel.
            expired.append(True)
            proto.transport.abortConnection()
            handshake.cancel()

        timer = self.reactor.callLater(self.handshake_timeout, expire)
        try:
            await handshake
        except Exception as caught:
            error: BaseException = caught
            if expired:
                wait = self.handshake_timeout
                error = BrokerError(f"no answer to the AMQP handshake within {wait:g}s")
            if self.proto is proto:
                self.proto = None
            proto.transport.abortConnection()
            if self.core.state in ("closing", "closed") or isinstance(error, defer.CancelledError):
                if timer.active():
                    timer.cancel()
                await defer.Deferred()  # never fires: the stopping service waits for the loss
            self._handshake_error = proto.first_error or error
            self._failed_handshakes += 1
            self._step("handshake_failed")
            self._attempt_failed(self._handshake_error)
            return
        finally:
            if timer.active():
                timer.cancel()
        self._failed_handshakes = 0
        _log.info("{name} connected to {url}", name=self.name, url=self.params.url)
        if self._verdict is not None and not self._verdict.called:
            self._verdict.callback(None)
        if self._generation > 1 and self._complete:
            self.restored()

    def restored(self) -> None:
        """Tell the L{on_reconnected} callbacks (soon) that everything is back."""
        for callback in list(self._reconnected_callbacks):
            self.reactor.callLater(0, callback)

    async def _handshake(self, proto: Any, expired: list[bool]) -> None:
        await proto.ready
        if self.core.state in ("closing", "closed"):
            raise ConnectionClosedError(f"{self.name} is closed")
        self.proto = proto
        await self._open_channels()
        self._complete = True
        if self._generation:
            self._step("recover")
            self._complete = await self._replay()
        if expired:  # a step took the timeout's cancel for its own failure
            raise defer.CancelledError()
        self._step("opened")
        self._generation += 1
        self.error = None

    def _protocol_lost(self, proto: Any, reason: Any) -> None:
        """The TCP connection of C{proto} ended; pika has not torn its channels down yet."""
        if proto is not self.proto:
            return
        self.proto = None
        if self.core.state in ("closing", "closed"):
            return
        first = self.core.state == "open"
        self._step("lost")
        self.error = ConnectionLostError(
            f"{self.name}: connection to broker node {node_name(self.params)} lost "
            f"({self.params.url}): {describe(proto.first_error)}"
        )
        if not self.reconnect:
            self.reactor.callLater(0, self._service.stopService)  # type: ignore[union-attr]
        if first:
            _log.warn("{error}", error=self.error)
            for callback in list(self._lost_callbacks):
                self.reactor.callLater(0, callback, self.error)

    # --- closing ------------------------------------------------------------------------------

    def close(self) -> defer.Deferred[None]:
        if self.core.state == "closed":
            return defer.succeed(None)
        if self._closing is None:
            self._closing = defer.Deferred.fromCoroutine(self._close())
        d: defer.Deferred[None] = defer.Deferred()
        self._closing.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    async def _close(self) -> None:
        self._step("close")
        if self._verdict is not None and not self._verdict.called:
            self._verdict.callback(ConnectionClosedError(f"{self.name} is closing"))
        proto = self.proto
        self._before_close()
        try:
            if proto is not None and proto.is_open:
                # A peer gone silent never answers close: wait as long as for a
                # handshake, then drop the connection.
                if not await ended_within(
                    _watch(proto.close()), self.handshake_timeout, self.reactor
                ):
                    _log.warn("{name}: no answer to close within {t:g}s; dropping the connection",
                              name=self.name, t=self.handshake_timeout)  # fmt: skip
                    proto.transport.abortConnection()
        finally:
            if self._service is not None:
                await self._service.stopService()
            self._step("closed")
            _log.info("{name} closed", name=self.name)


def _watch(d: defer.Deferred[Any]) -> defer.Deferred[None]:
    """A Deferred that fires when C{d} does (cancelling it leaves C{d}, pika's, alone)."""
    watcher: defer.Deferred[None] = defer.Deferred()

    def fired(result: Any) -> Any:
        if not watcher.called:
            watcher.callback(None)
        return result

    d.addBoth(fired)
    return watcher
