"""Error replies for unit tests: what a caller gets when a remote handler raises.

    from ion.core.exception import NotFound
    from ion.test import remote_error

    kv.get.side_effect = remote_error(NotFound, "no key 'x'")   # a faked client's call
    with pytest.raises(ReceivedApplicationError) as caught: ...
    assert caught.value.code == 404

L{remote_error} builds the exception from the same envelope a container
sends (L{ion.core.exception.error_content}: code, type, message) and the same
headers a failure reply carries, rebuilt as the caller's side does
(L{ion.core.exception.received_error}; a L{Refuse} becomes L{RequestRefused}).
"""

from __future__ import annotations

from typing import Any

from ion.core import exception as exc
from ion.core.messaging import message as m


def remote_error(
    error: type[BaseException] | BaseException,
    message: str = "",
    *,
    code: int | None = None,
    sender: str = "remote.1@test",
    protocol: str = "rpc",
) -> exc.ReceivedError:
    """The caller-side exception for a remote handler that raised C{error}.

    @param error: an exception class (made with C{message}) or instance; an
        L{ApplicationError} carries its 4xx code, anything else is a 500.
    @param code: a response code to send instead of the error's own.
    @param sender: the id of the process that answered (headers C{sender}).
    @param protocol: the conversation's protocol (C{rpc}, C{request}, ...).
    @return: a L{ReceivedApplicationError} (4xx), L{ReceivedContainerError} (5xx) or
        L{RequestRefused} (a L{Refuse}), as a real reply would raise.
    """
    instance = error(message) if isinstance(error, type) else error
    content = exc.error_content(instance)
    if code is not None:
        content["code"] = code
    refused = isinstance(instance, exc.Refuse)
    headers: dict[str, Any] = {
        m.SENDER: sender,
        m.SENDER_NAME: sender.split(".", 1)[0],
        m.PROTOCOL: protocol,
        m.PERFORMATIVE: "refuse" if refused else "failure",
        m.OP: "result",
        m.STATUS: m.STATUS_ERROR,
    }
    if refused:
        return exc.RequestRefused(headers, content)
    return exc.received_error(headers, content)
