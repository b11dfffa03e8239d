"""One call through a container's manhole socket: C{ion-rpc --attach SOCKET}.

The manhole serves the shell on its socket; a client whose first bytes are
L{HELLO} asks for one call instead. It then sends one frame (a 4-byte
big-endian length, then msgpack) holding C{{service, op, content, timeout}};
the container makes the call from the shell's process and answers, after
whatever the terminal had written, with L{REPLY} and one frame holding
C{{status, reply}} or C{{status, error}}, then closes. The status is ion-rpc's
exit status. The peer-uid rule is the shell's (L{ion.core.cc.peer}): each end
checks the other. No Twisted here at import: the client side starts fast.
"""

from __future__ import annotations

import base64
import struct
import time
from typing import Any

import msgpack

from ion.core.cc import peer

HELLO = b"\x00ion-rpc/1\n"
REPLY = b"\x00ion-rpc-reply/1\n"
EX_OK, EX_ERROR_REPLY, EX_NO_ANSWER, EX_UNREADABLE, EX_USAGE = 0, 1, 2, 3, 64
_LENGTH = struct.Struct(">I")
MAX_FRAME = 128 * 1024 * 1024  # RabbitMQ's own limit on a message, and ion's default


_CLOSED = (
    "{path}: the container closed the connection without answering "
    "(a container turns away a user who is not its own)"
)


class AttachError(Exception):
    """The call could not be made through the socket (the message says why)."""


def frame(value: Any) -> bytes:
    """C{value} as one frame: its length, then its msgpack."""
    body = msgpack.packb(value, use_bin_type=True)
    return _LENGTH.pack(len(body)) + body


def unframe(buffer: bytes) -> tuple[Any, bytes] | None:
    """The value of the frame C{buffer} begins with and what follows it, or None if
    it is not all there yet.

    @raise ValueError: the frame is larger than L{MAX_FRAME}, or not msgpack.
    """
    if len(buffer) < _LENGTH.size:
        return None
    (size,) = _LENGTH.unpack_from(buffer)
    if size > MAX_FRAME:
        raise ValueError(f"a frame of {size} bytes is larger than {MAX_FRAME}")
    end = _LENGTH.size + size
    if len(buffer) < end:
        return None
    body = buffer[_LENGTH.size : end]
    return msgpack.unpackb(body, raw=False, strict_map_key=False), buffer[end:]


def to_json(value: Any) -> Any:
    """C{value} as JSON can hold it: bytes as base64, protobuf as its mapping, else repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {
            (k if isinstance(k, str) else str(to_json(k))): to_json(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    if hasattr(value, "DESCRIPTOR") and hasattr(value, "SerializeToString"):
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(value)
    return repr(value)


async def one_call(
    proc: Any, service: str, op: str, content: Any, timeout: float, system: str
) -> tuple[int, Any]:
    """Call C{service}'s C{op} from C{proc}: (ion-rpc's exit status, the reply as
    JSON holds it, or what went wrong). C{system} names the system in messages."""
    from ion.core import exception as exc
    from ion.core.id import ProcessId
    from ion.core.log import redact_text

    where = f"{service}.{op}"
    try:
        reply = await proc.rpc_send(service, op, content, timeout=timeout)
    except exc.TimeoutError:
        return EX_NO_ANSWER, f"{where}: no reply within {timeout:g}s"
    except exc.NoSuchServiceError:
        if service.startswith("cc.") and not ProcessId.is_pid(service):  # an agent's key
            return EX_NO_ANSWER, f"{where}: no container {service[3:]!r} in {system}"
        return EX_NO_ANSWER, f"{where}: no service or process {service!r} in {system}"
    except exc.ReceivedError as e:
        return EX_ERROR_REPLY, f"{where} failed: {redact_text(e.describe())}"
    except exc.BrokerError as e:
        return EX_NO_ANSWER, f"{where}: broker: {redact_text(str(e))}"
    except exc.MessageFormatError as e:
        # The call was made (and its op ran): only its answer cannot be read here.
        return EX_UNREADABLE, (
            f"{where} answered, but the reply cannot be read: {redact_text(str(e))} "
            "(an object type of the service's own: --import the module that registers it)"
        )
    return EX_OK, to_json(reply)


def check_request(request: Any) -> tuple[str, str, Any, float]:
    """The service, op, content and timeout of a request frame.

    @raise ValueError: it is not one.
    """
    if not isinstance(request, dict):
        raise ValueError("the request is not a mapping")
    service, op, timeout = request.get("service"), request.get("op"), request.get("timeout")
    if not isinstance(service, str) or not service or not isinstance(op, str) or not op:
        raise ValueError("the request needs a service and an op (strings)")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, not {timeout!r}")
    return service, op, request.get("content"), float(timeout)


def call(path: str, service: str, op: str, content: Any, timeout: float) -> tuple[int, Any]:
    """Make one call through the manhole socket at C{path}: (status, reply or message).

    @raise AttachError: no socket, not this user's (or root's), or no answer.
    """
    try:
        sock = peer.connect(path)
    except peer.Refused as e:
        raise AttachError(str(e)) from None
    deadline = time.monotonic() + timeout + 5.0  # the container's own timeout goes first
    try:
        sock.sendall(
            HELLO + frame({"service": service, "op": op, "content": content, "timeout": timeout})
        )
        buffer = b""
        while True:
            found = buffer.find(REPLY)
            if found >= 0:
                parsed = unframe(buffer[found + len(REPLY) :])
                if parsed is not None:
                    answer = parsed[0]
                    if not isinstance(answer, dict) or not isinstance(answer.get("status"), int):
                        raise AttachError(f"{path}: the container's answer is not one")
                    status = answer["status"]
                    return status, answer.get("reply" if status == EX_OK else "error")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AttachError(f"{path}: no answer within {timeout:g}s")
            sock.settimeout(left)
            data = sock.recv(65536)
            if not data:
                raise AttachError(f"{path}: the container closed the connection without answering")
            buffer += data
    except TimeoutError:
        raise AttachError(f"{path}: no answer within {timeout:g}s") from None
    except (ConnectionResetError, BrokenPipeError):
        raise AttachError(_CLOSED.format(path=path)) from None
    except OSError as e:
        raise AttachError(f"{path}: {e.strerror or e}") from None
    except ValueError as e:
        raise AttachError(f"{path}: the container's answer is unreadable: {e}") from None
    finally:
        sock.close()


class AttachedCall:
    """The container's side of one attached call, fed the bytes after L{HELLO}.

    @param api: the shell's L{ion.core.cc.shell_api.ShellApi} (its process calls).
    @param transport: where the answer goes; closed once it is written.
    """

    def __init__(self, api: Any, transport: Any) -> None:
        self.api = api
        self.transport = transport
        self._buffer = b""
        self._started = False

    def feed(self, data: bytes) -> None:
        if self._started:
            return  # one call per connection: anything after the request is ignored
        self._buffer += data
        try:
            parsed = unframe(self._buffer)
        except ValueError as e:
            self._answer(EX_USAGE, f"bad request: {e}")
            return
        if parsed is None:
            return
        self._started = True
        self._buffer = b""
        from twisted.internet.defer import Deferred

        d = Deferred.fromCoroutine(self._run(parsed[0]))
        d.addErrback(lambda f: self._answer(EX_NO_ANSWER, f"failed: {f.getErrorMessage()}"))

    async def _run(self, request: Any) -> None:
        try:
            service, op, content, timeout = check_request(request)
        except ValueError as e:
            self._answer(EX_USAGE, f"bad request: {e}")
            return
        container = self.api.container
        proc = await self.api.shell_process()
        system = f"system {container.sysname!r}"
        status, payload = await one_call(proc, service, op, content, timeout, system)
        self._answer(status, payload)

    def _answer(self, status: int, payload: Any) -> None:
        self._started = True
        key = "reply" if status == EX_OK else "error"
        self.transport.write(REPLY + frame({"status": status, key: payload}))
        self.transport.loseConnection()
