"""The observer's web view as a service of the container (L{WebView}).

It listens on C{web.listen} (C{HOST:PORT}, or C{PORT} for 127.0.0.1; port 0
picks a free one) once the container has booted, and logs
C{observer web view at http://HOST:PORT/}. A host that is not loopback is
served only when given, with a warning: anyone on the network can read the
system's names and traffic there. While it runs the container has an
L{EventHub} (C{container.hub}) fed by its announcements and its tap, and
the view has a token (never logged; written, mode 0600, to
C{web.token_file} when set) that POSTed actions must carry.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, ensureDeferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ion.core.exception import ConfigurationError, StartupError
from ion.core.observe import hub as hub_mod
from ion.core.observe.arcs import kind_of
from ion.core.observe.web.watch import SystemWatch
from ion.core.process.implicit import ImplicitProcess
from ion.core.security.token_file import remove_token, write_token

if TYPE_CHECKING:
    from twisted.web.http import Request

    from ion.core.cc.container import Container

log = Logger()

LOOPBACK = "127.0.0.1"
Q_INTERVAL = 2.0  # seconds between queue depth samples while a stream is open


def parse_listen(value: Any, what: str = "web.listen (--web)") -> tuple[str, int]:
    """C{(host, port)} of a C{web.listen} value: C{PORT} (on 127.0.0.1) or
    C{HOST:PORT}, the host an IPv4 address or C{localhost}.

    @raise ConfigurationError: naming C{what} and the value.
    """
    bad = ConfigurationError(
        f"{what}: expected PORT or HOST:PORT (an IPv4 address or localhost, "
        f"port 0-65535; 0 picks a free one), not {value!r}"
    )
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad
    host, _, port = str(value).strip().rpartition(":")
    host = host or LOOPBACK
    if host == "localhost":
        host = LOOPBACK
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise bad from None
    if not port.isdigit() or not port.isascii() or int(port) > 65535:
        raise bad
    return host, int(port)


def is_loopback(host: str) -> bool:
    return ipaddress.IPv4Address(host).is_loopback


class WebView(Service):
    """The web view of one container (its child service, named C{web}).

    @ivar url: C{http://HOST:PORT/} once listening, else None.
    @ivar token: what C{X-Ion-Token} must be for an action.
    @ivar hub: the live events (also C{container.hub}) while running.
    """

    name = "web"  # type: ignore[assignment]

    def __init__(self, container: Container, reactor: Any = None) -> None:
        self.container = container
        self.reactor = reactor if reactor is not None else container.reactor
        config = container.config
        self.host, self.port = parse_listen(config.get("web.listen"))
        self.actions = config.get("web.actions", False) is True
        token_file = config.get("web.token_file")
        if token_file is not None and not isinstance(token_file, str):
            raise ConfigurationError(f"web.token_file: expected a file name, not {token_file!r}")
        self.token_file = os.path.expanduser(token_file) if token_file else None
        self.token = ""
        self.url: str | None = None
        self.bound_port: int | None = None
        self.hub: hub_mod.EventHub | None = None
        self.caller = ImplicitProcess(container, "webview")
        self.streams: set[Request] = set()
        self.known_queues: dict[str, str] = {}  # queue -> service, as last listed
        self._listening: Any = None  # IListeningPort
        self._stop_tap: Any = None
        self._sampler: LoopingCall | None = None
        self.watch = SystemWatch(self)

    # -- life ---------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.token = secrets.token_urlsafe(24)
        self.hub = hub_mod.EventHub()
        self.container.hub = self.hub
        tap = self.container.tap
        if tap is not None:
            self._stop_tap = tap.listen(self._row)

    async def boot(self) -> None:
        """Listen (the container calls this once its apps have booted)."""
        from ion.core.observe.web.resources import make_site

        if self.token_file:
            write_token(self.token_file, self.token, "web.token_file")
        endpoint = TCP4ServerEndpoint(self.reactor, self.port, interface=self.host)
        try:
            self._listening = await endpoint.listen(make_site(self))
        except Exception as e:
            raise StartupError(f"web view: cannot listen on {self.host}:{self.port}: {e}") from e
        self.bound_port = self._listening.getHost().port
        self.url = f"http://{self.host}:{self.bound_port}/"
        if is_loopback(self.host):
            log.info("observer web view at {url}", url=self.url)
        else:
            log.warn("observer web view at {url}: {host} is not loopback, so it is "
                     "reachable from the network", url=self.url, host=self.host)  # fmt: skip

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        if self._stop_tap is not None:
            self._stop_tap()
            self._stop_tap = None
        if self.container.hub is self.hub:
            self.container.hub = None
        self._stop_sampling()
        self.watch.stop()
        for request in list(self.streams):
            transport: Any = request.transport
            transport.abortConnection()  # (a reader that stopped reading would hold it)
        self.streams.clear()
        if self.token_file:
            remove_token(self.token_file)  # the token dies with the view
        self.url = None
        listening, self._listening = self._listening, None
        if listening is None:
            return Deferred.fromCoroutine(_nothing())
        d = listening.stopListening()
        return d if isinstance(d, Deferred) else Deferred.fromCoroutine(_nothing())

    # -- checks -------------------------------------------------------------------

    def host_allowed(self, header: bytes | None) -> bool:
        """Whether a request's C{Host} names this server, with its port: its
        bound host (or localhost when bound to loopback; any IPv4 address or
        localhost when bound to every interface). A page of another name (DNS
        rebinding) must not read it."""
        if header is None:
            return False
        host, _, port = header.decode("latin-1").lower().rpartition(":")
        if not host:  # no port: only the default one
            host, port = port, "80"
        if port != str(self.bound_port):
            return False
        if self.host == "0.0.0.0":
            return host == "localhost" or _is_ipv4(host)
        return host == self.host or (is_loopback(self.host) and host == "localhost")

    # -- feeds ------------------------------------------------------------------

    def _row(self, row: dict[str, Any]) -> None:
        if self.hub is not None:
            row["kind"] = kind_of(row)  # (a fresh dict for each listener)
            self.hub.publish(hub_mod.MSG, row)

    def stream_opened(self, request: Request) -> None:
        self.streams.add(request)
        self.watch.start()
        if self._sampler is None:
            self._sampler = LoopingCall(self._sample_queues)
            self._sampler.clock = self.reactor
            self._sampler.start(Q_INTERVAL, now=True).addErrback(
                lambda f: log.failure("queue sampling failed", f)
            )

    def stream_closed(self, request: Request) -> None:
        self.streams.discard(request)
        if not self.streams:
            self._stop_sampling()
            self.watch.stop()

    def _stop_sampling(self) -> None:
        sampler, self._sampler = self._sampler, None
        if sampler is not None and sampler.running:
            sampler.stop()

    def service_queues(self) -> dict[str, str]:
        """The service queues known here: this container's shared queues and
        those last listed (L{ion.core.observe.web.api.queues}), queue -> service."""
        ex = self.container.exchange
        found = {q: q[len(ex.sysname) + 1 :] for q in ex.shared_queues}
        return {**found, **self.known_queues}

    async def queue_depths(self, names: dict[str, str]) -> dict[str, tuple[int, int] | None]:
        """Ready messages and consumers of each queue (None: no such queue or no answer)."""
        broker = self.container.exchange.broker
        queues = sorted(names)
        answers = await DeferredList(
            [ensureDeferred(_info(broker, q)) for q in queues], consumeErrors=True
        )
        return {q: (v if ok else None) for q, (ok, v) in zip(queues, answers, strict=True)}

    async def _sample(self) -> None:
        names = self.service_queues()
        if not names or self.hub is None:
            return
        depths = await self.queue_depths(names)
        sample = {q: None if d is None else {"messages": d[0], "consumers": d[1]}
                  for q, d in depths.items()}  # fmt: skip
        if self.hub is not None:
            self.hub.publish(hub_mod.Q, {"queues": sample})

    def _sample_queues(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._sample())


async def _info(broker: Any, queue: str) -> tuple[int, int] | None:
    info = await broker.queue_info(queue)
    return None if info is None else (int(info[0]), int(info[1]))


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


async def _nothing() -> None:
    return None
