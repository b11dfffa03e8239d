"""Build and inspect objects from plain Python values (the original's create_object).

Nested messages are given as dicts, repeated fields as lists, enum fields by
member name or number. A value that does not fit raises L{FieldError} (a 400
error) naming the field, e.g. C{ion.Person.phone[1].type}.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from ion.core.exception import FieldError
from ion.core.object.registry import MessageClass, TypeRegistry, default_registry


def create_object(
    type_or_id: int | str | MessageClass,
    /,
    _registry: TypeRegistry | None = None,
    **fields: Any,
) -> Message:
    """A new object of the given type (id, full name or class) with C{fields} set.

    @raise UnknownTypeError: the type is not registered.
    @raise FieldError: a field does not exist or a value does not fit it.
    """
    registry = default_registry() if _registry is None else _registry
    obj = registry.resolve(type_or_id)()
    set_fields(obj, **fields)
    return obj


def set_fields(obj: Message, **fields: Any) -> Message:
    """Set C{fields} on C{obj} (replacing repeated and nested values); return C{obj}."""
    _set_fields(obj, fields, obj.DESCRIPTOR.full_name)
    return obj


def list_set_fields(obj: Message) -> list[str]:
    """Names of the fields of C{obj} that hold a value, in field-number order."""
    return [field.name for field, _ in obj.ListFields()]


def _set_fields(obj: Message, fields: Mapping[str, Any], path: str) -> None:
    by_name = obj.DESCRIPTOR.fields_by_name
    for name, value in fields.items():
        field = by_name.get(name)
        where = f"{path}.{name}"
        if field is None:
            known = ", ".join(by_name)
            raise FieldError(f"{where}: no such field (fields are: {known})")
        if value is None:
            obj.ClearField(name)
        elif _is_map(field):
            _set_map(obj, field, value, where)
        elif field.is_repeated:
            _set_repeated(obj, field, value, where)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            _set_message(getattr(obj, name), value, where, clear=True)
        else:
            try:
                setattr(obj, name, _scalar(field, value, where))
            except (TypeError, ValueError) as e:
                raise FieldError(f"{where}: {_describe(value)} does not fit: {e}") from None


def _set_message(target: Message, value: Any, where: str, clear: bool) -> None:
    if clear:
        target.Clear()
    if isinstance(value, Mapping):
        target.SetInParent()  # so an empty dict still marks the field as set
        _set_fields(target, value, where)
    elif isinstance(value, Message) and value.DESCRIPTOR is target.DESCRIPTOR:
        target.CopyFrom(value)
    else:
        expected = target.DESCRIPTOR.full_name
        raise FieldError(f"{where}: expected a dict or {expected}, got {_describe(value)}")


def _set_repeated(obj: Message, field: FieldDescriptor, value: Any, where: str) -> None:
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        raise FieldError(f"{where}: expected a list, got {_describe(value)}")
    container = getattr(obj, field.name)
    del container[:]
    for i, item in enumerate(value):
        item_where = f"{where}[{i}]"
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            _set_message(container.add(), item, item_where, clear=False)
            continue
        try:
            container.append(_scalar(field, item, item_where))
        except (TypeError, ValueError) as e:
            raise FieldError(f"{item_where}: {_describe(item)} does not fit: {e}") from None


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _set_map(obj: Message, field: FieldDescriptor, value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise FieldError(f"{where}: expected a dict, got {_describe(value)}")
    container = getattr(obj, field.name)
    container.clear()
    value_field = field.message_type.fields_by_name["value"]
    for key, item in value.items():
        item_where = f"{where}[{key!r}]"
        try:
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                _set_message(container[key], item, item_where, clear=False)
            else:
                container[key] = _scalar(value_field, item, item_where)
        except (TypeError, ValueError) as e:
            raise FieldError(f"{item_where}: {_describe(item)} does not fit: {e}") from None


def _scalar(field: FieldDescriptor, value: Any, where: str) -> Any:
    """C{value} ready to assign to a scalar field; enum names become numbers."""
    if field.type != FieldDescriptor.TYPE_ENUM:
        return value
    enum = field.enum_type
    if isinstance(value, str):
        member = enum.values_by_name.get(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        member = enum.values_by_number.get(value)
    else:
        member = None
    if member is None:
        names = ", ".join(enum.values_by_name)
        raise FieldError(f"{where}: {_describe(value)} is not a {enum.full_name} (one of: {names})")
    return member.number


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"
