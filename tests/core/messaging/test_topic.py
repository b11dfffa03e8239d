"""AMQP topic matching: a table of cases and properties checked against a reference matcher."""

from __future__ import annotations

import time
from functools import lru_cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ion.core.exception import BrokerError
from ion.core.messaging.embedded_routing import Exchange
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
    # Empty words, as RabbitMQ splits keys: "" has no words, "." has two empty ones.
    ("#", "a..b", True),
    ("#", ".", True),
    ("#.#", "", True),
    ("#.#", "a.b", True),
    ("a.#", "", False),
    ("a.#", "a.", True),
    ("a.*", "a.", True),
    ("*", ".", False),
    ("*.*", ".", True),
    ("*.*", "", False),
    ("#.*", ".", True),
    ("#..#", "", False),  # one empty word somewhere
    ("#..#", ".", True),
    ("#..#", "a..b", True),
    ("#..#", "a.b", False),
    (".#", "", False),
    (".#", ".a", True),
    ("#.", "a.", True),
    ("#.", "a", False),
    ("a..#", "a.", True),
    # Several '#'s, with '*'s and literals between them.
    ("#.a.#", "a", True),
    ("#.a.#", "b", False),
    ("#.a.#.a.#", "a", False),
    ("#.a.#.a.#", "a.a", True),
    ("#.a.*.#.b", "x.a.y.z.b", True),
    ("#.a.*.#.b", "x.a.b", False),
    ("#.a.b.#.a.b.#", "a.b.a.b", True),
    ("#.a.b.#.a.b.#", "a.b.a", False),
    ("#.a.b.#.a.b.#", "a.a.b.b.a.b", True),
    ("#.*.#.*.#", "a", False),
    ("#.*.#.*.#", "a.b", True),
    ("a.#.#.#.b", "a.b", True),
    ("*.#.*", "a", False),
    ("*.#.*", "a.b", True),
    ("#.*.#.*.#.*.#.*.#.*.#.*.z", "a.a.a.a.a.a.z", True),
    ("#.*.#.*.#.*.#.*.#.*.#.*.z", "a.a.a.a.a.z", False),
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


@lru_cache(maxsize=1 << 16)
def _reference(pattern: tuple[str, ...], key: tuple[str, ...]) -> bool:
    if not pattern:
        return not key
    if pattern[0] == "#":
        return _reference(pattern[1:], key) or (bool(key) and _reference(pattern, key[1:]))
    if not key:
        return False
    return pattern[0] in ("*", key[0]) and _reference(pattern[1:], key[1:])


def reference(pattern: list[str], key: list[str]) -> bool:
    """AMQP topic matching over word lists, written the slow obvious way (memoised)."""
    return _reference(tuple(pattern), tuple(key))


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


# Words that include the empty word and '*'/'#' look-alikes that are literal.
any_word = st.sampled_from(["a", "b", "ab", "", "a*", "#b"])
long_keys = st.lists(any_word, max_size=12)
long_patterns = st.lists(st.sampled_from(["a", "b", "", "*", "#", "#", "*"]), max_size=10)


@given(long_patterns, long_keys)
def test_agrees_with_reference_with_empty_words(pattern: list[str], key: list[str]) -> None:
    """Longer patterns with several C{#}s and empty words in both: the same as the reference."""
    if pattern == [""]:
        pattern = []  # the binding key "" is the empty word list, as "".split(".") is not
    if key == [""]:
        key = []  # likewise: the routing key "" has no words
    p, k = ".".join(pattern), ".".join(key)
    assert topic_matches(p, k) is reference(words(p), words(k))


@given(st.lists(st.sampled_from(["a", "b", "", "*", "#"]), min_size=1, max_size=10), st.data())
def test_instances_of_a_pattern_match_it(pattern: list[str], data: st.DataObject) -> None:
    """A key built from a binding key (each C{*} one word, each C{#} zero to three) matches it."""
    key: list[str] = []
    for w in pattern:
        if w == "*":
            key.append(data.draw(any_word))
        elif w == "#":
            key += data.draw(st.lists(any_word, max_size=3))
        else:
            key.append(w)
    p = ".".join(pattern)
    k = ".".join(key)
    if pattern == [""] or key == [""]:
        return  # "" is no words, not one empty word: not an instance
    assert reference(words(p), words(k))
    assert topic_matches(p, k)


PATHOLOGICAL = "#.*.#.*.#.*.#.*.#.*.#.*.z"  # took 19.5 s on an 81-word key as a regex


def _timed(pattern: str, key: str) -> tuple[bool, float]:
    match = compile_topic(pattern)
    start = time.perf_counter()
    result = match(key)
    return result, time.perf_counter() - start


def test_many_hashes_do_not_backtrack() -> None:
    """A binding with many C{#}s against an 81-word (161-byte) key matches at once."""
    key = ".".join(["a"] * 81)
    assert len(key) == 161
    result, took = _timed(PATHOLOGICAL, key)
    assert result is False
    assert took < 0.5
    result, took = _timed(PATHOLOGICAL, key + ".z")
    assert result is True
    assert took < 0.5


def test_long_keys_and_patterns_stay_linear() -> None:
    """50 C{#}s with near-miss segments against a 20000-word key: well under a second.

    A backtracking matcher would take time growing like the key length to the
    power of the number of C{#}s; this takes time linear in the key.
    """
    key = ".".join(["a"] * 20_000)
    cases = [
        (".".join(["#", "*"] * 50 + ["z"]), False),
        (".".join(["#", "a.a.a.b"] * 50 + ["#"]), False),  # each start fails on its last word
        (".".join(["#", "a.*.a"] * 50 + ["#"]), True),
        (".".join(["#", "*"] * 50 + ["a"]), True),
    ]
    for pattern, expected in cases:
        result, took = _timed(pattern, key)
        assert result is expected, pattern
        assert took < 0.5, (pattern, took)


BAD_KEYS = [5, b"k", None, ("a",), 1.5]
ALL_KINDS = ["a.b", "", "#", "#.#", "a.*", "*", "a.#", "#.a", "a.#.b.#.c"]


@pytest.mark.parametrize("pattern", ALL_KINDS)
@pytest.mark.parametrize("key", BAD_KEYS, ids=repr)
def test_routing_key_not_a_str_is_a_broker_error(pattern: str, key: object) -> None:
    """Every kind of matcher refuses a routing key that is not a str with a L{BrokerError}."""
    with pytest.raises(BrokerError, match="routing key must be a str"):
        topic_matches(pattern, key)  # type: ignore[arg-type]


@pytest.mark.parametrize("pattern", [5, b"a.*", None, ["a", "*"]], ids=repr)
def test_binding_key_not_a_str_is_a_broker_error(pattern: object) -> None:
    """A binding key that is not a str, hashable or not, is refused with a L{BrokerError}."""
    with pytest.raises(BrokerError, match="binding key must be a str"):
        compile_topic(pattern)  # type: ignore[arg-type]
    with pytest.raises(BrokerError, match="binding key must be a str"):
        is_wildcard(pattern)  # type: ignore[arg-type]


def test_exchange_route_refuses_a_bad_routing_key() -> None:
    """A topic exchange with a wildcard binding refuses a non-str key with a L{BrokerError}."""
    ex = Exchange("x", "topic", auto_delete=False)
    ex.bind("q", "a.#")
    assert tuple(ex.route("a.b")) == ("q",)
    with pytest.raises(BrokerError):
        ex.route(5)  # type: ignore[arg-type]
    with pytest.raises(BrokerError):
        ex.route(b"a.b")  # type: ignore[arg-type]
