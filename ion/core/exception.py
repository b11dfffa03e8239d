"""The one exception hierarchy of ion, rooted in L{IonError}.

Errors that cross the wire travel as typed envelopes (status, code, type,
message) and are rebuilt on the caller's side as L{ReceivedError} subclasses.
"""

from __future__ import annotations

from typing import Any

# Response codes, after the original's table (HTTP-like, plus ION codes).
OK = 200
BAD_REQUEST = 400
UNAUTHORIZED = 401
FORBIDDEN = 403
NOT_FOUND = 404
TIMEOUT_CODE = 408
CONFLICT = 409
INTERNAL_ERROR = 500
SERVICE_UNAVAILABLE = 503
ION_TIMEOUT = 3002


class IonError(Exception):
    """Root of every error ion raises on purpose."""


class ConfigurationError(IonError):
    """A configuration value, file or argument is invalid."""


class StartupError(IonError):
    """The container or one of its parts could not start."""


class IllegalStateError(IonError):
    """An object was asked for a transition its state machine does not allow."""


class MessageFormatError(IonError):
    """Bytes or headers that do not form a valid ion message."""

    code = BAD_REQUEST


class BrokerError(IonError):
    """The broker refused an operation or the connection to it failed."""


class BrokerRefusedError(BrokerError):
    """The broker turned the connection away: credentials, vhost access, or a TLS
    certificate it or we do not trust. Trying again will not help."""


class UnroutableError(BrokerError):
    """A mandatory message matched no queue: nobody serves that name."""


class BrokerNackError(BrokerError):
    """The broker refused (nacked) a confirmed message: nothing was queued, so
    sending it again is safe (a quorum queue electing a new leader does this)."""


class BrokerBusyError(BrokerError):
    """The broker takes no more for now: too many publishes await its confirm, or
    wait while it blocks the connection (its resource alarm); past
    C{broker.max_unconfirmed} a publish is refused with this at once."""


class ConnectionLostError(BrokerError):
    """The broker connection went away while an operation was under way."""


class ConnectionClosedError(BrokerError):
    """The connection is not open (never opened, or closed): operations on it are refused."""


class NoSuchExchangeError(BrokerError):
    """The named exchange does not exist (AMQP NOT_FOUND)."""


class NoSuchQueueError(BrokerError):
    """The named queue does not exist (AMQP NOT_FOUND)."""


class ResourceLockedError(BrokerError):
    """The queue is exclusive to another connection (AMQP RESOURCE_LOCKED)."""


class AccessRefusedError(BrokerError):
    """The broker user may not do this: its permissions do not cover the name or
    routing key (AMQP ACCESS_REFUSED, 403)."""


class PreconditionFailedError(BrokerError):
    """A redeclaration does not match, or a delivery was settled twice (AMQP PRECONDITION_FAILED)."""


class QueueTypeError(PreconditionFailedError):
    """A shared queue exists as another type (classic, quorum) than this
    container's C{broker.queue_type} declares it."""


class ProcessError(IonError):
    """A process could not be spawned, found or driven."""


class SpawnError(ProcessError):
    """A process could not be spawned; C{reason} is the exit reason it ended with."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ProcessExit(ProcessError):
    """Raised (or passed to C{Process.exit}) to end a process with C{reason}, an
    exit reason of L{ion.core.process.exit}. From a handler, its request is
    answered with this error and the process then exits with C{reason}; from
    C{on_init}/C{on_activate}, the spawn fails with it."""

    def __init__(self, reason: str = "normal", message: str = "") -> None:
        super().__init__(message or f"process exit: {reason}")
        self.reason = reason


class FatalError(ProcessError):
    """A process cannot go on: raised from a handler, it answers the request with
    this error and then exits with C{error:<its type>}."""


class ConversationError(IonError):
    """A conversation received a message its protocol does not allow."""


class TimeoutError(ConversationError):
    """No reply arrived before the conversation's deadline."""

    code = ION_TIMEOUT


class HandlerTimeoutError(TimeoutError):
    """A handler ran past its deadline and was cut off; its request is answered with this."""


class NoSuchServiceError(ConversationError):
    """The message was addressed to a name nobody serves."""

    code = NOT_FOUND


class ApplicationError(IonError):
    """An expected business error raised by a handler; answered with a 4xx code.

    @ivar code: the response code sent to the caller (400-499).
    """

    code: int = BAD_REQUEST

    def __init__(self, message: str = "", code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class BadRequest(ApplicationError):
    """The request's content is not what the operation takes."""

    code = BAD_REQUEST


class NotFound(ApplicationError):
    """The thing the request names does not exist."""

    code = NOT_FOUND


class ModuleNotFound(NotFound):
    """A container agent was asked to spawn a module or class it cannot find."""


class SpawnFailed(ApplicationError):
    """A container agent's spawn started the process, which failed to start."""

    code = INTERNAL_ERROR


class NotAllowed(ApplicationError):
    """A container agent does not do this for others (its config does not allow it)."""

    code = FORBIDDEN


class Unauthorized(ApplicationError):
    """The request does not prove who sent it: unsigned, badly signed, replayed,
    expired, or anonymous where the policy wants a role."""

    code = UNAUTHORIZED


class SignatureError(Unauthorized):
    """A message that does not verify: unsigned, an unknown key id, a bad
    signature, outside the time window, or replayed (C{reason} says which)."""

    def __init__(self, message: str = "message does not verify", reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class Forbidden(ApplicationError):
    """The sender is known, and the policy does not let it do this."""

    code = FORBIDDEN


#: Errors rebuilt as themselves on the caller's side, by their type's name.
REBUILT: dict[str, type[ApplicationError]] = {
    cls.__name__: cls
    for cls in (
        ModuleNotFound,
        SpawnFailed,
        NotAllowed,
        NotFound,
        BadRequest,
        Unauthorized,
        SignatureError,
        Forbidden,
    )
}


def rebuilt(error: BaseException) -> BaseException:
    """The local exception for a received error whose type ion knows (else C{error})."""
    if isinstance(error, ReceivedError) and (cls := REBUILT.get(error.error_type)):
        return cls(error.message)
    return error


class ReceivedError(IonError):
    """The other side answered with an error; carries its headers and content."""

    def __init__(self, headers: dict[str, Any], content: Any) -> None:
        self.headers = headers
        self.content = content
        super().__init__(self.describe())

    def _field(self, *names: str) -> Any:
        # The envelope is a dict {code, type, message}, or a protobuf Response
        # object {code, error_type, text}.
        for name in names:
            if isinstance(self.content, dict):
                if name in self.content:
                    return self.content[name]
            elif hasattr(self.content, name) and hasattr(self.content, "SerializeToString"):
                return getattr(self.content, name)
        return None

    @property
    def code(self) -> int:
        """The response code the other side sent (500 when it sent none)."""
        code = self._field("code")
        return code if isinstance(code, int) and code else INTERNAL_ERROR

    @property
    def error_type(self) -> str:
        """The name of the exception type raised on the other side, if it said."""
        return str(self._field("type", "error_type") or "")

    @property
    def message(self) -> str:
        """The other side's error message."""
        text = self._field("message", "text")
        return str(self.content) if text is None else str(text)

    def describe(self) -> str:
        """One line: code, remote type and message."""
        kind = f" {self.error_type}" if self.error_type else ""
        return f"[{self.code}]{kind}: {self.message} (from {self.headers.get('sender', '?')})"


class ReceivedApplicationError(ReceivedError):
    """The other side answered with an application error (4xx)."""


class ReceivedContainerError(ReceivedError):
    """The other side answered with a container error (5xx)."""


class RequestRefused(ReceivedApplicationError):
    """The other side refused a request (performative C{refuse})."""


class Refuse(ApplicationError):
    """Raised by a request handler to refuse the request instead of doing it."""

    code = FORBIDDEN


def received_error(headers: dict[str, Any], content: Any) -> ReceivedError:
    """Rebuild the caller-side exception for an error reply."""
    err = ReceivedError(headers, content)
    if 400 <= err.code < 500:
        return ReceivedApplicationError(headers, content)
    if 500 <= err.code < 600:
        return ReceivedContainerError(headers, content)
    return err


def error_content(exc: BaseException) -> dict[str, Any]:
    """The error envelope sent for C{exc}: code, type and message."""
    code = getattr(exc, "code", None)
    if not isinstance(code, int) or isinstance(code, bool):
        code = INTERNAL_ERROR
    return {"code": code, "type": type(exc).__name__, "message": describe(exc)}


def describe(exc: BaseException) -> str:
    """C{str(exc)}, or a stand-in when that raises: an error must still be answered."""
    try:
        return str(exc)
    except Exception as e:
        return f"<{type(exc).__name__}: its str() raised {type(e).__name__}>"


class ObjectError(IonError):
    """An object type or object value is not what ion's object model allows."""


class TypeRegistrationError(ObjectError):
    """A class cannot be registered: it has no type id, or its id is taken."""


class UnknownTypeError(ObjectError, BadRequest):
    """No object class is registered for the type id; answered with 400."""


class ObjectDecodeError(ObjectError, BadRequest):
    """Bytes that do not parse as the object type they claim to be; answered with 400."""


class FieldError(ObjectError, BadRequest):
    """An object field was given a value of the wrong type, or does not exist; answered with 400."""


class AppFileError(ConfigurationError):
    """An C{.app} or C{.rel} file is malformed or invalid.

    @ivar path: the file; @ivar field: the offending field (dotted, or None);
    @ivar line: its 1-based line when known.
    """

    def __init__(
        self, path: Any, reason: str, field: str | None = None, line: int | None = None
    ) -> None:
        self.path = str(path)
        self.field = field
        self.line = line
        self.reason = reason
        where = self.path if line is None else f"{self.path}:{line}"
        what = f" field {field!r}:" if field else ""
        super().__init__(f"{where}:{what} {reason}")


class DependencyError(ConfigurationError):
    """Apps cannot be resolved: missing, cyclic, misnamed or of the wrong version."""


class MissingAppError(DependencyError):
    """An app was asked for (or needed) but no file or definition for it exists."""
