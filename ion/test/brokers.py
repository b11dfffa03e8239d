"""Which broker a test runs on, whether it is there, and what a test system declared on it.

A broker is named by one string: C{local} (the embedded broker, the default),
C{amqp} (RabbitMQ at C{$ION_TEST_AMQP_URL}, else C{amqp://guest:guest@127.0.0.1:5672/})
or an C{amqp://} / C{amqps://} URL. C{$ION_TEST_BROKER} sets the default for the
pytest option C{--ion-broker} and for L{ion.test.trial.IonTestCase}.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from twisted.internet import defer
from zope.interface import implementer

from ion.core.messaging.broker import IBroker

ENV_BROKER = "ION_TEST_BROKER"
ENV_AMQP_URL = "ION_TEST_AMQP_URL"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class BrokerUnavailable(Exception):
    """The broker a test asked for cannot be reached (the message says why and how to fix it)."""


@dataclass(frozen=True)
class BrokerSpec:
    """A broker choice: C{kind} is C{local} or C{amqp}; C{url} is set for C{amqp}."""

    kind: str
    url: str | None = None

    def __str__(self) -> str:
        return self.kind if self.url is None else self.url

    @property
    def is_amqp(self) -> bool:
        return self.kind == "amqp"


LOCAL = BrokerSpec("local")


def default_amqp_url() -> str:
    """C{$ION_TEST_AMQP_URL}, else RabbitMQ's default on 127.0.0.1."""
    return os.environ.get(ENV_AMQP_URL) or DEFAULT_AMQP_URL


def parse_broker(value: str | BrokerSpec | None, amqp_url: str | None = None) -> BrokerSpec:
    """A L{BrokerSpec} from C{local}, C{amqp} (at C{amqp_url}) or an AMQP URL; None means local.

    @raise ValueError: anything else.
    """
    if isinstance(value, BrokerSpec):
        return value
    text = (value or "local").strip()
    if text in ("local", "embedded"):
        return LOCAL
    if text in ("amqp", "rabbitmq"):
        return BrokerSpec("amqp", amqp_url or default_amqp_url())
    if text.startswith(("amqp://", "amqps://")):
        return BrokerSpec("amqp", text)
    raise ValueError(f"unknown broker {text!r}: use 'local', 'amqp' or an amqp:// URL")


def default_broker() -> BrokerSpec:
    """The broker C{$ION_TEST_BROKER} names (default: local)."""
    return parse_broker(os.environ.get(ENV_BROKER))


def on_ci() -> bool:
    """Whether C{$CI} is set: then a missing broker fails tests instead of skipping them."""
    return bool(os.environ.get("CI"))


_probes: dict[tuple[str, int], str] = {}


def unavailable_reason(spec: BrokerSpec) -> str | None:
    """Why C{spec}'s broker cannot be reached (a TCP probe), or None when it can.

    A failed probe is tried again next time; a good one is remembered.
    """
    if not spec.is_amqp:
        return None
    assert spec.url is not None
    failures = []
    for url in spec.url.split(","):  # a cluster's nodes: one reachable is enough
        parts = urlsplit(url.strip())
        host = parts.hostname or "localhost"
        port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
        if _probes.get((host, port)) == "":
            return None
        try:
            with socket.create_connection((host, port), timeout=1.0):
                _probes[(host, port)] = ""
                return None
        except OSError as e:
            failures.append(f"{host}:{port} ({type(e).__name__}: {e})")
    return (
        f"RabbitMQ is not reachable at {', '.join(failures)}; "
        "start it (rabbitmq-server -detached) or run with --ion-broker=local"
    )


def check_broker(spec: BrokerSpec) -> None:
    """Raise L{BrokerUnavailable} if C{spec}'s broker cannot be reached."""
    reason = unavailable_reason(spec)
    if reason is not None:
        raise BrokerUnavailable(reason)


def unique_sysname(prefix: str = "test") -> str:
    """A fresh sysname, C{<prefix>-<8 hex digits>}: tests on one broker never meet."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Declarations:
    """The exchanges and queues a test system declared (so they can be checked and removed)."""

    def __init__(self) -> None:
        self.exchanges: dict[str, None] = {}
        # name -> transient: exclusive or auto-delete, so gone once its users stop.
        # Shared queues (a service's, a named subscription's) are meant to stay.
        self.queues: dict[str, bool] = {}

    def queue(self, name: str, transient: bool) -> str:
        self.queues[name] = self.queues.get(name, True) and transient
        return name


@implementer(IBroker)
class TrackedConnection:
    """An L{IBroker} connection that records into L{Declarations} what it declares,
    and whether it was opened and closed (one left open is a test's leftover)."""

    def __init__(self, conn: Any, declarations: Declarations) -> None:
        self._conn = conn
        self._declarations = declarations
        self.opened = False
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __repr__(self) -> str:
        return f"<Tracked {self._conn!r}>"

    @property
    def left_open(self) -> bool:
        """Whether C{connect} was called and C{close} was not (a lost or still
        connecting connection holds a reconnecting service and timers too)."""
        return self.opened and not self.closed

    def connect(self) -> defer.Deferred[None]:
        self.opened = True
        return self._conn.connect()

    def close(self) -> defer.Deferred[None]:
        self.closed = True
        return self._conn.close()

    def declare_exchange(self, name: str, *args: Any, **kwargs: Any) -> defer.Deferred[None]:
        self._declarations.exchanges[name] = None
        return self._conn.declare_exchange(name, *args, **kwargs)

    def declare_queue(self, name: str = "", *args: Any, **kwargs: Any) -> defer.Deferred[str]:
        flags = dict(zip(("exclusive", "auto_delete", "durable"), args, strict=False))
        flags.update(kwargs)
        transient = bool(flags.get("exclusive") or flags.get("auto_delete"))
        d = self._conn.declare_queue(name, *args, **kwargs)
        return d.addCallback(self._declarations.queue, transient)


def _describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class BrokerFactory:
    """New connections to one test system's broker, all recorded: what they declare
    in L{declarations}, and the connections themselves in L{connections}.

    Local: every connection goes to one embedded broker made for this factory,
    as containers of one system share RabbitMQ. AMQP: each is a new
    C{AmqpBroker} connection (no reconnect: a lost broker fails the test).
    """

    def __init__(self, spec: BrokerSpec, reactor: Any) -> None:
        self.spec = spec
        self.reactor = reactor
        self.declarations = Declarations()
        self.connections: list[TrackedConnection] = []
        self.embedded: Any = None
        if not spec.is_amqp:
            from ion.core.messaging.embedded import EmbeddedBroker

            self.embedded = EmbeddedBroker(reactor)

    def raw_connection(self) -> Any:
        """A new, unconnected and untracked connection."""
        if self.embedded is not None:
            return self.embedded.connection()
        from ion.core.messaging.amqp import AmqpBroker

        assert self.spec.url is not None
        return AmqpBroker(self.reactor, self.spec.url, reconnect=False)

    def connection(self) -> TrackedConnection:
        """A new, unconnected connection that records its declarations (and is closed
        at teardown if the test leaves it open, see L{close_connections})."""
        conn = TrackedConnection(self.raw_connection(), self.declarations)
        self.connections.append(conn)
        return conn

    async def close_connections(self) -> tuple[list[str], list[str]]:
        """Close every connection handed out that is still open; return C{(left, failed)}:
        descriptions of those left open, and of closes that failed.

        Call it after every container of the system has stopped (their own
        connections are closed by then): an open one still owns its exclusive
        queues and consumers, which the cleanup could not delete or would miss.
        """
        left: list[str] = []
        failed: list[str] = []
        for conn in self.connections:
            if not conn.left_open:
                continue
            left.append(f"broker connection {conn.name} left open (connected, never closed)")
            try:
                await conn.close()
            except Exception as e:  # keep going: the others must close too
                failed.append(f"closing broker connection {conn.name} failed: {_describe_error(e)}")
        return left, failed

    async def cleanup(self, sysname: str) -> tuple[list[str], list[str]]:
        """Delete what the system declared; return C{(stale, failed)}: the queues that
        should have gone already (exclusive or auto-delete ones still there), and
        what could not be checked or deleted, with why.

        Call it after every container of the system has stopped and
        L{close_connections}. Every queue and exchange is tried, whatever
        failed before it. Shared queues (a service's, a named event
        subscription's) are meant to outlive their users, so they are deleted
        without being reported.
        """
        conn = self.raw_connection()
        await conn.connect()
        stale: list[str] = []
        failed: list[str] = []
        failed_names: set[str] = set()

        async def attempt(what: str, operation: Callable[..., Awaitable[Any]], name: str) -> Any:
            try:
                return await operation(name)
            except Exception as e:  # the rest must still be tried
                failed.append(f"{what} {name} (sysname {sysname}): {_describe_error(e)}")
                failed_names.add(name)
                return False

        try:
            for queue, transient in self.declarations.queues.items():
                if await attempt("checking broker queue", conn.queue_exists, queue):
                    if transient:
                        stale.append(f"broker queue {queue} (sysname {sysname})")
                    await attempt("deleting broker queue", conn.delete_queue, queue)
            for exchange in self.declarations.exchanges:
                await attempt("deleting broker exchange", conn.delete_exchange, exchange)
            for queue in self.declarations.queues:
                if queue in failed_names:  # its failure is reported already
                    continue
                if await attempt("checking broker queue", conn.queue_exists, queue):
                    stale.append(f"broker queue {queue} (sysname {sysname}) could not be deleted")
        finally:
            await conn.close()
        return stale, failed
