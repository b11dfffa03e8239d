"""Fixtures for the object tests: throwaway schemas in a private descriptor pool."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ion.core.object.proto import ion_options_pb2


def _schema_module(name: str, messages: dict[str, int | None]) -> ModuleType:
    """A module like a generated one, defining messages named as given with those type ids."""
    pool = descriptor_pool.DescriptorPool()
    for dep in (descriptor_pb2, ion_options_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        dep.DESCRIPTOR.CopyToProto(proto)
        pool.Add(proto)
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"{name}.proto",
        package=name,
        syntax="proto3",
        dependency=[ion_options_pb2.DESCRIPTOR.name],
    )
    for message_name, type_id in messages.items():
        message = proto.message_type.add(name=message_name)
        message.field.add(
            name="text", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING
        )
        if type_id is not None:
            message.options.Extensions[ion_options_pb2.type_id] = type_id
    module = ModuleType(f"{name}_pb2")
    module.DESCRIPTOR = pool.Add(proto)
    for message_name in messages:
        descriptor = pool.FindMessageTypeByName(f"{name}.{message_name}")
        setattr(module, message_name, message_factory.GetMessageClass(descriptor))
    return module


@pytest.fixture
def schema_module() -> Callable[[str, dict[str, int | None]], ModuleType]:
    """Factory of generated-like modules: C{schema_module(name, {message: type_id})}."""
    return _schema_module
