"""The system observer (C{observer.app}): one process that keeps a log of the
whole system's messages and events, as the original's interaction observer did.

It binds C{#} on the system's events exchange, so it hears every event. The
messages it does not bind for: the system exchange is a direct exchange (one
routing key per queue), where C{#} matches nothing, and a copy of every message
would double the traffic. It asks each container's agent for its tap rows
instead (C{get_trace}, every C{interval} seconds, only what is new) and merges
them on its own clock (L{ion.core.observe.system}).

Opt-in: start C{observer.app}. On RabbitMQ with per-user permissions its
broker user needs configure and read on its own queues (C{<sysname>.observer.*}),
write on C{ion.<sysname>} (its calls to the agents), read on
C{ion.<sysname>.events} and, with topic authorisation, read for the routing
key C{#} there.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from ion.core import exception as exc
from ion.core.events import EventSubscriber
from ion.core.messaging import message as m
from ion.core.object.event_ids import EventId
from ion.core.observe import arcs
from ion.core.observe.mscgen import to_mscgen
from ion.core.observe.system import system_trace
from ion.core.process.service import ServiceProcess

DEFAULT_SIZE = 3000


class InteractionObserver(ServiceProcess):
    """Serves C{observer}: C{get_log(since)}, C{msc(n)}; spawn args C{interval}
    (seconds between asks, default 1), C{size} (rows kept, default 3000) and
    C{msc_file} (where the chart's mscgen text is written when it terminates)."""

    service_name = "observer"
    version = "0.1.0"

    def on_init(self) -> None:
        args = self.args
        self.interval = float(args.get("interval", 1.0))
        size = int(args.get("size", DEFAULT_SIZE))
        if self.interval <= 0 or size < 1:
            raise exc.ConfigurationError("observer: interval and size must be positive")
        self.msc_file: str | None = args.get("msc_file")
        self.rows: deque[dict[str, Any]] = deque(maxlen=size)
        self.written = 0  # rows ever kept: a row's number in get_log
        self.errors: dict[str, str] = {}
        self._since: dict[str, int] = {}
        self._loop: LoopingCall | None = None

    async def on_activate(self) -> None:
        await EventSubscriber(self, handler=self._event).start()
        assert self.container is not None
        self._loop = LoopingCall(self._ask)
        self._loop.clock = self.container.reactor
        self._loop.start(self.interval, now=True).addErrback(
            lambda f: self.log.failure("observer: asking for traces failed", f)
        )

    async def on_terminate(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self.msc_file:
            with open(self.msc_file, "w", encoding="utf-8") as f:
                f.write(self.chart(len(self.rows)))
            self.log.info("observer: {n} arcs written to {file}", n=len(self.rows),
                          file=self.msc_file)  # fmt: skip

    def _keep(self, row: dict[str, Any]) -> None:
        self.written += 1
        self.rows.append({**row, "n": self.written})

    def _ask(self) -> Deferred[None]:
        # LoopingCall waits for it: a slow container delays the next ask, never doubles it.
        return Deferred.fromCoroutine(self._ask_once())

    async def _ask_once(self) -> None:
        try:
            trace = await system_trace(self, since=dict(self._since), timeout=self.interval)
        except exc.IonError as e:  # (no agent here, the process winding down)
            self.errors = {"*": str(e)}
            return
        self.errors = trace.errors
        for cid, last in trace.last.items():
            if last < self._since.get(cid, 0):  # a new container under that id: from its start
                self._since[cid] = 0
            else:
                self._since[cid] = last
        for row in trace.rows:
            if row["dir"] != "event":  # the subscription has them, with what they say
                self._keep(row)

    def _event(self, event: Any, msg: m.Message) -> None:
        try:
            name = EventId(event.event_id).name.lower()
        except ValueError:
            name = str(event.event_id)
        sender = msg.headers.get(m.SENDER) or ""
        self._keep({
            "ts": time.time(), "dir": "event", "container": event.container_id or "",
            "sender": sender, "sender_name": None, "to": f"{event.event_id}.{event.origin}",
            "receiver": f"{event.event_id}.{event.origin}", "receiver_name": None,
            "conv_id": "", "conv_seq": None, "protocol": "none", "performative": "inform",
            "op": name, "status": None, "size": 0, "content_type": type(event).__name__,
            "user_id": None,
        })  # fmt: skip

    def op_get_log(self, content: Any, headers: dict[str, Any], msg: m.Message) -> dict[str, Any]:
        """The rows kept after number C{since} (content: a number, or {since: n})."""
        since = content.get("since", 0) if isinstance(content, dict) else (content or 0)
        if not isinstance(since, int) or isinstance(since, bool):
            raise exc.BadRequest(f"get_log: since must be a whole number, not {since!r}")
        rows = [r for r in self.rows if r["n"] > since]
        return {"rows": rows, "last": self.written, "errors": self.errors}

    def op_msc(self, content: Any, headers: dict[str, Any], msg: m.Message) -> str:
        """The mscgen text of the last C{n} rows (content: n, default 50)."""
        n = content if isinstance(content, int) and not isinstance(content, bool) else 50
        return self.chart(n)

    def chart(self, n: int) -> str:
        """The mscgen text of the last C{n} rows kept."""
        arc_list, names = arcs.last_arcs(list(self.rows), n) if n > 0 else ([], {})
        return to_mscgen(arc_list, names=names)
