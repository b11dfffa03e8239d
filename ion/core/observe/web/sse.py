"""C{/events}: the hub's live events as server-sent events.

Each frame is C{event: <type>}, C{id: <hub id>}, C{data: <json>}. A reader
that reconnects with C{Last-Event-ID} (or C{?last=}) is sent the events it
missed first, from the hub's ring, and an event C{gap} if some were already
evicted. A comment line every 15 s keeps proxies and the browser from
thinking the stream dead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from ion.core.observe.hub import Event
from ion.core.observe.web.api import to_json, whole_number
from ion.core.observe.web.leaf import ViewLeaf

if TYPE_CHECKING:
    from twisted.web.server import Request


log = Logger()

KEEPALIVE = 15.0  # seconds between comment lines


def frame(event: Event) -> bytes:
    """One event as an SSE frame."""
    return b"event: %s\nid: %d\ndata: %s\n\n" % (event.type.encode(), event.id, to_json(event.data))


def last_seen(request: Request) -> int | None:
    """The id the reader saw last (C{Last-Event-ID}, else C{?last=}), if any."""
    raw = request.getHeader(b"last-event-id")
    if raw is None:
        args: dict[bytes, list[bytes]] = request.args or {}
        raw = args[b"last"][0] if args.get(b"last") else None
    if raw is None:
        return None
    text = raw.decode("latin-1").strip()
    return int(text) if whole_number(text) else None


@implementer(IPushProducer)
class Reader:
    """One stream's reader, as the transport sees it: paused when its buffer
    is full (the reader does not keep up). A paused reader's stream is cut at
    the next event rather than buffered without end; the browser reconnects
    with C{Last-Event-ID} and is sent what it missed from the hub's ring."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.paused = self.cut = False
        request.registerProducer(self, True)

    def push(self, event: Event) -> None:
        if not self.paused:
            self.request.write(frame(event))
            return
        transport: Any = self.request.transport
        if transport is not None and not self.cut:
            self.cut = True
            log.info("web view: a reader fell behind; its stream is cut (it catches up)")
            transport.abortConnection()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True


class EventStream(ViewLeaf):
    """The stream: open until the reader goes or the view stops."""

    def render_HEAD(self, request: Request) -> Any:
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        return b""  # (no stream: a HEAD has no body to hold open)

    def render_GET(self, request: Request) -> Any:
        hub = self.view.hub
        if hub is None:
            request.setResponseCode(503)
            return b"the web view is stopping\n"
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.write(b"retry: 1000\n\n")
        last = last_seen(request)
        if last is not None:
            missed, evicted = hub.since(last)
            if evicted:
                first = missed[0].id if missed else hub.last + 1
                request.write(
                    b"event: gap\ndata: %s\n\n" % to_json({"after": last, "first": first})
                )
            for event in missed:
                request.write(frame(event))
        # In the same turn as the replay: no event falls between the two.
        reader = Reader(request)
        stop = hub.listen(reader.push)
        keepalive = LoopingCall(request.write, b": keepalive\n\n")
        keepalive.clock = self.view.reactor
        keepalive.start(KEEPALIVE, now=False)
        self.view.stream_opened(request)

        def ended(_: Any) -> None:
            stop()  # (the channel drops its producer with the connection)
            if keepalive.running:
                keepalive.stop()
            self.view.stream_closed(request)

        request.notifyFinish().addBoth(ended)
        return NOT_DONE_YET
