"""AMQP topic matching: binding keys with C{*} (exactly one word) and C{#} (zero or more).

Words are separated by C{.}; C{*} and C{#} are wildcards only as whole words
(C{a*} is a literal word), and the empty key has no words, as in RabbitMQ.

Matching works on the words, never a backtracking regex: a binding key is cut at
its C{#} words into fixed-length segments, the first and last anchored to the
ends of the routing key and the ones between found leftmost, in order. That takes
time linear in (routing key words x binding key words) whatever the binding key,
so no binding can stall the reactor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NoReturn

from ion.core.exception import BrokerError

__all__ = ["compile_topic", "is_wildcard", "topic_matches"]

_WILD = frozenset(("*", "#"))

# A segment: a run of binding-key words without '#', as its length and the
# (offset, word) pairs of its literal words ('*' matches any one word).
_Segment = tuple[int, tuple[tuple[int, str], ...]]


def _refuse(what: str, value: Any) -> NoReturn:
    raise BrokerError(f"COMMAND_INVALID - {what} must be a str, not {type(value).__name__}")


def is_wildcard(pattern: str) -> bool:
    """Whether C{pattern} has a C{*} or C{#} word (otherwise it matches only itself).

    @raise BrokerError: C{pattern} is not a C{str}.
    """
    if not isinstance(pattern, str):
        _refuse("a binding key", pattern)
    return not _WILD.isdisjoint(pattern.split("."))


def compile_topic(pattern: str) -> Callable[[str], bool]:
    """A cached predicate telling whether a routing key matches the binding key C{pattern}.

    The predicate raises L{BrokerError} for a routing key that is not a C{str}.

    @raise BrokerError: C{pattern} is not a C{str}.
    """
    if not isinstance(pattern, str):
        _refuse("a binding key", pattern)
    return _compile(pattern)


def topic_matches(pattern: str, key: str) -> bool:
    """Whether routing key C{key} matches binding key C{pattern}.

    @raise BrokerError: C{pattern} or C{key} is not a C{str}.
    """
    return compile_topic(pattern)(key)


def _segment(words: Sequence[str]) -> _Segment:
    return len(words), tuple((i, w) for i, w in enumerate(words) if w != "*")


@lru_cache(maxsize=4096)
def _compile(pattern: str) -> Callable[[str], bool]:
    if not is_wildcard(pattern):

        def equal(key: str) -> bool:
            if not isinstance(key, str):
                _refuse("a routing key", key)
            return key == pattern

        return equal
    words = pattern.split(".")
    if "#" not in words:
        return _fixed(_segment(words))
    segments: list[list[str]] = [[]]  # the runs of words between '#'s ('#.#' is '#')
    for word in words:
        if word == "#":
            if segments[-1] or len(segments) == 1:
                segments.append([])
        else:
            segments[-1].append(word)
    return _spanning(
        _segment(segments[0]), [_segment(s) for s in segments[1:-1]], _segment(segments[-1])
    )


def _fixed(segment: _Segment) -> Callable[[str], bool]:
    """The matcher of a binding key without C{#}: exactly its number of words."""
    size, literals = segment

    def match(key: str) -> bool:
        if not isinstance(key, str):
            _refuse("a routing key", key)
        words = key.split(".")
        if len(words) != size or not key:  # the empty key has no words, and size >= 1
            return False
        for i, word in literals:
            if words[i] != word:
                return False
        return True

    return match


def _spanning(head: _Segment, middle: list[_Segment], tail: _Segment) -> Callable[[str], bool]:
    """The matcher of C{head.#.middle[0].#...#.tail}, each part a run of words without C{#}.

    Segments have fixed lengths and C{#} takes anything, so if any way of placing
    the middle segments works, placing each at its leftmost fit after the one
    before it works too: a match that places one further right can be shifted
    left onto the leftmost fit, lengthening the C{#} after it. Every key word is
    thus tried at most once as a segment start, each try comparing at most the
    segment's words.
    """
    head_size, head_literals = head
    tail_size, tail_literals = tail
    least = head_size + tail_size + sum(size for size, _ in middle)
    if not least:  # only '#': every key
        return _match_all

    def match(key: str) -> bool:
        if not isinstance(key, str):
            _refuse("a routing key", key)
        words = key.split(".") if key else []
        if len(words) < least:
            return False
        end = len(words) - tail_size  # where the tail starts
        for i, word in head_literals:
            if words[i] != word:
                return False
        for i, word in tail_literals:
            if words[end + i] != word:
                return False
        at = head_size
        for size, literals in middle:
            at = _leftmost(words, at, end - size, literals)
            if at < 0:
                return False
            at += size
        return True

    return match


def _match_all(key: str) -> bool:
    if not isinstance(key, str):
        _refuse("a routing key", key)
    return True


def _leftmost(
    words: list[str], start: int, last: int, literals: tuple[tuple[int, str], ...]
) -> int:
    """The least C{i} in C{start..last} where a segment with C{literals} fits C{words}, or -1."""
    if last < start:
        return -1
    if not literals:
        return start
    (first_at, first), rest = literals[0], literals[1:]
    i = start
    while i <= last:
        try:  # the next place the segment's first literal word fits, scanned in C
            i = words.index(first, i + first_at, last + first_at + 1) - first_at
        except ValueError:
            return -1
        for at, word in rest:
            if words[i + at] != word:
                break
        else:
            return i
        i += 1
    return -1
