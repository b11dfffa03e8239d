"""The seam between ion objects and bytes: what the messaging layer calls.

An object travels as (type id, serialized bytes); the receiver looks the id up
in a L{TypeRegistry} to know which class parses the bytes.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.message import DecodeError, Message

from ion.core.exception import ObjectDecodeError
from ion.core.object.registry import TypeRegistry, default_registry


def is_object(value: Any) -> bool:
    """True when C{value} is a protobuf message (an ion object)."""
    return isinstance(value, Message)


def encode_object(obj: Message, registry: TypeRegistry | None = None) -> tuple[int, bytes]:
    """Serialize C{obj}; return its type id and bytes.

    @raise UnknownTypeError: C{obj}'s class is not a registered object type.
    """
    reg = default_registry() if registry is None else registry
    return reg.type_id_of(obj), obj.SerializeToString()


def decode_object(type_id: int, data: bytes, registry: TypeRegistry | None = None) -> Message:
    """Parse C{data} as the object type registered under C{type_id}.

    @raise UnknownTypeError: no type is registered under C{type_id} (code 400).
    @raise ObjectDecodeError: C{data} is not a valid serialization of it (code 400).
    """
    reg = default_registry() if registry is None else registry
    cls = reg.class_for(type_id)
    try:
        return cls.FromString(data)
    except (DecodeError, TypeError) as e:
        raise ObjectDecodeError(
            f"bytes are not a valid {cls.DESCRIPTOR.full_name} (type id {type_id}): {e}"
        ) from e
