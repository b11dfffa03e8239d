"""AMQP topic matching: a table of cases and properties checked against a reference matcher."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ion.core.messaging.topic import compile_topic, is_wildcard, topic_matches

CASES = [
    # (binding key, routing key, matches)
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.b.c", "a.b.c.d", False),
    ("a.b", "a.bc", False),
    ("a.*", "a.b", True),
    ("a.*", "a", False),
    ("a.*", "a.b.c", False),
    ("*", "a", True),
    ("*", "", False),
    ("*", "a.b", False),
    ("*.b.*", "a.b.c", True),
    ("*.b.*", "a.b", False),
    ("#", "", True),
    ("#", "a", True),
    ("#", "a.b.c", True),
    ("a.#", "a", True),
    ("a.#", "a.b", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("a.#", "ab", False),
    ("#.c", "c", True),
    ("#.c", "a.b.c", True),
    ("#.c", "a.bc", False),
    ("a.#.c", "a.c", True),
    ("a.#.c", "a.b.c", True),
    ("a.#.c", "a.b.b.c", True),
    ("a.#.c", "a.b", False),
    ("a.#.#.c", "a.c", True),
    ("#.*", "", False),
    ("#.*", "a", True),
    ("#.*", "a.b", True),
    ("*.#", "a", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a*", "ab", False),  # '*' is a wildcard only as a whole word
    ("a*", "a*", True),
    ("a+b", "a+b", True),  # regex characters are literal
    ("a.b", "a-b", False),
    ("", "", True),
    ("", "a", False),
    ("a..b", "a..b", True),
    ("a.*.b", "a..b", True),  # an empty word is a word
]


@pytest.mark.parametrize(("pattern", "key", "expected"), CASES)
def test_table(pattern: str, key: str, expected: bool) -> None:
    """Each binding key matches exactly the routing keys AMQP says it does."""
    assert topic_matches(pattern, key) is expected


def test_is_wildcard() -> None:
    """Only whole C{*} or C{#} words make a binding key a wildcard."""
    assert is_wildcard("a.*") and is_wildcard("#") and is_wildcard("a.#.b")
    assert not is_wildcard("a.b") and not is_wildcard("a*.b#") and not is_wildcard("")


def test_compiled_matchers_are_cached() -> None:
    """Compiling the same binding key twice returns the same matcher."""
    assert compile_topic("x.*.#") is compile_topic("x.*.#")


def reference(pattern: list[str], key: list[str]) -> bool:
    """AMQP topic matching over word lists, written the slow obvious way."""
    if not pattern:
        return not key
    if pattern[0] == "#":
        return reference(pattern[1:], key) or (bool(key) and reference(pattern, key[1:]))
    if not key:
        return False
    return pattern[0] in ("*", key[0]) and reference(pattern[1:], key[1:])


def words(s: str) -> list[str]:
    return s.split(".") if s else []


word = st.sampled_from(["a", "b", "c", "ab", ""])
keys = st.lists(word, max_size=6).map(".".join)
patterns = st.lists(st.sampled_from(["a", "b", "c", "ab", "*", "#"]), max_size=6).map(".".join)


@given(keys)
def test_key_matches_itself(key: str) -> None:
    """A binding key equal to a routing key (no wildcards) matches it."""
    assert topic_matches(key, key)


@given(keys)
def test_hash_matches_everything(key: str) -> None:
    """C{#} alone matches every routing key, including the empty one."""
    assert topic_matches("#", key)


@given(st.lists(st.sampled_from(["a", "b", "ab"]), min_size=1, max_size=6), st.data())
def test_star_replaces_any_word(key_words: list[str], data: st.DataObject) -> None:
    """Replacing any one word of a key by C{*} still matches that key."""
    i = data.draw(st.integers(0, len(key_words) - 1))
    pattern = key_words[:i] + ["*"] + key_words[i + 1 :]
    assert topic_matches(".".join(pattern), ".".join(key_words))


@given(patterns, keys)
def test_agrees_with_reference(pattern: str, key: str) -> None:
    """The compiled matcher agrees with the reference matcher on arbitrary patterns and keys."""
    assert topic_matches(pattern, key) is reference(words(pattern), words(key))
