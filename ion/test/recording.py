"""Recording processes: stand-ins that collect every message (and event) they receive.

recorder = await container.spawn(RecordingProcess, args={"replies": {"work": 42}})
await recorder.subscribe(event_id)            # events too
msg = await recorder.wait_for_op("work")      # with a deadline
"""

from __future__ import annotations

from typing import Any

from ion.core.events import EventSubscriber
from ion.core.messaging import message as m
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.test.waiting import Collector


class _Recording:
    """Collects every message (any op) in L{messages} and, once subscribed, events in L{events}.

    Spawn arg C{replies}: C{{op: value}}, the answer to that op's rpc/requests
    (default None); a value may be an exception to raise or a callable of
    C{(content, headers, msg)}.
    """

    messages: Collector[m.Message]
    events: Collector[Any]

    def _setup_recording(self) -> None:
        self.messages = Collector()
        self.events = Collector()
        self.replies: dict[str, Any] = dict(self.args.get("replies") or {})  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("op_") and name != "op_":
            return lambda content, headers, msg: self._record(name[3:], content, headers, msg)
        raise AttributeError(name)

    def _record(self, op: str, content: Any, headers: dict[str, Any], msg: m.Message) -> Any:
        self.messages(msg)
        reply = self.replies.get(op)
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            return reply(content, headers, msg)
        return reply

    def received(self, op: str | None = None) -> list[m.Message]:
        """The messages received so far (of C{op}, if given)."""
        return [msg for msg in self.messages.items if op is None or msg.op == op]

    async def wait_for_op(self, op: str, timeout: float = 5.0) -> m.Message:
        """The first message of C{op}, once one has come."""
        return await self.messages.wait_until(lambda msg: msg.op == op, timeout)

    async def subscribe(self, event_id: int | None = None, origin: str = "#") -> EventSubscriber:
        """Record events of C{event_id} (None: any) from C{origin} (a pattern) in L{events}."""
        sub = EventSubscriber(self, origin, event_id, handler=lambda ev, _msg: self.events(ev))  # type: ignore[arg-type]
        return await sub.start()


class RecordingProcess(_Recording, Process):
    """A process that records everything it receives (see L{_Recording})."""

    name = "recorder"

    def __init__(self, name: str | None = None, args: dict[str, Any] | None = None, config=None):
        super().__init__(name=name, args=args, config=config)
        self._setup_recording()


class RecordingService(_Recording, ServiceProcess):
    """A stand-in for a service (spawn arg C{servicename}) that records what it receives."""

    def __init__(self, name: str | None = None, args: dict[str, Any] | None = None, config=None):
        super().__init__(name=name, args=args, config=config)
        self._setup_recording()
