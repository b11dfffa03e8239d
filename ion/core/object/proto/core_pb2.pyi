from ion.core.object.proto import ion_options_pb2 as _ion_options_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResponseCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESPONSE_CODE_UNSPECIFIED: _ClassVar[ResponseCode]
    CONTINUE: _ClassVar[ResponseCode]
    OK: _ClassVar[ResponseCode]
    CREATED: _ClassVar[ResponseCode]
    ACCEPTED: _ClassVar[ResponseCode]
    NO_CONTENT: _ClassVar[ResponseCode]
    BAD_REQUEST: _ClassVar[ResponseCode]
    UNAUTHORIZED: _ClassVar[ResponseCode]
    FORBIDDEN: _ClassVar[ResponseCode]
    NOT_FOUND: _ClassVar[ResponseCode]
    METHOD_NOT_ALLOWED: _ClassVar[ResponseCode]
    TIMEOUT: _ClassVar[ResponseCode]
    CONFLICT: _ClassVar[ResponseCode]
    INTERNAL_SERVER_ERROR: _ClassVar[ResponseCode]
    NOT_IMPLEMENTED: _ClassVar[ResponseCode]
    SERVICE_UNAVAILABLE: _ClassVar[ResponseCode]
    ION_LOCKED_RESOURCE: _ClassVar[ResponseCode]
    ION_RESOURCE_STATE_DIVERGED: _ClassVar[ResponseCode]
    ION_INVALID_DESTINATION: _ClassVar[ResponseCode]
    ION_TIMEOUT: _ClassVar[ResponseCode]
    ION_NETWORK_FAILURE: _ClassVar[ResponseCode]
    ION_NETWORK_CORRUPTION: _ClassVar[ResponseCode]
    ION_OUT_OF_MEMORY: _ClassVar[ResponseCode]
    ION_PERMISSION_ERROR: _ClassVar[ResponseCode]
    ION_RECEIVER_ERROR: _ClassVar[ResponseCode]
RESPONSE_CODE_UNSPECIFIED: ResponseCode
CONTINUE: ResponseCode
OK: ResponseCode
CREATED: ResponseCode
ACCEPTED: ResponseCode
NO_CONTENT: ResponseCode
BAD_REQUEST: ResponseCode
UNAUTHORIZED: ResponseCode
FORBIDDEN: ResponseCode
NOT_FOUND: ResponseCode
METHOD_NOT_ALLOWED: ResponseCode
TIMEOUT: ResponseCode
CONFLICT: ResponseCode
INTERNAL_SERVER_ERROR: ResponseCode
NOT_IMPLEMENTED: ResponseCode
SERVICE_UNAVAILABLE: ResponseCode
ION_LOCKED_RESOURCE: ResponseCode
ION_RESOURCE_STATE_DIVERGED: ResponseCode
ION_INVALID_DESTINATION: ResponseCode
ION_TIMEOUT: ResponseCode
ION_NETWORK_FAILURE: ResponseCode
ION_NETWORK_CORRUPTION: ResponseCode
ION_OUT_OF_MEMORY: ResponseCode
ION_PERMISSION_ERROR: ResponseCode
ION_RECEIVER_ERROR: ResponseCode

class Response(_message.Message):
    __slots__ = ("code", "text", "error_type")
    CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    code: ResponseCode
    text: str
    error_type: str
    def __init__(self, code: _Optional[_Union[ResponseCode, str]] = ..., text: _Optional[str] = ..., error_type: _Optional[str] = ...) -> None: ...

class TypeIdentifier(_message.Message):
    __slots__ = ("object_id", "version")
    OBJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    object_id: int
    version: int
    def __init__(self, object_id: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...
