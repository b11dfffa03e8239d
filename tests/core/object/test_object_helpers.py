"""Tests for ion.core.object.helpers: create_object, set_fields, list_set_fields."""

from __future__ import annotations

import pytest

from ion.core.exception import BadRequest, FieldError, UnknownTypeError
from ion.core.object.helpers import create_object, list_set_fields, set_fields
from ion.core.object.proto import core_pb2, events_pb2, examples_pb2


def test_enum_by_name_and_number():
    """Enum fields accept a member name or a member number."""
    by_name = create_object(20001, phone=[{"type": "WORK"}])
    by_number = create_object(20001, phone=[{"type": examples_pb2.Person.WORK}])
    assert by_name.phone[0].type == examples_pb2.Person.WORK == by_number.phone[0].type
    response = create_object(core_pb2.Response, code="NOT_FOUND")
    assert response.code == 404


def test_nested_dict_sets_nested_message():
    """A dict sets the fields of a nested message."""
    person = create_object("ion.Person", address={"city": "Woods Hole", "country": "US"})
    assert person.address == examples_pb2.Address(city="Woods Hole", country="US")


def test_empty_dict_marks_nested_message_set():
    """An empty dict still marks the nested message as present."""
    person = create_object(20001, address={})
    assert person.HasField("address")


def test_nested_message_instance_is_copied():
    """A message instance of the right type is accepted for a nested field."""
    address = examples_pb2.Address(city="Boston")
    assert create_object(20001, address=address).address == address


def test_repeated_from_list():
    """Lists set repeated fields, of messages (from dicts) and of scalars."""
    person = create_object(20001, phone=[{"number": "1"}, {"number": "2", "type": "HOME"}])
    assert [(p.number, p.type) for p in person.phone] == [("1", 0), ("2", 1)]
    startup = create_object(2333, startup_names=["a.app", "b.rel"])
    assert list(startup.startup_names) == ["a.app", "b.rel"]


def test_set_fields_replaces_repeated_and_clears_with_none():
    """set_fields replaces a repeated field's items and None clears a field."""
    person = create_object(20001, name="Ada", phone=[{"number": "1"}, {"number": "2"}])
    set_fields(person, phone=[{"number": "3"}], name=None)
    assert [p.number for p in person.phone] == ["3"]
    assert list_set_fields(person) == ["phone"]


def test_oneof_payload_from_dict():
    """A dict sets one member of the event's payload oneof."""
    event = create_object(
        2322, event_id=1075, app_lifecycle={"app_name": "hello", "state": "STARTED"}
    )
    assert event.WhichOneof("payload") == "app_lifecycle"
    assert event.app_lifecycle.state == events_pb2.AppLifecycleEvent.STARTED


def test_list_set_fields_in_field_order():
    """list_set_fields names the fields holding a value, in field-number order."""
    person = create_object(20001, email="a@b", name="Ada", id=0)
    assert list_set_fields(person) == ["name", "email"]  # proto3: 0 is "not set"


def test_unknown_field_is_named():
    """An unknown field raises FieldError (400) naming the type and field."""
    with pytest.raises(FieldError, match=r"ion\.Person\.nickname: no such field") as info:
        create_object(20001, nickname="A")
    assert isinstance(info.value, BadRequest) and info.value.code == 400


def test_wrong_scalar_type_is_named():
    """A value of the wrong type for a scalar field raises FieldError naming the field."""
    with pytest.raises(FieldError, match=r"ion\.Person\.id: 'seven' \(str\)"):
        create_object(20001, id="seven")


def test_out_of_range_number_is_named():
    """A number out of the field's range raises FieldError naming the field."""
    with pytest.raises(FieldError, match=r"ion\.Person\.id:"):
        create_object(20001, id=2**40)


def test_unknown_enum_name_is_named():
    """An enum name that is not a member raises FieldError listing the members."""
    with pytest.raises(
        FieldError, match=r"ion\.Person\.phone\[1\]\.type: 'CAR'.*MOBILE, HOME, WORK"
    ):
        create_object(20001, phone=[{"type": "HOME"}, {"type": "CAR"}])


def test_unknown_enum_number_is_refused():
    """An enum number that is not a member raises FieldError."""
    with pytest.raises(FieldError, match=r"ion\.LoggingEvent\.level: 15"):
        create_object(2326, level=15)


def test_wrong_container_types_are_named():
    """A scalar for a nested or repeated field, or a dict for a list, raises FieldError."""
    with pytest.raises(FieldError, match=r"ion\.Person\.address: expected a dict or ion\.Address"):
        create_object(20001, address="1 Sea Rd")
    with pytest.raises(FieldError, match=r"ion\.Person\.phone: expected a list"):
        create_object(20001, phone="555-1234")
    with pytest.raises(FieldError, match=r"ion\.Person\.phone\[0\]: expected a dict"):
        create_object(20001, phone=["555-1234"])
    with pytest.raises(FieldError, match=r"ion\.Person\.address: expected a dict or ion\.Address"):
        create_object(20001, address=examples_pb2.Person())


def test_wrong_item_in_scalar_list_is_named():
    """A wrong item in a repeated scalar field raises FieldError naming its index."""
    with pytest.raises(FieldError, match=r"ion\.ContainerStartupEvent\.startup_names\[1\]"):
        create_object(2333, startup_names=["a.app", 3])


def test_unknown_type_is_refused():
    """create_object of an unregistered type id raises UnknownTypeError."""
    with pytest.raises(UnknownTypeError):
        create_object(31337)
