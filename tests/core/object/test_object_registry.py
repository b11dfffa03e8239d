"""Tests for ion.core.object.registry: type ids <-> message classes."""

from __future__ import annotations

import pytest

from ion.core.exception import BadRequest, TypeRegistrationError, UnknownTypeError
from ion.core.object.proto import core_pb2, events_pb2, examples_pb2
from ion.core.object.registry import TypeRegistry, declared_type_id, default_registry

EXPECTED_IDS = {
    9: core_pb2.TypeIdentifier,
    11: core_pb2.Response,
    2322: events_pb2.EventMessage,
    2323: events_pb2.ResourceLifecycleEvent,
    2324: events_pb2.ScheduleEvent,
    2325: events_pb2.ResourceModificationEvent,
    2326: events_pb2.LoggingEvent,
    2327: events_pb2.SubscriptionEvent,
    2329: events_pb2.DataBlockEvent,
    2332: events_pb2.AppLifecycleEvent,
    2333: events_pb2.ContainerStartupEvent,
    2334: events_pb2.ProcessLifecycleEvent,
    2335: events_pb2.ContainerLifecycleEvent,
    2336: events_pb2.SupervisionEvent,
    2337: events_pb2.PeerStateEvent,
    2338: events_pb2.CloudEventEvent,
    20001: examples_pb2.Person,
    20002: examples_pb2.Address,
}


def test_scan_finds_every_shipped_type():
    """Scanning the proto package registers exactly the shipped types under their ids."""
    registry = TypeRegistry.from_package()
    assert {i: registry.class_for(i) for i in registry.ids()} == EXPECTED_IDS
    for type_id, cls in EXPECTED_IDS.items():
        assert registry.type_id_of(cls) == type_id
        assert registry.type_id_of(cls()) == type_id


def test_nested_message_without_id_is_not_registered():
    """A nested helper message that declares no id (Person.PhoneNumber) stays out."""
    registry = TypeRegistry.from_package()
    assert declared_type_id(examples_pb2.Person.PhoneNumber) is None
    with pytest.raises(UnknownTypeError):
        registry.type_id_of(examples_pb2.Person.PhoneNumber)


def test_register_refuses_duplicate_declared_id(schema_module):
    """A second schema declaring an id that is already taken is refused, naming both types."""
    registry = TypeRegistry.from_package()
    clash = schema_module("clash", {"Clash": 20001})
    with pytest.raises(TypeRegistrationError, match=r"20001 of clash\.Clash .* ion\.Person"):
        registry.register_module(clash)
    assert registry.class_for(20001) is examples_pb2.Person


def test_register_refuses_duplicate_explicit_id():
    """Registering another class under a taken id is refused."""
    registry = TypeRegistry()
    registry.register(examples_pb2.Person)
    with pytest.raises(TypeRegistrationError, match="already taken"):
        registry.register(examples_pb2.Address, type_id=20001)


def test_register_refuses_class_without_id(schema_module):
    """A message class whose schema declares no type id cannot be registered."""
    module = schema_module("noid", {"NoId": None})
    with pytest.raises(TypeRegistrationError, match="declares no type id"):
        TypeRegistry().register(module.NoId)


def test_register_refuses_non_message():
    """Something that is not a protobuf message class cannot be registered."""
    with pytest.raises(TypeRegistrationError, match="not a protobuf message"):
        TypeRegistry().register(dict, type_id=5)


def test_register_same_class_twice_is_a_no_op():
    """Registering a class again under its own id changes nothing."""
    registry = TypeRegistry()
    assert registry.register(examples_pb2.Person) == 20001
    assert registry.register(examples_pb2.Person) == 20001
    assert len(registry) == 1


def test_register_module_skips_untyped_messages(schema_module):
    """Scanning a module registers its typed messages and skips the untyped ones."""
    module = schema_module("mixed", {"Typed": 70001, "Untyped": None})
    registry = TypeRegistry()
    assert registry.register_module(module) == [module.Typed]
    assert registry.ids() == [70001]


def test_registries_are_independent(schema_module):
    """A fresh registry does not see registrations made in another one."""
    module = schema_module("local", {"Local": 70002})
    one = TypeRegistry.from_package()
    one.register_module(module)
    assert 70002 in one
    assert 70002 not in TypeRegistry.from_package()
    assert 70002 not in default_registry()


def test_unknown_id_is_a_bad_request():
    """Looking up an unregistered id raises UnknownTypeError with code 400."""
    with pytest.raises(UnknownTypeError, match="unknown object type id 424242") as info:
        TypeRegistry.from_package().class_for(424242)
    assert isinstance(info.value, BadRequest)
    assert info.value.code == 400


def test_resolve_by_id_name_and_class():
    """resolve accepts a type id, a full name or a registered class."""
    registry = TypeRegistry.from_package()
    assert registry.resolve(20001) is examples_pb2.Person
    assert registry.resolve("ion.Person") is examples_pb2.Person
    assert registry.resolve(examples_pb2.Person) is examples_pb2.Person
    with pytest.raises(UnknownTypeError, match="'Person'"):
        registry.resolve("Person")


def test_identifier_names_the_type():
    """identifier returns a TypeIdentifier with the object's id and version 1."""
    ident = TypeRegistry.from_package().identifier(examples_pb2.Person())
    assert (ident.object_id, ident.version) == (20001, 1)


@pytest.mark.parametrize("bad", [-5, True, "77", 2**32, 1.5])
def test_register_refuses_an_id_that_cannot_travel(bad: object) -> None:
    """An id travels as the digits of a uint32: anything else would register and
    then fail every receiver."""
    with pytest.raises(TypeRegistrationError, match="expected a whole number from 1 to"):
        TypeRegistry().register(examples_pb2.Person, type_id=bad)  # type: ignore[arg-type]
