"""Events: typed notifications on the system's events exchange.

An event is an C{EventMessage} object published to C{ion.<sysname>.events}
with routing key C{<event id>.<origin>}. Subscribers bind with AMQP wildcards:
C{*} matches one word and C{#} any number, so an origin that contains dots
(C{ion.services.hello}) is matched whole by C{#} or word by word by C{*}.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from ion.core.drops import cause_of
from ion.core.exception import FieldError, IllegalStateError, IonError, MessageFormatError
from ion.core.messaging import message as m
from ion.core.messaging.broker import settle
from ion.core.object.event_ids import PAYLOAD_FIELD, EventId
from ion.core.process import context

if TYPE_CHECKING:
    from ion.core.messaging.exchange import ExchangeManager
    from ion.core.process.process import Process

log = Logger()

# EventMessage fields a publisher may set by keyword; the rest are payload fields.
_EVENT_FIELDS = ("origin", "description", "name", "user_id", "datetime")


def _event_message_class() -> Any:
    from ion.core.object.proto.events_pb2 import EventMessage  # protobuf only when used

    return EventMessage


def create_event(event_id: int, **fields: Any) -> Any:
    """An C{EventMessage} for C{event_id} with event and payload fields set.

    @raise FieldError: a keyword names no field of the event or its payload, or
        has the wrong type (code 400).
    """
    from ion.core.object.helpers import set_fields

    event = _event_message_class()()
    event.event_id = int(event_id)
    event.datetime = fields.pop("datetime", None) or time.time()
    own = {k: fields.pop(k) for k in _EVENT_FIELDS if k in fields}
    set_fields(event, **own)
    payload_field = (
        PAYLOAD_FIELD.get(EventId(event_id)) if event_id in EventId._value2member_map_ else None
    )
    if payload_field is None:
        if fields:
            raise FieldError(f"event {event_id} has no payload; unknown fields: {sorted(fields)}")
        return event
    payload = getattr(event, payload_field)
    set_fields(payload, **fields)
    payload.SetInParent()  # select the oneof member even when no payload field is set
    return event


def process_lifecycle_event(process_id: str, name: str, container_id: str, state: str) -> Any:
    """The life cycle event (1052) of a process, as L{create_event} makes it
    (and L{publish} stamps with its container).

    Built by the constructors alone (a fifth of the cost): every process sends
    three of these, and the values, ion's own, need no checking.
    """
    from ion.core.object.proto.events_pb2 import EventMessage, ProcessLifecycleEvent

    return EventMessage(
        event_id=EventId.PROCESS_LIFECYCLE,
        origin=process_id,
        datetime=time.time(),
        name=name,
        container_id=container_id,
        process_lifecycle=ProcessLifecycleEvent(
            process_id=process_id, container_id=container_id, state=state
        ),
    )


def routing_key(event_id: int | str, origin: str) -> str:
    """The routing key of an event: C{<event id>.<origin>}."""
    return f"{event_id}.{origin}"


def publish(
    exchange: ExchangeManager,
    sender: str,
    event: Any,
    origin: str | None = None,
    container_id: str | None = None,
    confirm: bool = False,
) -> Deferred[None]:
    """Publish C{event} (its C{origin} field, unless C{origin} is given); an
    event that names no container is stamped with C{container_id}.

    With C{confirm}, the Deferred fires only once the broker has taken the event
    (RabbitMQ: a publisher confirm, the message persistent); events are otherwise
    sent on the plain channel, unconfirmed, unless the system's queues are quorum
    queues."""
    if origin is not None:
        event.origin = origin
    if container_id and not event.container_id:
        event.container_id = container_id
    if not event.origin:
        raise FieldError("an event needs an origin")
    key = routing_key(event.event_id, event.origin)
    if exchange.event_unheard(key):
        # No subscriber would get it (the embedded broker knows): encoding it
        # would be the larger part of a process's spawn and terminate.
        return succeed(None)
    headers = {
        m.SENDER: sender,
        m.RECEIVER: exchange.events_exchange,
        m.CONV_ID: f"{sender}#event",
        m.PROTOCOL: "none",
        m.PERFORMATIVE: "inform",
        m.OP: "event",
        m.TS: int(time.time() * 1000),
    }
    body = m.encode(headers, event, getattr(exchange, "signer", None))
    if exchange.tap is not None:
        exchange.tap.event(headers, len(body), key)
    return exchange.publish_event(key, body, confirm)


class EventPublisher:
    """Publishes one kind of event on behalf of a process.

    Subclasses set C{event_id}; the payload type follows from it.
    """

    event_id: ClassVar[int]

    def __init__(self, process: Process, origin: str | None = None) -> None:
        self.process = process
        self.origin = origin

    def create_event(self, **fields: Any) -> Any:
        """An event of this publisher's kind; see L{create_event}."""
        fields.setdefault("origin", self.origin or str(self.process.id))
        return create_event(self.event_id, **fields)

    def publish_event(self, event: Any, origin: str | None = None) -> Deferred[None]:
        """Publish an event made by L{create_event}."""
        container = self.process.container
        assert container is not None, "process is not spawned"
        return publish(container.exchange, str(self.process.id), event, origin, container.id)

    def create_and_publish_event(self, **fields: Any) -> Deferred[None]:
        """Create an event from keyword fields and publish it."""
        return self.publish_event(self.create_event(**fields))


class Requeue(IonError):
    """Raised by an event handler (or its Deferred fails with it): the event goes back
    to its queue, for whichever subscriber takes it next, instead of being acked."""


class EventSubscriber:
    """Receives events matching an event id and origin pattern, for a process.

    An event is acked once its handler returned (or its Deferred fired), whether
    or not it failed; a handler that raises L{Requeue} gives the event back.

    @param origin: an origin or AMQP pattern (default C{#}: any origin).
    @param event_id: overrides the class's C{event_id} (None: any event).
    @param queue_name: a shared queue C{<sysname>.<queue_name>}: subscribers
        that name the same queue share its events, each event going to one of
        them; the queue outlives them. Without it, each gets every event.
    @param handler: called with C{(event, msg)}; or override L{ondata}.
    """

    event_id: ClassVar[int | None] = None

    def __init__(
        self,
        process: Process,
        origin: str = "#",
        event_id: int | None = None,
        queue_name: str | None = None,
        handler: Callable[[Any, m.Message], Any] | None = None,
    ) -> None:
        self.process = process
        self.origin = origin
        if event_id is not None:
            self.event_id = event_id
        self.queue_name = queue_name
        self.handler = handler
        self.queue: str | None = None
        self._tag: str | None = None
        self._starting = False
        self._verifiers: tuple[m.Verify, m.Verify] | None = None  # fresh, redelivered

    @property
    def binding_key(self) -> str:
        return routing_key("*" if self.event_id is None else self.event_id, self.origin)

    async def start(self) -> EventSubscriber:
        """Declare and bind the queue, start receiving; the process stops it with itself.

        @raise IllegalStateError: the process is terminating or gone (also when
            it went while the subscription was being made; it is stopped again).
        """
        container = self.process.container
        assert container is not None, "process is not spawned"
        if self.process.winding_down:
            raise IllegalStateError(f"{self.process} is terminating or gone; not subscribing")
        if self._tag is not None or self._starting:
            raise IllegalStateError(f"{self!r} is already started; stop() it first")
        self._starting = True
        try:
            exchange = container.exchange
            await self.declare()
            assert self.queue is not None
            # Bounded as a process's requests are: an async handler holds its event
            # unacked, so no more than prefetch of them run (and wait) at once.
            prefetch = int(self.process.config.get("broker.prefetch", 32))
            self._tag = await exchange.consume(self.queue, self._on_delivery, prefetch)
        finally:
            self._starting = False
        try:
            self.process.own(self)
        except IllegalStateError:
            try:
                await self.stop()
            except Exception as e:  # the refusal is what the caller needs to hear
                log.warn("{proc}: stopping an unowned subscriber failed: {e}",
                         proc=self.process, e=e)  # fmt: skip
            raise
        return self

    async def declare(self) -> str:
        """Declare and bind the queue without consuming (L{start} does it too): a
        shared queue then keeps the events for whichever subscriber starts on it."""
        container = self.process.container
        assert container is not None, "process is not spawned"
        self.queue = await container.exchange.declare_subscription(
            self.binding_key, self.queue_name, owner=str(self.process.id)
        )
        return self.queue

    async def stop(self) -> None:
        """Stop receiving (a shared queue stays for the other subscribers)."""
        if self._tag is not None:
            assert self.process.container is not None
            tag, self._tag = self._tag, None
            await self.process.container.exchange.cancel(tag)

    def ondata(self, event: Any, msg: m.Message) -> Any:
        """Handle one event (default: call the handler given)."""
        if self.handler is not None:
            return self.handler(event, msg)
        return None

    def _verifier(self, delivery: Any) -> m.Verify | None:
        """The signature check of an event (signing on), before it is decoded."""
        assert self.process.container is not None
        signer = self.process.container.exchange.signer
        if signer is None:
            return None
        if self._verifiers is None:
            me = f"{self.process.id}/{self.queue}"  # one replay record per subscription
            self._verifiers = (signer.verifier(me), signer.verifier(me, True))
        return self._verifiers[bool(getattr(delivery, "redelivered", False))]

    def _on_delivery(self, delivery: Any) -> None:
        try:
            msg = m.decode(delivery.body, delivery, self._verifier(delivery))
            event = msg.content
            if not hasattr(event, "event_id"):
                raise MessageFormatError("not an event message")
        except (MessageFormatError, IonError) as e:
            headers = getattr(e, "headers", None)
            sender = headers.get(m.SENDER) if isinstance(headers, dict) else None
            self.process.runtime.drops.dropped(f"bad event: {cause_of(e)}", sender=sender,
                                               where=str(self.process.id), detail=e)  # fmt: skip
            settle(delivery)
            return
        token = context.entered(self.process.place)  # as for its op handlers
        try:
            result = self.ondata(event, msg)
            if hasattr(result, "__await__") and not isinstance(result, Deferred):
                result = ensureDeferred(result)  # started here: it runs in the place
        except Requeue:
            settle(delivery, requeue=True)
            return
        except Exception:
            log.failure("{proc}: event handler raised", proc=self.process)
            settle(delivery)
            return
        finally:
            context.left(token)
        if isinstance(result, Deferred):
            result.addBoth(self._settle, delivery)
        else:
            settle(delivery)

    def _settle(self, result: Any, delivery: Any) -> None:
        if isinstance(result, Failure):
            if result.check(Requeue):
                settle(delivery, requeue=True)
                return
            log.failure("{proc}: event handler failed", result, proc=self.process)
        settle(delivery)


# Publisher and subscriber classes for the original's event id table:
# <Kind>EventPublisher and <Kind>EventSubscriber for each row.
_KINDS = {
    "ResourceLifecycle": EventId.RESOURCE_LIFECYCLE,
    "ContainerLifecycle": EventId.CONTAINER_LIFECYCLE,
    "ProcessLifecycle": EventId.PROCESS_LIFECYCLE,
    "ChildRestarted": EventId.CHILD_RESTARTED,
    "SupervisorGaveUp": EventId.SUPERVISOR_GAVE_UP,
    "ContainerPeerState": EventId.CONTAINER_PEER_STATE,
    "AppLifecycle": EventId.APP_LIFECYCLE,
    "ContainerStartup": EventId.CONTAINER_STARTUP,
    "ResourceModification": EventId.BUSINESS_STATE_MODIFICATION,
    "NewSubscription": EventId.NEW_SUBSCRIPTION,
    "DelSubscription": EventId.DEL_SUBSCRIPTION,
    "Schedule": EventId.SCHEDULE,
    "LoggingCritical": EventId.LOGGING_CRITICAL,
    "LoggingError": EventId.LOGGING_ERROR,
    "LoggingInfo": EventId.LOGGING_INFO,
    "DataBlock": EventId.DATABLOCK,
    "CloudEvent": EventId.CLOUDEVENT,
}

for _kind, _eid in _KINDS.items():
    for _base, _role in ((EventPublisher, "Publisher"), (EventSubscriber, "Subscriber")):
        _name = f"{_kind}Event{_role}"
        globals()[_name] = type(
            _name,
            (_base,),
            {"event_id": int(_eid), "__doc__": f"{_role} of {_eid.name} events ({int(_eid)})."},
        )
