"""Subscription filters (ion.gateway.jsonpath): RFC 9535, Pacifica's jsonpath2 dialect, limits."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ion.gateway.jsonpath import MAX_LENGTH, compile_filter
from ion.gateway.web import HttpError

# The event of Pacifica's own tests (tests/test_files/events.json), shortened.
PACIFICA_EVENT: dict[str, Any] = {
    "cloudEventsVersion": "0.1",
    "contentType": "application/json",
    "data": [
        {"destinationTable": "Transactions._id", "value": 1234},
        {"destinationTable": "TransactionKeyValue", "key": "Taggy", "value": "Blah"},
        {"_id": 34, "destinationTable": "Files", "mimetype": "text/plain", "name": "foo.txt"},
        {"_id": 35, "destinationTable": "Files", "mimetype": "text/plain", "name": "bar.txt"},
        {"destinationTable": "Files", "mimetype": "application/x-xls", "name": "x.xls"},
    ],
    "eventID": "C234-1234-1234",
    "eventTime": "2018-04-05T17:31:00Z",
    "eventType": "org.pacifica.metadata.ingest",
    "extensions": {"comExampleExtension": "value"},
    "source": "/pacifica/metadata/ingest",
}

# Pacifica's documented filters and what jsonpath2 0.4.5 (Pacifica's library)
# answers for them on PACIFICA_EVENT (found by running it).
CONSUMER_DOC = (
    '$[?(@["eventID"] and (@["eventType"] = "org.pacifica.metadata.ingest") and '
    '(@["source"] = "/pacifica/metadata/ingest"))]["data"][*][?((@["destinationTable"] = '
    '"Files") and (@["mimetype"] = "text/plain"))]["name"]'
)
PACIFICA_CASES = [
    (CONSUMER_DOC, True),  # docs/consumer-expectations.md
    # Pacifica's test subscription: in jsonpath2 the filter tests the list itself
    ('$.data[?(@.value="Blah")].value', False),
    ('$.data[*][?(@.value="Blah")].value', True),
    ('$.data[*][?(@.value="Nope")].value', False),
    ('$[?(@.eventType = "org.pacifica.metadata.ingest")]', True),
    ('$[?(@.eventType = "other")]', False),
    ("$[?(not @.missing)]", True),
    ('$.data[*][?(@.mimetype = "text/plain" or @.value = 1234)].name', True),
]


@pytest.mark.parametrize(("text", "expected"), PACIFICA_CASES)
def test_pacifica_filters_match_as_in_pacifica(text: str, expected: bool) -> None:
    """Pacifica's jsonpath2-style filters match (or not) exactly as jsonpath2 does."""
    f = compile_filter(text)
    assert f.dialect == "jsonpath2"
    assert f.matches(PACIFICA_EVENT) is expected


def test_documented_bare_name_is_read_from_the_root() -> None:
    """Pacifica's documented filter C{data} (no C{$}) matches an event with data."""
    f = compile_filter("data")
    assert f.matches(PACIFICA_EVENT)
    assert not f.matches({"id": "1"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$.data", True),
        ("$.nothere", False),
        ('$.data[?@.mimetype == "text/plain"].name', True),
        ('$.data[?@.mimetype == "image/png"]', False),
        ("$..name", True),
        ("$.data[?@._id > 34]", True),
        ("$.data[?@._id > 35]", False),
        ("$[?length(@.data) == 5]", False),  # (a filter on the root tests its members)
        ("$.data[?length(@) == 2]", True),
        ('$.data[?(@.value=="Blah")]', True),
        ("$.extensions.comExampleExtension", True),
    ],
)
def test_rfc9535(text: str, expected: bool) -> None:
    """RFC 9535 paths: a match is any node found."""
    f = compile_filter(text)
    assert f.dialect == "rfc9535"
    assert f.matches(PACIFICA_EVENT) is expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("$[", "not a JSONPath"),
        ("$.a[?(@.b = )]", "not a JSONPath"),
        ("", "empty"),
        ("   ", "empty"),
        (42, "string"),
        (None, "string"),
        ("$" + ".a" * MAX_LENGTH, "longer than"),
        ("$..a..b", "descendant"),
        ("$[?@[?@[?@[?@[?@.a]]]]]", "nest"),
        ('$[?match(@.a, "(a+)+$")]', "match"),  # (no regular expressions: backtracking)
        ('$[?search(@.a, "x")]', "search"),
        ("$[?(@.a = $.b)]", "not a JSONPath"),  # ($ inside a jsonpath2 filter)
    ],
)
def test_bad_filters_are_400_naming_jsonpath(text: Any, words: str) -> None:
    """A filter that is not a string, empty, too long, too costly or unparsable is a 400."""
    with pytest.raises(HttpError) as info:
        compile_filter(text)
    assert info.value.status == 400
    assert info.value.field == "jsonpath"
    assert words in info.value.message
    assert "\n" not in info.value.message


def test_matches_never_raises() -> None:
    """An event the path cannot walk (not JSON-like) is no match, not an error."""
    f = compile_filter('$.data[*][?(@.a = "x")]')
    assert f.matches({"data": object()}) is False
    assert compile_filter("$.a").matches(None) is False


def _seconds(text: str, event: Any) -> float:
    f = compile_filter(text)
    started = time.monotonic()
    f.matches(event)
    return time.monotonic() - started


def test_hostile_filters_cost_no_more_than_a_few_scans() -> None:
    """The costliest filters the limits allow take a few times one scan of the event
    (C{$..zz}), not a power of its size: the cost stays linear."""
    deep: Any = {"a": 1}
    for _ in range(200):
        deep = {"x": [deep, {"a": 2}]}
    event = {"wide": [{"a": i, "b": [i] * 5} for i in range(5000)], "deep": deep}
    scan = max(_seconds("$..zz", event), 0.01)
    worst = [
        "$..[?@[?@[?@[?@.zz]]]]",
        "$..[?@.b == @.wide && @.zz]",
        "$..*[*][*][*][*].zz",
        '$..[?@ == "nothing"]',
    ]
    for text in worst:
        assert _seconds(text, event) < 15 * scan + 0.5, text
