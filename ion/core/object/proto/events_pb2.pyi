from ion.core.object.proto import ion_options_pb2 as _ion_options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResourceLifecycleEvent(_message.Message):
    __slots__ = ("resource_id", "state")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[ResourceLifecycleEvent.State]
        NEW: _ClassVar[ResourceLifecycleEvent.State]
        READY: _ClassVar[ResourceLifecycleEvent.State]
        ACTIVE: _ClassVar[ResourceLifecycleEvent.State]
        TERMINATED: _ClassVar[ResourceLifecycleEvent.State]
        ERROR: _ClassVar[ResourceLifecycleEvent.State]
    STATE_UNSPECIFIED: ResourceLifecycleEvent.State
    NEW: ResourceLifecycleEvent.State
    READY: ResourceLifecycleEvent.State
    ACTIVE: ResourceLifecycleEvent.State
    TERMINATED: ResourceLifecycleEvent.State
    ERROR: ResourceLifecycleEvent.State
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    resource_id: str
    state: ResourceLifecycleEvent.State
    def __init__(self, resource_id: _Optional[str] = ..., state: _Optional[_Union[ResourceLifecycleEvent.State, str]] = ...) -> None: ...

class ScheduleEvent(_message.Message):
    __slots__ = ("task_id", "payload")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    payload: bytes
    def __init__(self, task_id: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class ResourceModificationEvent(_message.Message):
    __slots__ = ("resource_id", "fields", "state")
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    resource_id: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    state: str
    def __init__(self, resource_id: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ..., state: _Optional[str] = ...) -> None: ...

class LoggingEvent(_message.Message):
    __slots__ = ("level", "message", "logger")
    class Level(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        LEVEL_UNSPECIFIED: _ClassVar[LoggingEvent.Level]
        DEBUG: _ClassVar[LoggingEvent.Level]
        INFO: _ClassVar[LoggingEvent.Level]
        WARNING: _ClassVar[LoggingEvent.Level]
        ERROR: _ClassVar[LoggingEvent.Level]
        CRITICAL: _ClassVar[LoggingEvent.Level]
    LEVEL_UNSPECIFIED: LoggingEvent.Level
    DEBUG: LoggingEvent.Level
    INFO: LoggingEvent.Level
    WARNING: LoggingEvent.Level
    ERROR: LoggingEvent.Level
    CRITICAL: LoggingEvent.Level
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LOGGER_FIELD_NUMBER: _ClassVar[int]
    level: LoggingEvent.Level
    message: str
    logger: str
    def __init__(self, level: _Optional[_Union[LoggingEvent.Level, str]] = ..., message: _Optional[str] = ..., logger: _Optional[str] = ...) -> None: ...

class SubscriptionEvent(_message.Message):
    __slots__ = ("subscriber_id", "topic")
    SUBSCRIBER_ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    subscriber_id: str
    topic: str
    def __init__(self, subscriber_id: _Optional[str] = ..., topic: _Optional[str] = ...) -> None: ...

class DataBlockEvent(_message.Message):
    __slots__ = ("block_id", "data", "encoding")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    data: bytes
    encoding: str
    def __init__(self, block_id: _Optional[str] = ..., data: _Optional[bytes] = ..., encoding: _Optional[str] = ...) -> None: ...

class AppLifecycleEvent(_message.Message):
    __slots__ = ("app_name", "version", "state")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[AppLifecycleEvent.State]
        STARTED: _ClassVar[AppLifecycleEvent.State]
        STOPPED: _ClassVar[AppLifecycleEvent.State]
        FAILED: _ClassVar[AppLifecycleEvent.State]
    STATE_UNSPECIFIED: AppLifecycleEvent.State
    STARTED: AppLifecycleEvent.State
    STOPPED: AppLifecycleEvent.State
    FAILED: AppLifecycleEvent.State
    APP_NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    app_name: str
    version: str
    state: AppLifecycleEvent.State
    def __init__(self, app_name: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[_Union[AppLifecycleEvent.State, str]] = ...) -> None: ...

class ContainerStartupEvent(_message.Message):
    __slots__ = ("container_id", "startup_names")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTUP_NAMES_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    startup_names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, container_id: _Optional[str] = ..., startup_names: _Optional[_Iterable[str]] = ...) -> None: ...

class ProcessLifecycleEvent(_message.Message):
    __slots__ = ("process_id", "name", "container_id", "state")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[ProcessLifecycleEvent.State]
        READY: _ClassVar[ProcessLifecycleEvent.State]
        ACTIVE: _ClassVar[ProcessLifecycleEvent.State]
        TERMINATED: _ClassVar[ProcessLifecycleEvent.State]
        ERROR: _ClassVar[ProcessLifecycleEvent.State]
    STATE_UNSPECIFIED: ProcessLifecycleEvent.State
    READY: ProcessLifecycleEvent.State
    ACTIVE: ProcessLifecycleEvent.State
    TERMINATED: ProcessLifecycleEvent.State
    ERROR: ProcessLifecycleEvent.State
    PROCESS_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    process_id: str
    name: str
    container_id: str
    state: ProcessLifecycleEvent.State
    def __init__(self, process_id: _Optional[str] = ..., name: _Optional[str] = ..., container_id: _Optional[str] = ..., state: _Optional[_Union[ProcessLifecycleEvent.State, str]] = ...) -> None: ...

class ContainerLifecycleEvent(_message.Message):
    __slots__ = ("container_id", "state")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[ContainerLifecycleEvent.State]
        READY: _ClassVar[ContainerLifecycleEvent.State]
        ACTIVE: _ClassVar[ContainerLifecycleEvent.State]
        TERMINATED: _ClassVar[ContainerLifecycleEvent.State]
        ERROR: _ClassVar[ContainerLifecycleEvent.State]
    STATE_UNSPECIFIED: ContainerLifecycleEvent.State
    READY: ContainerLifecycleEvent.State
    ACTIVE: ContainerLifecycleEvent.State
    TERMINATED: ContainerLifecycleEvent.State
    ERROR: ContainerLifecycleEvent.State
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    state: ContainerLifecycleEvent.State
    def __init__(self, container_id: _Optional[str] = ..., state: _Optional[_Union[ContainerLifecycleEvent.State, str]] = ...) -> None: ...

class SupervisionEvent(_message.Message):
    __slots__ = ("supervisor_id", "child_id", "old_pid", "new_pid", "reason", "restarts", "strategy", "intensity", "period")
    SUPERVISOR_ID_FIELD_NUMBER: _ClassVar[int]
    CHILD_ID_FIELD_NUMBER: _ClassVar[int]
    OLD_PID_FIELD_NUMBER: _ClassVar[int]
    NEW_PID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    INTENSITY_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    supervisor_id: str
    child_id: str
    old_pid: str
    new_pid: str
    reason: str
    restarts: int
    strategy: str
    intensity: int
    period: float
    def __init__(self, supervisor_id: _Optional[str] = ..., child_id: _Optional[str] = ..., old_pid: _Optional[str] = ..., new_pid: _Optional[str] = ..., reason: _Optional[str] = ..., restarts: _Optional[int] = ..., strategy: _Optional[str] = ..., intensity: _Optional[int] = ..., period: _Optional[float] = ...) -> None: ...

class PeerStateEvent(_message.Message):
    __slots__ = ("observer_id", "peer_id", "epoch", "state", "reason", "silent_for", "links_ended")
    OBSERVER_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SILENT_FOR_FIELD_NUMBER: _ClassVar[int]
    LINKS_ENDED_FIELD_NUMBER: _ClassVar[int]
    observer_id: str
    peer_id: str
    epoch: int
    state: str
    reason: str
    silent_for: float
    links_ended: int
    def __init__(self, observer_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., epoch: _Optional[int] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., silent_for: _Optional[float] = ..., links_ended: _Optional[int] = ...) -> None: ...

class CloudEventEvent(_message.Message):
    __slots__ = ("source", "id", "type", "json")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    source: str
    id: str
    type: str
    json: str
    def __init__(self, source: _Optional[str] = ..., id: _Optional[str] = ..., type: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...

class EventMessage(_message.Message):
    __slots__ = ("event_id", "origin", "datetime", "description", "name", "user_id", "container_id", "resource_lifecycle", "schedule", "resource_modification", "logging", "subscription", "data_block", "app_lifecycle", "container_startup", "process_lifecycle", "container_lifecycle", "supervision", "peer_state", "cloudevent")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    DATETIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_MODIFICATION_FIELD_NUMBER: _ClassVar[int]
    LOGGING_FIELD_NUMBER: _ClassVar[int]
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    DATA_BLOCK_FIELD_NUMBER: _ClassVar[int]
    APP_LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_STARTUP_FIELD_NUMBER: _ClassVar[int]
    PROCESS_LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    SUPERVISION_FIELD_NUMBER: _ClassVar[int]
    PEER_STATE_FIELD_NUMBER: _ClassVar[int]
    CLOUDEVENT_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    origin: str
    datetime: float
    description: str
    name: str
    user_id: str
    container_id: str
    resource_lifecycle: ResourceLifecycleEvent
    schedule: ScheduleEvent
    resource_modification: ResourceModificationEvent
    logging: LoggingEvent
    subscription: SubscriptionEvent
    data_block: DataBlockEvent
    app_lifecycle: AppLifecycleEvent
    container_startup: ContainerStartupEvent
    process_lifecycle: ProcessLifecycleEvent
    container_lifecycle: ContainerLifecycleEvent
    supervision: SupervisionEvent
    peer_state: PeerStateEvent
    cloudevent: CloudEventEvent
    def __init__(self, event_id: _Optional[int] = ..., origin: _Optional[str] = ..., datetime: _Optional[float] = ..., description: _Optional[str] = ..., name: _Optional[str] = ..., user_id: _Optional[str] = ..., container_id: _Optional[str] = ..., resource_lifecycle: _Optional[_Union[ResourceLifecycleEvent, _Mapping]] = ..., schedule: _Optional[_Union[ScheduleEvent, _Mapping]] = ..., resource_modification: _Optional[_Union[ResourceModificationEvent, _Mapping]] = ..., logging: _Optional[_Union[LoggingEvent, _Mapping]] = ..., subscription: _Optional[_Union[SubscriptionEvent, _Mapping]] = ..., data_block: _Optional[_Union[DataBlockEvent, _Mapping]] = ..., app_lifecycle: _Optional[_Union[AppLifecycleEvent, _Mapping]] = ..., container_startup: _Optional[_Union[ContainerStartupEvent, _Mapping]] = ..., process_lifecycle: _Optional[_Union[ProcessLifecycleEvent, _Mapping]] = ..., container_lifecycle: _Optional[_Union[ContainerLifecycleEvent, _Mapping]] = ..., supervision: _Optional[_Union[SupervisionEvent, _Mapping]] = ..., peer_state: _Optional[_Union[PeerStateEvent, _Mapping]] = ..., cloudevent: _Optional[_Union[CloudEventEvent, _Mapping]] = ...) -> None: ...
