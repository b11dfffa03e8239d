"""Tests for ion.core.object.codec: (type id, bytes) round trips and bad input."""

from __future__ import annotations

import pytest

from ion.core.exception import BadRequest, ObjectDecodeError, UnknownTypeError
from ion.core.object.codec import decode_object, encode_object, is_object
from ion.core.object.helpers import create_object, list_set_fields
from ion.core.object.registry import TypeRegistry

# Some fields set on every shipped type, keyed by type id.
SAMPLES = {
    9: {"object_id": 20001, "version": 1},
    11: {"code": "ION_TIMEOUT", "text": "no reply in 10 s", "error_type": "TimeoutError"},
    2322: {
        "event_id": 1052,
        "origin": "hello.3@c1",
        "datetime": 1299980211.25,
        "description": "process is active",
        "name": "hello",
        "user_id": "anonymous",
        "process_lifecycle": {"process_id": "hello.3@c1", "state": "ACTIVE"},
    },
    2323: {"resource_id": "r-1", "state": "NEW"},
    2324: {"task_id": "t-9", "payload": b"\x00\x01"},
    2325: {"resource_id": "r-2", "fields": ["name", "email"], "state": "modified"},
    2326: {"level": "CRITICAL", "message": "disk full", "logger": "ion.core"},
    2327: {"subscriber_id": "s-1", "topic": "1052.#"},
    2329: {"block_id": "b-1", "data": bytes(range(256)), "encoding": "raw"},
    2332: {"app_name": "hello", "version": "0.1", "state": "STOPPED"},
    2333: {"container_id": "c1", "startup_names": ["res/deploy/hello.rel", "res/apps/x.app"]},
    2334: {"process_id": "p.1@c1", "name": "p", "container_id": "c1", "state": "ERROR"},
    2335: {"container_id": "c1", "state": "TERMINATED"},
    2336: {"supervisor_id": "sup.1@c1", "child_id": "b", "new_pid": "b.3@c1", "restarts": 1},
    2337: {"observer_id": "c1", "peer_id": "c2", "epoch": 3, "state": "DEAD", "silent_for": 0.5},
    2338: {"source": "/orders", "id": "e1", "type": "t", "json": '{"specversion": "1.0"}'},
    20001: {
        "name": "Ada",
        "id": 7,
        "email": "ada@example.org",
        "phone": [{"number": "1", "type": "HOME"}, {"number": "2", "type": "WORK"}],
        "address": {"line": "1 Sea Rd", "city": "Woods Hole", "country": "US"},
    },
    20002: {"line": "1 Sea Rd", "city": "Woods Hole", "postal_code": "02543", "country": "US"},
}


@pytest.fixture
def registry() -> TypeRegistry:
    return TypeRegistry.from_package()


def test_samples_cover_every_shipped_type(registry):
    """Every registered type has a round-trip sample, so a new type cannot go untested."""
    assert sorted(SAMPLES) == registry.ids()


@pytest.mark.parametrize("type_id", sorted(SAMPLES))
def test_round_trip(type_id, registry):
    """Each shipped type encodes to its id and decodes back to an equal object."""
    obj = create_object(type_id, registry, **SAMPLES[type_id])
    assert list_set_fields(obj) == list(SAMPLES[type_id])
    encoded_id, data = encode_object(obj, registry)
    assert encoded_id == type_id
    assert isinstance(data, bytes) and data
    back = decode_object(encoded_id, data, registry)
    assert type(back) is type(obj)
    assert back == obj


def test_default_registry_round_trip():
    """Without an explicit registry the codec uses the default one."""
    person = create_object("ion.Person", name="Ada")
    assert decode_object(*encode_object(person)) == person


def test_is_object():
    """is_object is true for protobuf messages only."""
    assert is_object(create_object(20002))
    assert not is_object({"name": "Ada"})
    assert not is_object(b"\x0a\x03Ada")


def test_unknown_type_id_is_a_bad_request(registry):
    """Decoding under an id nobody registered raises a 400 error naming the id."""
    with pytest.raises(UnknownTypeError, match="99999") as info:
        decode_object(99999, b"", registry)
    assert isinstance(info.value, BadRequest) and info.value.code == 400


def test_non_integer_type_id_is_a_bad_request(registry):
    """A type id of the wrong kind (a list, say) is an unknown type, not a crash."""
    with pytest.raises(UnknownTypeError):
        decode_object(["20001"], b"", registry)


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a\xff",  # string field 1 claims 255 bytes, has none
        b"\x0a\x02\xff\xfe",  # string field 1 is not UTF-8
        b"\x17",  # wire type 7 does not exist
        b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # varint longer than 10 bytes
    ],
)
def test_corrupt_bytes_are_a_bad_request(data, registry):
    """Bytes that are not a valid Person raise ObjectDecodeError (400) naming the type."""
    with pytest.raises(ObjectDecodeError, match=r"ion\.Person \(type id 20001\)") as info:
        decode_object(20001, data, registry)
    assert info.value.code == 400


def test_non_bytes_data_is_a_bad_request(registry):
    """Data that is not bytes at all raises ObjectDecodeError."""
    with pytest.raises(ObjectDecodeError):
        decode_object(20001, "not bytes", registry)


def test_encode_unregistered_type_is_refused(schema_module):
    """Encoding an object whose class is not in the registry raises UnknownTypeError."""
    module = schema_module("stray", {"Stray": 70003})
    with pytest.raises(UnknownTypeError, match=r"stray\.Stray is not a registered"):
        encode_object(module.Stray(text="x"))
