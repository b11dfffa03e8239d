"""A real HTTP webhook receiver for the gateway's tests (twisted.web on a free port)."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.protocols.policies import WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from tests.helpers import Collector


class _Hook(Resource):
    isLeaf = True

    def __init__(self, receiver: Receiver) -> None:
        super().__init__()
        self.receiver = receiver

    def render_POST(self, request: Any) -> bytes:
        r = self.receiver
        got = {
            "path": request.path.decode(),
            "host": (request.getHeader(b"host") or b"").decode(),
            "delivery": (request.getHeader(b"ion-delivery-id") or b"").decode(),
            "content_type": (request.getHeader(b"content-type") or b"").decode(),
            "authorization": (request.getHeader(b"authorization") or b"").decode(),
            "event": json.loads(request.content.read()),
        }
        if r.hold(request):  # arrived, but left unanswered
            r.got(got)
            return NOT_DONE_YET
        request.setResponseCode(r.status)
        if 200 <= r.status < 300:
            r.got(got)  # only what was accepted counts as arrived
        else:
            r.refused.append(got)
        return b"{}"


class Receiver:
    """Records the webhooks it accepts (C{got}); answers C{status}; can go down and up."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.status = 200
        self.got: Collector[dict[str, Any]] = Collector()
        self.refused: list[dict[str, Any]] = []
        self.site = Site(_Hook(self))
        # Knows the open connections: going down closes them too (the gateway
        # keeps persistent ones, which would otherwise still be served).
        self.factory = WrappingFactory(self.site)
        self.port: int = 0
        self.listening: Any = None

    async def up(self) -> Receiver:
        endpoint = TCP4ServerEndpoint(self.reactor, self.port, interface="127.0.0.1")
        self.listening = await endpoint.listen(self.factory)
        self.port = self.listening.getHost().port
        return self

    async def down(self) -> None:
        listening, self.listening = self.listening, None
        if listening is not None:
            await listening.stopListening()
            for wrapper in list(self.factory.protocols):
                # Closed after what was written (an answer given) is sent, as a
                # server that shuts down does; nothing more is read.
                wrapper.transport.loseConnection()

    def hold(self, request: Any) -> bool:
        """Whether to leave C{request} unanswered (a subclass may)."""
        return False

    def url(self, path: str = "hook") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def events(self, path: str | None = None) -> list[str]:
        """The ids of the events accepted (at C{/path}), in arrival order."""
        return [g["event"]["id"] for g in self.got.items if path is None or g["path"] == path]
