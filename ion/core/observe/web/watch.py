"""What the web view hears of the other containers, for its live pages.

The hub (L{ion.core.observe.hub}) is fed by this container alone: its tap and
its announcements. While a page listens (L{SystemWatch.start}), the view also
asks every container's agent, once a second, for the number of its newest tap
row (C{get_trace}, no rows: a few bytes each) and publishes C{msg} when another
container's rose, so the chart of the whole system redraws; and it binds C{#}
on the events exchange, publishing the processes', supervisors' and
containers' events of the other containers as C{proc}, C{sup} and C{cc}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.events import EventSubscriber
from ion.core.observe import hub as hub_mod

if TYPE_CHECKING:
    from ion.core.messaging import message as m
    from ion.core.observe.web.service import WebView

log = Logger()

INTERVAL = 1.0  # seconds between asks for the other containers' newest rows


class SystemWatch:
    """Polls the other containers' taps and hears their events while started."""

    def __init__(self, view: WebView) -> None:
        self.view = view
        self.last: dict[str, int] = {}
        self._loop: LoopingCall | None = None
        self._events: EventSubscriber | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    def start(self) -> None:
        if self._loop is not None or self.view.container.agent is None:
            return  # (no agent: no other container is known)
        self._loop = LoopingCall(lambda: Deferred.fromCoroutine(self._tick()))
        self._loop.clock = self.view.reactor
        self._loop.start(INTERVAL, now=True).addErrback(
            lambda f: log.failure("web view: watching the system failed", f)
        )
        Deferred.fromCoroutine(self._subscribe())

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        events, self._events = self._events, None
        if events is not None:
            Deferred.fromCoroutine(events.stop()).addErrback(lambda f: None)

    async def _subscribe(self) -> None:
        try:
            caller = await self.view.caller.get()
            events = EventSubscriber(caller, handler=self._event)
            await events.start()
        except exc.IonError as e:
            log.info("web view: not hearing other containers' events: {e}", e=e)
            return
        if self._loop is None:  # stopped meanwhile
            await events.stop()
        else:
            self._events = events

    async def _tick(self) -> None:
        hub = self.view.hub
        if hub is None:
            return
        me = self.view.container.id
        try:
            caller = await self.view.caller.get()
            answers = await agent_client.ask_all(caller, "get_trace", {"limit": 0}, INTERVAL)
        except exc.IonError:
            return  # (stopping; the next tick asks again)
        for cid, answer, _asked, _answered in answers:
            if cid == me or not isinstance(answer, dict):
                continue
            last = answer.get("last")
            if not isinstance(last, int):
                continue
            before = self.last.get(cid)
            self.last[cid] = last
            if before is not None and last != before:
                hub.publish(hub_mod.MSG, {"container": cid, "last": last})

    def _event(self, event: Any, msg: m.Message) -> None:
        hub = self.view.hub
        cid = event.container_id
        if hub is None or not cid or cid == self.view.container.id:
            return  # this container's own come through the hub already
        hub.announced(event.event_id, event.origin, {"container_id": cid})
