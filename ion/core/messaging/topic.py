"""AMQP topic matching: binding keys with C{*} (exactly one word) and C{#} (zero or more).

Words are separated by C{.}; C{*} and C{#} are wildcards only as whole words
(C{a*} is a literal word), and the empty key has no words, as in RabbitMQ.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

_WILD = frozenset(("*", "#"))


def is_wildcard(pattern: str) -> bool:
    """Whether C{pattern} has a C{*} or C{#} word (otherwise it matches only itself)."""
    return not _WILD.isdisjoint(pattern.split("."))


def _match_all(key: str) -> bool:
    return True


@lru_cache(maxsize=4096)
def compile_topic(pattern: str) -> Callable[[str], bool]:
    """A cached predicate telling whether a routing key matches the binding key C{pattern}."""
    if not is_wildcard(pattern):
        return lambda key: key == pattern
    words: list[str] = []
    for word in pattern.split("."):
        # '#.#' means the same as '#'; collapsing keeps the regex from backtracking.
        if not (word == "#" and words and words[-1] == "#"):
            words.append(word)
    if words == ["#"]:
        return _match_all
    # Every word, in key and pattern alike, is matched with its leading dot, so
    # '#' can take zero words without leaving a stray separator behind.
    parts = []
    for word in words:
        if word == "*":
            parts.append(r"\.[^.]*")
        elif word == "#":
            parts.append(r"(?:\.[^.]*)*")
        else:
            parts.append(r"\." + re.escape(word))
    fullmatch = re.compile("".join(parts), re.DOTALL).fullmatch

    def match(key: str) -> bool:
        return fullmatch("." + key if key else "") is not None

    return match


def topic_matches(pattern: str, key: str) -> bool:
    """Whether routing key C{key} matches binding key C{pattern}."""
    return compile_topic(pattern)(key)
