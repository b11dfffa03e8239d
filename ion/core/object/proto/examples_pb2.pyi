from ion.core.object.proto import ion_options_pb2 as _ion_options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Address(_message.Message):
    __slots__ = ("line", "city", "postal_code", "country")
    LINE_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_FIELD_NUMBER: _ClassVar[int]
    line: str
    city: str
    postal_code: str
    country: str
    def __init__(self, line: _Optional[str] = ..., city: _Optional[str] = ..., postal_code: _Optional[str] = ..., country: _Optional[str] = ...) -> None: ...

class Person(_message.Message):
    __slots__ = ("name", "id", "email", "phone", "address")
    class PhoneType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        MOBILE: _ClassVar[Person.PhoneType]
        HOME: _ClassVar[Person.PhoneType]
        WORK: _ClassVar[Person.PhoneType]
    MOBILE: Person.PhoneType
    HOME: Person.PhoneType
    WORK: Person.PhoneType
    class PhoneNumber(_message.Message):
        __slots__ = ("number", "type")
        NUMBER_FIELD_NUMBER: _ClassVar[int]
        TYPE_FIELD_NUMBER: _ClassVar[int]
        number: str
        type: Person.PhoneType
        def __init__(self, number: _Optional[str] = ..., type: _Optional[_Union[Person.PhoneType, str]] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    name: str
    id: int
    email: str
    phone: _containers.RepeatedCompositeFieldContainer[Person.PhoneNumber]
    address: Address
    def __init__(self, name: _Optional[str] = ..., id: _Optional[int] = ..., email: _Optional[str] = ..., phone: _Optional[_Iterable[_Union[Person.PhoneNumber, _Mapping]]] = ..., address: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...
