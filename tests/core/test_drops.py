"""Dropped messages: counted by cause, sender and place, logged at a bounded
rate (the first of a cause at once, the rest in one line per interval)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import Logger, LogPublisher, formatEvent

from ion.core import exception as exc
from ion.core.config import DEFAULTS, Config
from ion.core.drops import MAX_CAUSES, OTHERS, Drops, TopCounts, cause_of, from_config


def make(interval: float = 10.0, top: int = 20) -> tuple[Clock, Drops, list[str]]:
    """A L{Drops} on a fake clock, and the log lines it writes."""
    clock, lines, publisher = Clock(), [], LogPublisher()
    publisher.addObserver(lambda event: lines.append(formatEvent(event)))
    return clock, Drops(clock, interval, top, Logger(observer=publisher)), lines


def test_the_first_of_a_cause_is_logged_at_once_with_its_detail() -> None:
    """A single bad message is visible at once: its cause, detail, place and sender."""
    clock, drops, lines = make()
    drops.dropped("body is not msgpack", sender="x.1@c", where="echo", detail="extra data")
    assert lines == ["dropped a message at echo: body is not msgpack: extra data (from x.1@c)"]
    assert clock.getDelayedCalls() == []  # nothing pending: no summary to come


def test_a_flood_is_one_summary_line_per_interval() -> None:
    """10,000 drops of two causes in one interval: the first of each logged, the
    rest in one line with their counts, when the interval ends."""
    clock, drops, lines = make(interval=10.0)
    for n in range(10_000):
        cause = "body is not msgpack" if n % 10 else "missing headers"
        drops.dropped(cause, sender=f"s{n % 3}", where="echo")
        clock.advance(0.0005)
    assert len(lines) == 2  # the first of each cause
    clock.advance(10.0)
    assert len(lines) == 3
    assert lines[2] == (
        "dropped 9,998 messages in 10 s: body is not msgpack (8,999), "
        "missing headers (999); last from s0"
    )
    assert drops.total == 10_000 and drops.logged == 3
    assert drops.causes == {"body is not msgpack": 9_000, "missing headers": 1_000}
    clock.advance(60.0)
    assert len(lines) == 3  # quiet: no more lines


def test_a_cause_quiet_for_an_interval_is_logged_at_once_again() -> None:
    """Once a cause has been quiet for the interval, its next drop is shown at once."""
    clock, drops, lines = make(interval=10.0)
    drops.dropped("late reply", detail="first")
    clock.advance(10.0)
    drops.dropped("late reply", detail="second")
    assert [line.split(": ")[-1] for line in lines] == [
        "first (from unknown)",
        "second (from unknown)",
    ]


def test_a_sustained_flood_writes_a_bounded_number_of_lines() -> None:
    """100,000 drops over 100 s of 5 causes: 5 first lines, then one line per interval."""
    clock, drops, lines = make(interval=10.0)
    for n in range(100_000):
        drops.dropped(f"cause {'abcde'[n % 5]}", sender="flood")
        clock.advance(0.001)
    clock.advance(10.0)
    assert drops.total == 100_000
    assert len(lines) <= 5 + 11
    summed = sum(int(line.split()[1].replace(",", "")) for line in lines[5:])
    assert summed == 100_000 - 5  # every drop is in a line, once


def test_close_logs_what_is_pending_and_leaves_no_timer() -> None:
    clock, drops, lines = make()
    drops.dropped("x")
    drops.dropped("x")
    drops.close()
    assert lines[-1].startswith("dropped 1 messages in 10 s: x (1)")
    assert clock.getDelayedCalls() == []


def test_senders_and_places_are_bounded_to_the_top() -> None:
    """Counts per sender keep the C{top} largest; the rest sum as (others)."""
    clock, drops, _ = make(top=5)
    for n in range(1_000):
        drops.dropped("x", sender="heavy" if n % 2 else f"spoof-{n}", where=f"q{n % 7}")
    senders = drops.as_dict()["senders"]
    assert len(senders) == 6 and OTHERS in senders
    assert senders["heavy"] == 500 and next(iter(senders)) == "heavy"
    assert sum(senders.values()) == 1_000
    places = drops.as_dict()["places"]
    assert len(places) <= 6 and sum(places.values()) == 1_000


def test_top_counts_sum_to_the_total() -> None:
    top = TopCounts(2)
    for name in "aabbbcd":
        top.add(name)
    assert top.as_dict() == {"b": 3, "d": 1, OTHERS: 3}


def test_causes_are_bounded() -> None:
    clock, drops, _ = make()
    for n in range(MAX_CAUSES + 10):
        drops.dropped(f"cause {n}")
    assert len(drops.causes) == MAX_CAUSES + 1 and drops.causes["other causes"] == 10


def test_text_from_a_message_is_escaped_and_short() -> None:
    """A sender or detail carrying newlines, terminal escapes or bidi overrides
    cannot make a line of its own, and is cut short."""
    clock, drops, lines = make()
    forged = "x\n2026-01-01 FAKE LOG LINE\x1b[2J\u202e" + "y" * 1_000
    drops.dropped("bad", sender=forged, where=forged, detail=forged)
    [line] = lines
    assert "\n" not in line and "\x1b" not in line and "\u202e" not in line
    assert "\\n2026-01-01 FAKE LOG LINE\\x1b[2J\\u202e" in line
    assert len(line) < 600
    assert all(len(name) < 200 for name in drops.as_dict()["senders"])


def test_cause_of_an_error_is_its_class_and_stable_words() -> None:
    """Details after a colon, quotes or numbers are left out: causes stay few."""
    assert cause_of(exc.MessageFormatError("body is not msgpack: unpack(b) extra data")) == (
        "MessageFormatError: body is not msgpack"
    )
    assert cause_of(exc.MessageFormatError("unknown protocol 'evil\\n'")) == (
        "MessageFormatError: unknown protocol"
    )
    assert cause_of(exc.MessageFormatError("'conv-seq' must be an integer from 0")) == (
        "MessageFormatError: conv-seq"
    )
    error = exc.Unauthorized("whatever")
    error.reason = "bad signature"  # type: ignore[attr-defined]
    assert cause_of(error) == "Unauthorized: bad signature"


def test_the_interval_and_top_come_from_the_config() -> None:
    config = Config(DEFAULTS).merged({"logging": {"drop_interval": 2.5, "drop_top": 3}})
    drops = from_config(Clock(), config)
    assert drops.interval == 2.5 and drops.senders.top == 3
    assert from_config(Clock(), Config(DEFAULTS)).interval == 10.0
