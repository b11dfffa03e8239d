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
    parts = urlsplit(spec.url)
    host = parts.hostname or "localhost"
    port = parts.port or (5671 if parts.scheme == "amqps" else 5672)
    if _probes.get((host, port)) == "":
        return None
    try:
        with socket.create_connection((host, port), timeout=1.0):
            _probes[(host, port)] = ""
            return None
    except OSError as e:
        return (
            f"RabbitMQ is not reachable at {host}:{port} ({type(e).__name__}: {e}); "
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
    """An L{IBroker} connection that records into L{Declarations} what it declares."""

    def __init__(self, conn: Any, declarations: Declarations) -> None:
        self._conn = conn
        self._declarations = declarations

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __repr__(self) -> str:
        return f"<Tracked {self._conn!r}>"

    def declare_exchange(self, name: str, *args: Any, **kwargs: Any) -> defer.Deferred[None]:
        self._declarations.exchanges[name] = None
        return self._conn.declare_exchange(name, *args, **kwargs)

    def declare_queue(self, name: str = "", *args: Any, **kwargs: Any) -> defer.Deferred[str]:
        flags = dict(zip(("exclusive", "auto_delete", "durable"), args, strict=False))
        flags.update(kwargs)
        transient = bool(flags.get("exclusive") or flags.get("auto_delete"))
        d = self._conn.declare_queue(name, *args, **kwargs)
        return d.addCallback(self._declarations.queue, transient)


class BrokerFactory:
    """New connections to one test system's broker, all recorded in L{declarations}.

    Local: every connection goes to one embedded broker made for this factory,
    as containers of one system share RabbitMQ. AMQP: each is a new
    C{AmqpBroker} connection (no reconnect: a lost broker fails the test).
    """

    def __init__(self, spec: BrokerSpec, reactor: Any) -> None:
        self.spec = spec
        self.reactor = reactor
        self.declarations = Declarations()
        self.embedded: Any = None
        if not spec.is_amqp:
            from ion.core.messaging.embedded import EmbeddedBroker

            self.embedded = EmbeddedBroker(reactor)

    def raw_connection(self) -> Any:
        """A new, unconnected and untracked connection."""
        if self.embedded is not None:
            return self.embedded.connection()
        from ion.core.messaging.amqp import AmqpBroker

        return AmqpBroker(self.reactor, self.spec.url, reconnect=False)

    def connection(self) -> TrackedConnection:
        """A new, unconnected connection that records its declarations."""
        return TrackedConnection(self.raw_connection(), self.declarations)

    async def cleanup(self, sysname: str) -> list[str]:
        """Delete what the system declared; return the queues that should have gone already
        (exclusive or auto-delete ones still there) or that could not be deleted.

        Call it after every container of the system has stopped. Shared queues (a
        service's, a named event subscription's) are meant to outlive their
        users, so they are deleted without being reported.
        """
        conn = self.raw_connection()
        await conn.connect()
        stale: list[str] = []
        try:
            for queue, transient in self.declarations.queues.items():
                if await conn.queue_exists(queue):
                    if transient:
                        stale.append(f"broker queue {queue} (sysname {sysname})")
                    await conn.delete_queue(queue)
            for exchange in self.declarations.exchanges:
                await conn.delete_exchange(exchange)
            for queue in self.declarations.queues:
                if await conn.queue_exists(queue):
                    stale.append(f"broker queue {queue} (sysname {sysname}) could not be deleted")
        finally:
            await conn.close()
        return stale
