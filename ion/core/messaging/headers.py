"""Transport headers as AMQP carries them, for both brokers: what RabbitMQ cannot
carry faithfully (floats, ints past 64 bits, other types) is refused, keys become
strings and tuples lists, and every container is copied, so nothing the
publisher or a consumer changes afterwards reaches another copy.

pika can encode str, bytes, bool, int, C{Decimal}, C{datetime}, None, lists and
dicts, but not floats, and it truncates received floats to ints (pika issue
#599): a float header is refused with C{TypeError} rather than silently changed.
ion's own messages keep their headers in the msgpack body; these are the
broker's, for code that uses the broker interface directly.
"""

from __future__ import annotations

import datetime
import decimal
from typing import Any

_PLAIN = (str, bytes, bool, type(None), decimal.Decimal, datetime.datetime)


def to_wire_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """A copy of C{headers} pika can encode; C{TypeError} for values it cannot carry faithfully."""
    return {str(k): _to_wire(v, k) for k, v in headers.items()}


def _to_wire(value: Any, key: Any) -> Any:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise TypeError(f"header {key!r}: int out of 64-bit range")
        return int(value)
    if isinstance(value, dict):
        return {str(k): _to_wire(v, key) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_wire(v, key) for v in value]
    if isinstance(value, float):
        raise TypeError(
            f"header {key!r}: AMQP headers cannot carry floats faithfully; put numbers in the body"
        )
    raise TypeError(f"header {key!r}: {type(value).__name__} cannot travel in AMQP headers")


def from_wire_headers(headers: dict[str, Any] | None) -> dict[str, Any]:
    """Received headers as plain Python values (pika's C{long} becomes C{int})."""
    if not headers:
        return {}
    return {k: _from_wire(v) for k, v in headers.items()}


def _from_wire(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or kind is int or kind is bytes or value is None:
        return value
    if isinstance(value, int):  # pika.compat.long and friends
        return int(value)
    if isinstance(value, dict):
        return {k: _from_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_wire(v) for v in value]
    return value
