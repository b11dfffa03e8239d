"""Messages: headers plus content, and their msgpack wire form.

On the wire a message is the msgpack array C{[headers, content]}. Bytes stay
bytes and strings stay strings. A signed message is that array behind a short
prefix (byte 0xC1, which msgpack never uses, the key id and the signature; see
L{ion.core.security.signing}): the signature covers the bytes as they travel,
and is checked before they are unpacked. The C{encoding} header names how the
content was encoded: plain msgpack when absent; C{ion-object:<type id>} for a
protobuf object, carried as its serialized bytes.
"""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from typing import Any, Protocol

import msgpack

from ion.core.exception import IonError, MessageFormatError

# Header names, after the original's "ION Common Message Format".
SENDER = "sender"
SENDER_NAME = "sender-name"
RECEIVER = "receiver"
REPLY_TO = "reply-to"
CONV_ID = "conv-id"
CONV_SEQ = "conv-seq"
PROTOCOL = "protocol"
PERFORMATIVE = "performative"
OP = "op"
STATUS = "status"
USER_ID = "user-id"
EXPIRY = "expiry"
TS = "ts"
ENCODING = "encoding"
# Signals (ion.core.process.signals): the epoch of the sender's container and,
# on a link or monitor asked of another container, the epoch of the receiver's
# container that the sender knows (ion.core.process.remote).
SENDER_EPOCH = "sender-epoch"
RECEIVER_EPOCH = "receiver-epoch"
# Signed messages (ion.core.security.signing): key id, per-signer number.
KID = "kid"
NONCE = "nonce"

STATUS_OK = "OK"
STATUS_ERROR = "ERROR"

PROTOCOLS = frozenset({"rpc", "request", "generic", "none", "signal", "cc"})
PERFORMATIVES = frozenset(
    {"request", "agree", "refuse", "inform_result", "failure", "inform", "cancel"}
)
REQUIRED = (SENDER, RECEIVER, CONV_ID, PROTOCOL, PERFORMATIVE)
# conv-seq stays a signed 64-bit number, its successor too (an answer's is one more).
MAX_CONV_SEQ = 2**63 - 1

ENCODING_MSGPACK = "msgpack"
# Protobuf objects travel as their bytes, with encoding "ion-object:<type id>".
ENCODING_OBJECT = "ion-object:"
_PLAIN = frozenset({dict, list, str, bytes, int, float, bool, type(None), tuple})


class Message:
    """One received (or about to be sent) message.

    @ivar headers: the header map (names above).
    @ivar content: the decoded content.
    @ivar delivery: the broker delivery it came in (None for outgoing ones).
    """

    __slots__ = ("headers", "content", "delivery", "conversation", "replied")

    def __init__(self, headers: dict[str, Any], content: Any = None, delivery: Any = None):
        self.headers = headers
        self.content = content
        self.delivery = delivery
        self.conversation: Any = None
        self.replied = False

    @property
    def op(self) -> str | None:
        return self.headers.get(OP)

    @property
    def broker_user(self) -> str | None:
        """The broker user that published this message, as RabbitMQ proved it (the
        AMQP C{user_id} property, which ion sets to its login on every publish and
        the broker refuses when it is another): which container or app sent it.
        None on the embedded broker, for outgoing messages, and for a publisher
        that did not set it. Unlike the C{user-id} header, a sender cannot forge it."""
        return getattr(self.delivery, "user_id", None)

    @property
    def sender(self) -> str | None:
        return self.headers.get(SENDER)

    @property
    def conv_id(self) -> str | None:
        return self.headers.get(CONV_ID)

    @property
    def protocol(self) -> str | None:
        return self.headers.get(PROTOCOL)

    @property
    def performative(self) -> str | None:
        return self.headers.get(PERFORMATIVE)

    @property
    def status(self) -> str | None:
        return self.headers.get(STATUS)

    def __repr__(self) -> str:
        # Headers come from whoever published: each is shown short and escaped.
        h = self.headers if isinstance(self.headers, dict) else {}
        return (
            f"<Message {shown(h.get(PROTOCOL))}/{shown(h.get(PERFORMATIVE))} "
            f"op={shown(h.get(OP), quote=True)} "
            f"{shown(h.get(SENDER))} -> {shown(h.get(RECEIVER))} conv={shown(h.get(CONV_ID))}>"
        )


#: About how many characters of one header L{shown} (and so a log line) shows.
SHOWN_LENGTH = 80
_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = SHOWN_LENGTH
_short_repr.maxlevel = 2


def shown(value: Any, quote: bool = False) -> str:
    """A header value as a log line may show it: at most about L{SHOWN_LENGTH}
    characters, control characters and bidi marks escaped, nesting cut short;
    a string is quoted when C{quote} (or when it needs escaping)."""
    if isinstance(value, str):
        if len(value) <= SHOWN_LENGTH and value.isprintable() and not quote:
            return value
        return _short_repr.repr(value)  # repr() escapes what is not printable
    return _short_repr.repr(value)


_packb = msgpack.Packer(use_bin_type=True).pack


class Signs(Protocol):
    """What signs outgoing messages (L{ion.core.security.signing.Signer})."""

    def seal(self, headers: dict[str, Any], content: Any) -> bytes: ...


#: Opens a received body, signed or not, before anything in it is unpacked:
#: returns the headers and content when it verifies, else raises an
#: L{IonError} (C{SignatureError}) that carries the headers it could read.
Verify = Callable[[bytes], tuple[dict[str, Any], Any]]


def encode(headers: dict[str, Any], content: Any, signer: Signs | None = None) -> bytes:
    """The wire bytes of a message; sets the C{encoding} header for object content.

    With a C{signer} the message is sealed, the last step before it goes: the
    signature covers the bytes as they travel (see L{ion.core.security.signing}).
    """
    if type(content) not in _PLAIN and hasattr(content, "SerializeToString"):
        from ion.core.object.codec import encode_object  # protobuf only when used

        try:
            type_id, content = encode_object(content)
        except IonError as e:  # an object of no registered type: it cannot travel
            raise MessageFormatError(f"content cannot be encoded: {e}") from e
        headers[ENCODING] = f"{ENCODING_OBJECT}{type_id}"
    try:
        if signer is None:
            return _packb([headers, content])
        return signer.seal(headers, content)
    except (TypeError, ValueError, OverflowError) as e:
        raise MessageFormatError(f"content cannot be encoded: {e}") from e


def decode(body: bytes, delivery: Any = None, verify: Verify | None = None) -> Message:
    """Parse wire bytes into a L{Message}; raise L{MessageFormatError} if they are not one.

    When the headers were readable but the content was not, the error carries
    them as C{error.headers}, so the receiver can still answer the sender.
    C{verify}, when given, opens the body (L{Verify}) before anything is
    unpacked from it; a reader without it takes signed messages unchecked.
    """
    if verify is not None:
        headers, content = verify(body)  # (what it raises carries the readable headers)
    else:
        if body[:1] == _SIGNED_PREFIX:
            from ion.core.security.signing import split  # only for signed messages

            parts = split(body)
            if parts is None:
                raise MessageFormatError("body is not msgpack: a signed prefix (0xC1) cut short")
            body = parts[2]  # read unchecked: this reader does not verify
        try:
            frame = msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception as e:  # msgpack raises several unrelated types for bad input
            raise MessageFormatError(f"body is not msgpack: {e}") from e
        if not (isinstance(frame, list) and len(frame) == 2 and isinstance(frame[0], dict)):
            raise MessageFormatError("body is not a [headers, content] pair")
        headers, content = frame
    encoding = headers.get(ENCODING)
    if encoding is not None and encoding != ENCODING_MSGPACK:
        try:
            content = _decode_content(encoding, content)
        except Exception as e:
            error = MessageFormatError(f"content: {e}")
            error.code = getattr(e, "code", error.code)
            error.headers = headers  # type: ignore[attr-defined]
            raise error from e
    return Message(headers, content, delivery)


_SIGNED_PREFIX = b"\xc1"  # (ion.core.security.signing.MAGIC)


def _decode_content(encoding: Any, content: Any) -> Any:
    if not (isinstance(encoding, str) and encoding.startswith(ENCODING_OBJECT)):
        raise MessageFormatError(f"unknown content encoding {shown(encoding, quote=True)}")
    type_id = encoding[len(ENCODING_OBJECT) :]
    if not type_id.isdigit() or not isinstance(content, bytes):
        raise MessageFormatError(
            f"malformed object content (encoding {shown(encoding, quote=True)})"
        )
    from ion.core.object.codec import decode_object

    return decode_object(int(type_id), content)


def check_headers(headers: dict[str, Any]) -> None:
    """Raise L{MessageFormatError} naming the headers a message lacks or has wrong."""
    for name in REQUIRED:
        if not isinstance(headers.get(name), str):
            missing = [n for n in REQUIRED if not isinstance(headers.get(n), str)]
            raise MessageFormatError(f"missing or non-string headers: {', '.join(missing)}")
    if headers[PROTOCOL] not in PROTOCOLS:
        raise MessageFormatError(f"unknown protocol {shown(headers[PROTOCOL], quote=True)}")
    if headers[PERFORMATIVE] not in PERFORMATIVES:
        raise MessageFormatError(f"unknown performative {shown(headers[PERFORMATIVE], quote=True)}")
    if headers[PERFORMATIVE] == "request" and not isinstance(headers.get(OP), str):
        raise MessageFormatError("a request needs a string 'op' header")
    seq = headers.get(CONV_SEQ)
    if seq is not None and not (isinstance(seq, int) and 0 <= seq < MAX_CONV_SEQ):
        raise MessageFormatError(f"'conv-seq' must be an integer from 0 to {MAX_CONV_SEQ - 1}")


def next_seq(headers: dict[str, Any]) -> int:
    """The C{conv-seq} of the answer to a message with C{headers}; one without a
    good C{conv-seq} counts as the first (1)."""
    seq = headers.get(CONV_SEQ)
    if isinstance(seq, int) and 0 <= seq < MAX_CONV_SEQ:
        return seq + 1
    return 2
