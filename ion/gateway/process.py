"""The gateway process (L{Gateway}), spawned by the app C{gateway} (res/apps/gateway.app).

On activation it reads its config (L{ion.gateway.config}), opens the store
(L{ion.gateway.store}), starts the event flow and listens on C{gateway.http}, logging
C{gateway at http://HOST:PORT/}. Its site serves:

    /rpc/<service>/<op>    service ops (L{ion.gateway.rpc})
    /openapi.json          the OpenAPI document (L{ion.gateway.openapi}), unauthenticated
    /eventmatch, /receive  subscriptions and CloudEvents (L{ion.gateway.eventmatch}, L{ion.gateway.receive})
    anything else          the routes services declare (L{ion.gateway.declared})

Every request but C{/openapi.json}'s is authenticated (L{ion.gateway.auth}).
It also runs the CloudEvent flow (L{ion.gateway.flow}: the matcher
and the delivery worker). On termination it stops the flow, then listening,
then closes the store.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource

from ion.core import exception as exc
from ion.core.observe.web.service import is_loopback
from ion.core.process.process import Process
from ion.core.security.token_file import remove_token
from ion.gateway import auth
from ion.gateway.config import GatewayConfig
from ion.gateway.declared import RETRY, RoutesResource, RouteTable
from ion.gateway.eventmatch import EventMatchResource
from ion.gateway.flow import EventFlow
from ion.gateway.openapi import OpenApiResource
from ion.gateway.routes import parse_routes
from ion.gateway.rpc import RpcResource
from ion.gateway.store import open_store
from ion.gateway.web import GatewaySite

ROUTES_TIMEOUT = 5.0  # seconds a service has to answer http_routes
PRUNE_EVERY = 3600.0  # seconds between prunes of the store (less for a shorter retention)


class GatewayRoot(Resource):
    """The site's root: its named children, and the declared routes for every other path."""

    def __init__(self, routes: Resource) -> None:
        super().__init__()
        self.routes = routes

    def getChild(self, path: bytes, request: Any) -> Resource:
        # The declared routes match whole paths: give them back the segment just taken.
        request.postpath.insert(0, request.prepath.pop())
        return self.routes


class _Served:
    """What the gateway stops when it terminates (in this order): the listener, the
    generated token's file, the store."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def stop(self) -> None:
        g = self.gateway
        listening, g.listening = g.listening, None
        g.url = None
        if listening is not None:
            await listening.stopListening()
        if g.token_file is not None:
            remove_token(g.token_file)
        store, g.store = g.store, None
        if store is not None:
            await store.close()

    def __repr__(self) -> str:
        return f"<the HTTP site of {self.gateway}>"


class Gateway(Process):
    """The HTTP gateway of a system.

    @ivar url: C{http://HOST:PORT/} while listening, else None.
    @ivar settings: the L{GatewayConfig}, once active.
    @ivar routes: the services' declared routes (L{RouteTable}).
    @ivar store: the subscription store.
    """

    name = "gateway"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.url: str | None = None
        self.port: int | None = None
        self.listening: Any = None
        self.settings: GatewayConfig | None = None
        self.routes = RouteTable()
        self.store: Any = None
        self.token_file: str | None = None
        self.site: GatewaySite | None = None
        self.flow: EventFlow | None = None
        self.poster: Any = None  # webhook poster for the flow (None: HTTP); tests set one

    async def on_activate(self) -> None:
        assert self.container is not None
        reactor = self.container.reactor
        config = self.settings = GatewayConfig.from_config(self.config)
        made = auth.generated(config)
        if made is not None:
            self.token_file = made[1]
            self.log.info("gateway: no authentication configured; a token for user "
                          "{user!r} is in {path}", user=auth.LOCAL_USER, path=made[1])  # fmt: skip
        self.own(_Served(self))  # (from here on, what is made is undone on terminate)
        self.store = await open_store(config, reactor)
        # Owned after _Served: stopped before the store closes; started before
        # the site listens, so /receive's events have their queue.
        self.flow = EventFlow(self, self.store, config, reactor, self.poster)
        self.own(self.flow)
        await self.flow.start()
        self.call_later(0, self._prune)
        self.routes = RouteTable(config.services)
        if config.services:
            await self._ask_routes()  # (the services already running: served from the start)
        root = GatewayRoot(RoutesResource(self, self.routes, config.max_body))
        for name, child in self.children_resources(config).items():
            root.putChild(name, child)
        authenticator = auth.authenticator_for(config, made[0] if made else None)
        self.site = GatewaySite(root, config.max_body, authenticator, reactor=reactor)
        endpoint = TCP4ServerEndpoint(reactor, config.http_port, interface=config.http_host)
        try:
            self.listening = await endpoint.listen(self.site)
        except Exception as e:
            raise exc.StartupError(
                f"gateway: cannot listen on {config.http_host}:{config.http_port}: {e}"
            ) from e
        self.port = self.listening.getHost().port
        self.url = f"http://{config.http_host}:{self.port}/"
        if is_loopback(config.http_host):
            self.log.info("gateway at {url}", url=self.url)
        else:
            self.log.warn("gateway at {url}: {host} is not loopback, so it is reachable "
                          "from the network", url=self.url, host=config.http_host)  # fmt: skip
            if config.remote_user:
                self.log.warn("gateway: gateway.auth.remote_user trusts a header anyone "
                              "reaching {url} can set; listen on loopback behind the proxy",
                              url=self.url)  # fmt: skip

    def children_resources(self, config: GatewayConfig) -> dict[bytes, Any]:
        """The root's named children."""
        assert self.flow is not None
        return {
            b"rpc": RpcResource(self, config.max_body),
            b"openapi.json": OpenApiResource(self.routes.openapi_paths),
            b"receive": self.flow.resource,
            b"eventmatch": EventMatchResource(self.store, config),
        }

    async def _prune(self) -> None:
        """Forget delivered deliveries and seen event ids older than
        C{gateway.retention}, now and every L{PRUNE_EVERY} seconds, so the store
        does not grow for ever: on the gateway that holds the matcher's lease,
        one of all those sharing the database. A failure (the database away) is
        logged and the next prune tries again."""
        assert self.settings is not None and self.container is not None
        retention = self.settings.retention
        if self.flow is not None and self.flow.matcher.holding:
            try:
                count = await self.store.prune(self.container.reactor.seconds() - retention)
            except Exception as e:  # the database's own errors: the gateway goes on
                if self.winding_down:
                    return  # (its store closes under it)
                self.log.warn("gateway: pruning the store failed (tried again in {every:g} s): "
                              "{e}", every=min(PRUNE_EVERY, retention), e=e)  # fmt: skip
            else:
                if count:
                    self.log.info("gateway: forgot {n} delivered or seen event row(s) older "
                                  "than {retention:g} s", n=count, retention=retention)  # fmt: skip
        if not self.winding_down:
            self.call_later(min(PRUNE_EVERY, retention), self._prune)

    async def _ask_routes(self) -> None:
        """Ask each service not yet known for its routes; again later for those that
        did not answer."""
        for service in self.routes.pending:
            try:
                answer = await self.rpc_send(service, "http_routes", timeout=ROUTES_TIMEOUT)
            except exc.ReceivedError as e:
                if e.error_type != "UnknownOpError":
                    self.log.info(
                        "gateway: no routes from {service} yet: {e}", service=service, e=e
                    )
                    continue
                self.log.warn("gateway: {service} (in gateway.services) is no service "
                              "that declares routes", service=service)  # fmt: skip
                answer = []
            except (exc.ConversationError, exc.BrokerError) as e:
                self.log.info("gateway: no routes from {service} yet: {e}", service=service, e=e)
                continue
            routes = parse_routes(service, answer)
            self.routes.set(service, routes)
            self.log.info("gateway: {n} route(s) of {service}", n=len(routes), service=service)
        if self.routes.pending and not self.winding_down:
            self.call_later(RETRY, self._ask_routes)
