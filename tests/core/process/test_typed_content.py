"""Protobuf objects as message content, and the errors bad object content gets."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from ion.core import exception as exc
from ion.core.cc.container import Container
from ion.core.messaging import message as m
from ion.core.object.helpers import create_object
from ion.core.object.proto.core_pb2 import Response
from ion.core.object.proto.examples_pb2 import Person
from ion.core.process.process import REPLY_KEY_SUFFIX, Process
from ion.core.process.service import ServiceProcess
from tests.helpers import wait_for


class People(ServiceProcess):
    service_name = "people"

    def op_rename(self, content: Any, headers: dict, msg: m.Message) -> Any:
        if not isinstance(content, Person):
            raise exc.BadRequest(f"rename takes a Person, not {type(content).__name__}")
        content.name = content.name.upper()
        return content

    def op_fail_enveloped(self, content: Any, headers: dict, msg: m.Message) -> None:
        envelope = create_object(Response, code="NOT_FOUND", text="nobody here")
        self.reply_err(msg, envelope)


async def pair(container: Container) -> tuple[People, Process]:
    return await container.spawn(People), await container.spawn(Process, name="client")


@pytest_twisted.ensureDeferred
async def test_object_round_trip_over_rpc(container: Container) -> None:
    """A Person sent as content arrives as a Person, and comes back as one."""
    _, client = await pair(container)
    person = create_object(Person, name="ada", id=7, address={"city": "London"})
    reply = await wait_for(client.rpc_send("people", "rename", person))
    assert isinstance(reply, Person)
    assert reply.name == "ADA" and reply.id == 7 and reply.address.city == "London"


def test_encoding_header_names_the_type_id() -> None:
    """The encoding header says which type id the content bytes are."""
    headers: dict[str, Any] = {}
    body = m.encode(headers, create_object(Person, name="x"))
    assert headers[m.ENCODING] == "ion-object:20001"
    assert isinstance(m.decode(body).content, Person)


@pytest.mark.parametrize(
    "encoding,content,fragment",
    [
        ("ion-object:999999", b"", "999999"),
        ("ion-object:20001", b"\xff\xff\xff\xff", "not a valid"),
        ("ion-object:abc", b"", "malformed object content"),
        ("zip", b"", "unknown content encoding"),
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_object_content_answered_400(
    container: Container, encoding: str, content: bytes, fragment: str
) -> None:
    """An unknown type id or corrupt object bytes get a 400 error; the service stays up."""
    service, client = await pair(container)
    conv_id = f"{client.id}#bad"
    conv = client.conversations.start(conv_id, "rpc", 5)
    headers = {
        m.SENDER: str(client.id),
        m.RECEIVER: "people",
        m.REPLY_TO: str(client.id) + REPLY_KEY_SUFFIX,
        m.CONV_ID: conv_id,
        m.PROTOCOL: "rpc",
        m.PERFORMATIVE: "request",
        m.OP: "rename",
        m.ENCODING: encoding,
    }
    import msgpack

    await container.exchange.publish("people", msgpack.packb([headers, content]))
    with pytest.raises(exc.ReceivedApplicationError) as info:
        await wait_for(conv.deferred)
    assert info.value.code == 400 and fragment in info.value.message
    assert service.state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_error_envelope_object_maps_to_exception(container: Container) -> None:
    """An error reply carrying a Response object is rebuilt by its code (404: application)."""
    _, client = await pair(container)
    with pytest.raises(exc.ReceivedApplicationError) as info:
        await wait_for(client.rpc_send("people", "fail_enveloped"))
    assert info.value.code == 404 and info.value.message == "nobody here"
    assert isinstance(info.value.content, Response)


def test_container_errors_map_to_5xx() -> None:
    """Codes 500-599 rebuild as ReceivedContainerError, 400-499 as ReceivedApplicationError."""
    assert isinstance(exc.received_error({}, {"code": 503}), exc.ReceivedContainerError)
    assert isinstance(exc.received_error({}, {"code": 401}), exc.ReceivedApplicationError)
    assert type(exc.received_error({}, {"code": 3002})) is exc.ReceivedError
