"""Map object type ids to protobuf message classes and back.

Each ion object type declares its id in its schema (C{option (ion.type_id) = n;}).
A L{TypeRegistry} is built by scanning the generated modules' descriptors for
that option. L{default_registry} holds the one built from ion's own schemas;
tests and special callers build their own with L{TypeRegistry.from_package}.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from types import ModuleType

from google.protobuf.message import Message

from ion.core.exception import TypeRegistrationError, UnknownTypeError
from ion.core.object.proto import core_pb2, ion_options_pb2

PROTO_PACKAGE = "ion.core.object.proto"

MessageClass = type[Message]


def declared_type_id(cls: MessageClass) -> int | None:
    """The type id C{cls}'s schema declares, or None when it declares none."""
    options = cls.DESCRIPTOR.GetOptions()
    if not options.HasExtension(ion_options_pb2.type_id):
        return None
    return options.Extensions[ion_options_pb2.type_id]


def _message_classes(module: ModuleType) -> Iterator[MessageClass]:
    """Every message class a generated module defines, nested ones included."""
    stack = [getattr(module, name) for name in module.DESCRIPTOR.message_types_by_name]
    while stack:
        cls = stack.pop(0)
        yield cls
        stack.extend(getattr(cls, nested.name) for nested in cls.DESCRIPTOR.nested_types)


class TypeRegistry:
    """A two-way map between type ids and message classes."""

    def __init__(self) -> None:
        self._by_id: dict[int, MessageClass] = {}
        self._by_class: dict[MessageClass, int] = {}
        self._by_name: dict[str, MessageClass] = {}

    @classmethod
    def from_package(cls, package: str = PROTO_PACKAGE) -> TypeRegistry:
        """A registry of every typed message in C{package}'s C{*_pb2} modules."""
        registry = cls()
        pkg = importlib.import_module(package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
            if info.name.endswith("_pb2"):
                registry.register_module(importlib.import_module(f"{package}.{info.name}"))
        return registry

    def register_module(self, module: ModuleType) -> list[MessageClass]:
        """Register every message in C{module} that declares a type id; return them."""
        found = [c for c in _message_classes(module) if declared_type_id(c) is not None]
        for message_class in found:
            self.register(message_class)
        return found

    def register(self, cls: MessageClass, type_id: int | None = None) -> int:
        """Register C{cls} under its declared id (or C{type_id}) and return the id.

        Registering the same class under the same id again does nothing.

        @raise TypeRegistrationError: C{cls} has no id, or another class holds it.
        """
        name = getattr(getattr(cls, "DESCRIPTOR", None), "full_name", repr(cls))
        if not (isinstance(cls, type) and issubclass(cls, Message)):
            raise TypeRegistrationError(f"{name} is not a protobuf message class")
        if type_id is None:
            type_id = declared_type_id(cls)
        if not type_id:
            raise TypeRegistrationError(
                f"{name} declares no type id; add 'option (ion.type_id) = <n>;' to its schema"
            )
        if isinstance(type_id, bool) or not isinstance(type_id, int) or not 0 < type_id < 2**32:
            raise TypeRegistrationError(
                f"type id {type_id!r} of {name}: expected a whole number from 1 to {2**32 - 1} "
                "(the schema option is a uint32, and the id travels as digits)"
            )
        holder = self._by_id.get(type_id)
        if holder is cls:
            return type_id
        if holder is not None:
            raise TypeRegistrationError(
                f"type id {type_id} of {name} is already taken by {holder.DESCRIPTOR.full_name}"
            )
        if cls in self._by_class:
            raise TypeRegistrationError(
                f"{name} is already registered with type id {self._by_class[cls]}"
            )
        self._by_id[type_id] = cls
        self._by_class[cls] = type_id
        self._by_name[cls.DESCRIPTOR.full_name] = cls
        return type_id

    def class_for(self, type_id: int) -> MessageClass:
        """The message class registered under C{type_id}.

        @raise UnknownTypeError: nothing is registered under it (a 400 error).
        """
        try:
            return self._by_id[type_id]
        except (KeyError, TypeError):
            raise UnknownTypeError(f"unknown object type id {type_id!r}") from None

    def type_id_of(self, obj_or_cls: Message | MessageClass) -> int:
        """The type id of a registered message class or instance.

        @raise UnknownTypeError: the class is not registered.
        """
        cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
        try:
            return self._by_class[cls]
        except KeyError:
            name = getattr(getattr(cls, "DESCRIPTOR", None), "full_name", cls.__name__)
            raise UnknownTypeError(f"{name} is not a registered object type") from None

    def resolve(self, type_or_id: int | str | MessageClass) -> MessageClass:
        """A message class from a type id, a full name (C{'ion.Person'}) or the class itself."""
        if isinstance(type_or_id, type):
            self.type_id_of(type_or_id)
            return type_or_id
        if isinstance(type_or_id, str):
            try:
                return self._by_name[type_or_id]
            except KeyError:
                raise UnknownTypeError(f"unknown object type {type_or_id!r}") from None
        return self.class_for(type_or_id)

    def identifier(self, obj_or_cls: Message | MessageClass) -> core_pb2.TypeIdentifier:
        """A C{TypeIdentifier} message naming C{obj_or_cls}'s type (version 1)."""
        return core_pb2.TypeIdentifier(object_id=self.type_id_of(obj_or_cls), version=1)

    def ids(self) -> list[int]:
        """The registered type ids, sorted."""
        return sorted(self._by_id)

    def __contains__(self, type_id: object) -> bool:
        return type_id in self._by_id

    def __len__(self) -> int:
        return len(self._by_id)


_default: TypeRegistry | None = None


def default_registry() -> TypeRegistry:
    """The registry of ion's own object types, built on first use."""
    global _default
    if _default is None:
        _default = TypeRegistry.from_package()
    return _default
