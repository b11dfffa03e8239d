"""remote_error: the exception a faked client raises is the one a real error reply raises."""

from __future__ import annotations

from typing import Any

import pytest

from ion.core import exception as exc
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from ion.test import remote_error


class Failing(ServiceProcess):
    """Raises what each op is named after."""

    service_name = "failing"

    def op_missing(self, content: Any, headers: dict, msg: Any) -> None:
        raise exc.NotFound("no key 'x'")

    def op_crash(self, content: Any, headers: dict, msg: Any) -> None:
        raise RuntimeError("disk on fire")

    def op_debit(self, content: Any, headers: dict, msg: Any) -> None:
        raise exc.Refuse("insufficient funds")


def same(fake: exc.ReceivedError, real: exc.ReceivedError) -> None:
    assert type(fake) is type(real)
    assert (fake.code, fake.error_type, fake.message) == (real.code, real.error_type, real.message)
    assert fake.content == real.content
    for key in ("performative", "status", "protocol", "op"):
        assert fake.headers[key] == real.headers[key], key


@pytest.mark.parametrize(
    ("op", "protocol", "fake"),
    [
        ("missing", "rpc", lambda: remote_error(exc.NotFound, "no key 'x'")),
        ("crash", "rpc", lambda: remote_error(RuntimeError("disk on fire"))),
        (
            "debit",
            "request",
            lambda: remote_error(exc.Refuse, "insufficient funds", protocol="request"),
        ),
    ],
    ids=["4xx", "500", "refused"],
)
async def test_remote_error_is_what_a_real_error_reply_raises(container, op, protocol, fake):
    """remote_error(...) equals, in type, code, type name, message, content and the
    headers a caller may look at, what a call to a handler raising it raises."""
    await container.spawn(Failing)
    caller = await container.spawn(Process)
    call = caller.rpc_send if protocol == "rpc" else caller.request
    with pytest.raises(exc.ReceivedError) as caught:
        await call("failing", op, None)

    same(fake(), caught.value)


def test_remote_error_takes_a_code_and_a_sender() -> None:
    """code= overrides the error's own; sender= is who answered, as describe() says."""
    error = remote_error(exc.BadRequest, "no", code=409, sender="kv.3@c1")
    assert isinstance(error, exc.ReceivedApplicationError) and error.code == 409
    assert error.describe() == "[409] BadRequest: no (from kv.3@c1)"
