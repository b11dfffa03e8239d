from ion.core.object.proto import ion_options_pb2 as _ion_options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class Account(_message.Message):
    __slots__ = ("owner", "balance")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    BALANCE_FIELD_NUMBER: _ClassVar[int]
    owner: str
    balance: int
    def __init__(self, owner: _Optional[str] = ..., balance: _Optional[int] = ...) -> None: ...

class Withdrawal(_message.Message):
    __slots__ = ("owner", "amount")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    owner: str
    amount: int
    def __init__(self, owner: _Optional[str] = ..., amount: _Optional[int] = ...) -> None: ...
