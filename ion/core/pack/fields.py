"""Typed access to the fields of C{.app} and C{.rel} files: every failure is one
L{AppFileError} naming the file, the (dotted) field and its line."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn

from ion.core.exception import AppFileError

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
CLASS = re.compile(r"[A-Za-z_]\w*\Z")


def freeze(value: Any) -> Any:
    """C{value} read-only all the way down: mappings as proxies, lists as tuples."""
    if isinstance(value, Mapping):
        return MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list | tuple):
        return tuple(freeze(item) for item in value)
    return value


class Fields:
    """Typed access to one mapping of a file; every failure names field and line."""

    def __init__(
        self, path: str, data: Mapping[str, Any], prefix: str = "", line: int | None = None
    ) -> None:
        self.path, self.data, self.prefix, self.line = path, data, prefix, line
        self.lines: dict[Any, int] = getattr(data, "lines", {})

    def fail(self, key: str | None, reason: str) -> NoReturn:
        line = self.lines.get(key, self.line) if key is not None else self.line
        name = f"{self.prefix}{key}" if key is not None else self.prefix.rstrip(".") or None
        raise AppFileError(self.path, reason, field=name, line=line)

    def check_known(self, known: frozenset[str], what: str) -> None:
        for key in self.data:
            if key not in known:
                allowed = ", ".join(sorted(known))
                self.fail(str(key), f"unknown field in {what} (allowed: {allowed})")

    def get(self, key: str, types: type | tuple[type, ...], kind: str, default: Any) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        if not isinstance(value, types) or isinstance(value, bool) and bool not in _tuple(types):
            self.fail(key, f"must be {kind}, not {type(value).__name__} {value!r}")
        return value

    def required_str(self, key: str, pattern: re.Pattern[str] = NAME) -> str:
        if key not in self.data:
            self.fail(key, "missing (required)")
        value = self.get(key, str, "a string", "")
        if not pattern.match(value):
            self.fail(key, f"{value!r} is not a valid name")
        return value

    def version(self, key: str, default: Any = "") -> Any:
        value = self.get(key, (str, int, float), "a string", default)
        if isinstance(value, int | float) and not isinstance(value, bool):
            # Keep what was written (1.10, not 1.1).
            return getattr(self.data, "raw", {}).get(key, str(value))
        return value

    def mapping(self, key: str) -> Mapping[str, Any]:
        value = self.get(key, Mapping, "a mapping", {})
        for name in value:
            if not isinstance(name, str):
                self.fail(key, f"keys must be strings, not {name!r}")
        return freeze(value)

    def names(self, key: str) -> tuple[str, ...]:
        value = self.get(key, (list, tuple), "a list of strings", [])
        for item in value:
            if not isinstance(item, str):
                self.fail(key, f"must be a list of strings; {item!r} is not a string")
        return tuple(value)

    def choice(self, key: str, allowed: Sequence[str], default: str) -> str:
        """The value of C{key}, one of C{allowed} (C{default} when absent)."""
        value = self.data.get(key, default)
        if value not in allowed:
            words = ", ".join(allowed[:-1]) + f" or {allowed[-1]}"
            self.fail(key, f"expected {words}, not {value!r}")
        return str(value)

    def number(self, key: str, default: Any, minimum: float = 0, above: bool = False) -> Any:
        """A number >= C{minimum} (> with C{above}); C{default} when absent."""
        if key not in self.data:
            return default
        value = self.data[key]
        low = value <= minimum if above else value < minimum
        if isinstance(value, bool) or not isinstance(value, int | float) or low:
            bound = f"> {minimum:g}" if above else f">= {minimum:g}"
            self.fail(key, f"expected a number {bound}, not {value!r}")
        return value

    def located(self, key: str, prefix: str) -> Fields:
        """The fields of the mapping under C{key} (a field named C{prefix})."""
        value = self.get(key, Mapping, "a mapping", {})
        return Fields(self.path, value, prefix, self.lines.get(key, self.line))


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)
