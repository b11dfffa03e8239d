"""Subscription filters: a JSONPath that matches an event when it finds anything.

The library is python-jsonpath (package C{python-jsonpath}, module C{jsonpath})
in its strict mode, which implements RFC 9535 exactly; it is maintained and
pure Python. Pacifica Notifications uses jsonpath2, whose last release is from
2022 and which parses with an ANTLR runtime.

Pacifica's filters are written in jsonpath2's dialect, which differs from RFC
9535 in three ways, handled here explicitly:

  - equality is C{=} (C{==} does not parse), and the logical operators are the
    words C{and}, C{or}, C{not};
  - a filter C{X[?(expr)]} keeps the node X itself when C{expr} holds for it
    (RFC 9535 keeps the I{children} of X for which it holds), which is why
    Pacifica writes C{$.data[*][?(@.mimetype = "text/plain")]};
  - Pacifica's documentation shows the filter C{data} with no C{$} (jsonpath2
    refuses it); it is read as C{$.data}, what the documentation means.

A text that parses as RFC 9535 is RFC 9535. One that does not, and has
jsonpath2 filters, is read in jsonpath2's dialect: its plain segments are RFC
9535 queries run from each node reached so far, and each C{[?(expr)]} keeps the
nodes for which C{expr} (with C{=}, C{and}, C{or}, C{not} rewritten) holds.

Cost: matching runs on the matcher's thread with events no larger than the
gateway's body limit. A filter is at most L{MAX_LENGTH} characters, has at
most one descendant segment (C{..}) and at most L{MAX_NESTING} nested filters,
the regular expression functions (C{match}, C{search}: catastrophic
backtracking) are not offered, and the library stops descending at depth 100;
so one match visits at most about (event nodes x filter length) nodes, and
none can hang the reactor. L{Filter.matches} never raises for an event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jsonpath import JSONPathEnvironment
from jsonpath.exceptions import JSONPathError

from ion.gateway.web import HttpError

MAX_LENGTH = 1024
MAX_NESTING = 4

FIELD = "jsonpath"


class _Env(JSONPathEnvironment):
    """RFC 9535 without the regular expression functions."""

    def setup_function_extensions(self) -> None:
        super().setup_function_extensions()
        for name in ("match", "search"):
            self.function_extensions.pop(name, None)


_ENV = _Env(strict=True)


@dataclass(frozen=True)
class Filter:
    """A compiled subscription filter; C{matches(event)} when it finds anything."""

    text: str
    dialect: str  # "rfc9535" or "jsonpath2"
    _find: Callable[[Any], Iterator[Any]]

    def matches(self, event: Any) -> bool:
        """Whether the path finds at least one node in C{event} (never raises)."""
        try:
            return next(self._find(event), _NONE) is not _NONE
        except (JSONPathError, RecursionError, TypeError, ValueError):
            return False  # (an event the path cannot walk: not a match)


_NONE = object()


def compile_filter(text: Any) -> Filter:
    """Compile C{text} (RFC 9535, or Pacifica's jsonpath2 dialect) to a L{Filter}.

    @raise HttpError: 400, field C{jsonpath}, when it is not a string, is empty
        or too long, does not parse, or breaks a cost limit.
    """
    if not isinstance(text, str):
        raise HttpError(400, FIELD, "expected a string")
    if not text.strip():
        raise HttpError(400, FIELD, "expected a JSONPath, not an empty string")
    if len(text) > MAX_LENGTH:
        raise HttpError(400, FIELD, f"longer than {MAX_LENGTH} characters")
    source = text.strip()
    if re.match(r"[A-Za-z_]", source):
        source = "$." + source  # (Pacifica's documented "data")
    _check_cost(source)
    try:
        query = _ENV.compile(source)
    except JSONPathError as e:
        rfc_error = _message(e)
    else:
        return Filter(text, "rfc9535", lambda event: iter(query.finditer(event)))
    steps = _jsonpath2_steps(source)
    if steps is None:
        raise HttpError(400, FIELD, rfc_error)
    return Filter(text, "jsonpath2", lambda event: _run(steps, event))


def _message(e: Exception) -> str:
    # (the library's message spans lines with a caret drawing; the first says it)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"not a JSONPath: {first}"


def _check_cost(source: str) -> None:
    code = _STRING.sub('""', source)
    if code.count("..") > 1:
        raise HttpError(400, FIELD, "at most one descendant segment (..) is allowed")
    if _nesting(code) > MAX_NESTING:
        raise HttpError(400, FIELD, f"filters nest deeper than {MAX_NESTING}")


def _nesting(code: str) -> int:
    """How deep C{[?...]} filters nest in C{code} (strings removed)."""
    depth, deepest = 0, 0
    open_filters: list[int] = []
    for i, ch in enumerate(code):
        if ch == "[":
            depth += 1
            if code[i + 1 : i + 2] == "?":
                open_filters.append(depth)
                deepest = max(deepest, len(open_filters))
        elif ch == "]":
            if open_filters and open_filters[-1] == depth:
                open_filters.pop()
            depth -= 1
    return deepest


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')

# --- Pacifica's jsonpath2 dialect -------------------------------------------------

_Step = tuple[str, Any]  # ("path", query) or ("filter", query)


def _jsonpath2_steps(source: str) -> list[_Step] | None:
    """The steps of a jsonpath2-style text, or None when it is not one."""
    if not source.startswith("$"):
        return None
    parts = _split(source[1:])
    if parts is None or not any(kind == "filter" for kind, _ in parts):
        return None
    steps: list[_Step] = []
    try:
        for kind, piece in parts:
            if kind == "path":
                steps.append(("path", _ENV.compile("$" + piece)))
            else:
                steps.append(("filter", _ENV.compile("$[?" + _rfc_expression(piece) + "]")))
    except (JSONPathError, _NotJsonpath2):
        return None
    return steps


class _NotJsonpath2(Exception):
    pass


def _split(rest: str) -> list[tuple[str, str]] | None:
    """Split C{rest} (after C{$}) into plain segments and C{[?(expr)]} filters."""
    parts: list[tuple[str, str]] = []
    plain, i = "", 0
    while i < len(rest):
        if rest.startswith("[?(", i):
            end = _filter_end(rest, i + 3)
            if end is None:
                return None
            if plain:
                parts.append(("path", plain))
                plain = ""
            parts.append(("filter", rest[i + 3 : end]))
            i = end + 2  # (past ")]")
            continue
        m = _STRING.match(rest, i)
        if m:
            plain += m.group()
            i = m.end()
            continue
        plain += rest[i]
        i += 1
    if plain:
        parts.append(("path", plain))
    return parts


def _filter_end(text: str, start: int) -> int | None:
    """The index of the C{)} that closes a filter opened before C{start}, followed by C{]}."""
    depth, i = 1, start
    while i < len(text):
        m = _STRING.match(text, i)
        if m:
            i = m.end()
            continue
        ch = text[i]
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0:
                return i if ch == ")" and text[i + 1 : i + 2] == "]" else None
        i += 1
    return None


_TOKEN = re.compile(
    r'(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')'
    r"|(?P<op>==|!=|<=|>=|=)"
    r"|(?P<word>\b(?:and|or|not)\b)"
    r"|(?P<other>.)",
    re.S,
)
_WORDS = {"and": "&&", "or": "||", "not": "!"}


def _rfc_expression(expr: str) -> str:
    """A jsonpath2 filter expression in RFC 9535 terms (C{=} -> C{==}, words -> symbols)."""
    out: list[str] = []
    for m in _TOKEN.finditer(expr):
        kind, value = m.lastgroup, m.group()
        if kind == "op":
            out.append("==" if value == "=" else value)
        elif kind == "word":
            out.append(_WORDS[value])
        else:
            if kind == "other" and value == "$":
                raise _NotJsonpath2  # (in a jsonpath2 filter $ is the document; not offered)
            if kind == "other" and value == "?":
                raise _NotJsonpath2  # (nested jsonpath2 filters: not offered)
            out.append(value)
    return "".join(out)


def _run(steps: list[_Step], event: Any) -> Iterator[Any]:
    nodes: Iterable[Any] = (event,)
    for kind, query in steps:
        if kind == "path":
            nodes = _descend(query, nodes)
        else:
            nodes = _keep(query, nodes)
    return iter(nodes)


def _descend(query: Any, nodes: Iterable[Any]) -> Iterator[Any]:
    for node in nodes:
        for match in query.finditer(node):
            yield match.obj


def _keep(query: Any, nodes: Iterable[Any]) -> Iterator[Any]:
    for node in nodes:
        # ([node] makes the node a child, so the RFC filter tests the node itself)
        if next(iter(query.finditer([node])), _NONE) is not _NONE:
            yield node
