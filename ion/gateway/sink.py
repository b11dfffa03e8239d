"""A webhook receiver to try the gateway with: prints each delivery it gets.

    python -m ion.gateway.sink [PORT]      (default 9000, on 127.0.0.1)

Each POST is answered 204 and printed as one line: its Ion-Delivery-Id and
its body (a CloudEvent, as JSON). Loopback only: it is a tool, not a service.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.internet import endpoints
from twisted.web.resource import Resource
from twisted.web.server import Site


class Sink(Resource):
    """Prints what is posted to it, answers 204."""

    isLeaf = True

    def render_POST(self, request: Any) -> bytes:
        delivery = request.getHeader("ion-delivery-id") or "-"
        body = request.content.read().decode("utf-8", "replace")
        print(f"{delivery} {body}", flush=True)
        request.setResponseCode(204)
        return b""


def main(argv: list[str] | None = None) -> None:
    from twisted.internet import reactor as running

    reactor: Any = running  # (an IReactorCore; mypy sees the module's stub)
    args = sys.argv[1:] if argv is None else argv
    port = int(args[0]) if args else 9000
    endpoint = endpoints.TCP4ServerEndpoint(reactor, port, interface="127.0.0.1")
    endpoint.listen(Site(Sink()))
    print(f"webhook sink at http://127.0.0.1:{port}/", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
