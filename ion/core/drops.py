"""Messages dropped as bad or unwanted, counted and logged at a bounded rate.

Anyone who can publish on a system's exchange can send a container garbage;
logging each drop would let them fill its disk. A container keeps one L{Drops}
(its C{drops}, handed to its processes' runtimes through the exchange) that:

  - logs the first drop of a cause at once (a single bad message stays
    visible), unless that cause was seen in the last C{interval} seconds;
  - folds the others into one summary line per interval:
    C{dropped 9,966 messages in 10 s: body is not msgpack (9,000), missing
    headers (966); last from X};
  - counts every drop by cause, by sender (the C{sender} header, else
    C{unknown}) and by where it arrived (a process id or service name), the
    last two bounded to the C{top} largest, the rest summed as C{(others)}.

Every text it logs or keeps came from a message: it is escaped and cut short
(L{ion.core.log.escape_text}). Configuration: C{logging.drop_interval}
(seconds, default 10) and C{logging.drop_top} (default 20).
"""

from __future__ import annotations

import re
from typing import Any

from twisted.logger import Logger, LogLevel

from ion.core.log import escape_text
from ion.core.messaging.message import shown

log = Logger()

#: The name the senders and places beyond the C{top} are counted under.
OTHERS = "(others)"
#: More distinct causes than this are counted as one (causes are our own
#: words, so only a bug makes that many).
MAX_CAUSES = 64
_NAME_LENGTH = 80  # of a sender, place or cause as kept and shown
_DETAIL_LENGTH = 200
# Where an error's text stops being its stable reason: details follow ": ",
# quoted or bracketed values, numbers.
_REASON_END = re.compile(r":|'|\"|\(|\[|\{|<|\d")


class About:
    """A dropped message (and why), made into text only when it is logged: in a
    flood most drops are only counted, and pay nothing for the text."""

    __slots__ = ("detail", "msg")

    def __init__(self, msg: Any, detail: Any = None) -> None:
        self.msg, self.detail = msg, detail

    def __str__(self) -> str:
        return repr(self.msg) if self.detail is None else f"{self.msg!r}: {self.detail}"


def cause_of(error: BaseException) -> str:
    """A short stable name for why C{error} dropped a message: its class name and
    the words of its text before any detail (C{MessageFormatError: body is not
    msgpack}); an C{error.reason} string, if it has one, stands for the words."""
    reason = getattr(error, "reason", None)
    if not isinstance(reason, str):
        # ("'conv-seq' must be..." keeps its leading name)
        reason = _REASON_END.split(str(error).lstrip("'\""), 1)[0].strip()
    name = type(error).__name__
    return name if not reason else f"{name}: {reason}"


class TopCounts:
    """Counts per name, at most C{top} names kept; a new name past that takes
    the place of the smallest, whose count goes to L{OTHERS}, so the counts
    always sum to the total and the largest stay."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.counts: dict[str, int] = {}
        self.others = 0

    def add(self, name: str) -> None:
        counts = self.counts
        if name in counts or len(counts) < self.top:
            counts[name] = counts.get(name, 0) + 1
            return
        smallest = min(counts, key=counts.__getitem__)
        self.others += counts.pop(smallest)
        counts[name] = 1

    def as_dict(self) -> dict[str, int]:
        """The counts, largest first, with L{OTHERS} last when it is not zero."""
        ranked = dict(sorted(self.counts.items(), key=lambda kv: -kv[1]))
        if self.others:
            ranked[OTHERS] = self.others
        return ranked


class Drops:
    """The dropped-message counts and rate-limited log of one container."""

    def __init__(
        self,
        clock: Any,  # an IReactorTime (task.Clock in tests)
        interval: float = 10.0,
        top: int = 20,
        logger: Logger | None = None,
    ) -> None:
        self.clock = clock
        self.log = logger if logger is not None else log
        self.interval = interval
        self.total = 0
        self.causes: dict[str, int] = {}
        self.senders = TopCounts(top)
        self.places = TopCounts(top)
        self.answered = 0  # of the total, requests answered with an error
        self.logged = 0  # lines written
        self._pending_answered = False
        self._seen: dict[str, float] = {}  # cause -> when last dropped
        self._pending: dict[str, int] = {}  # not logged one by one this interval
        self._pending_level = LogLevel.info
        self._last_sender = ""
        self._timer: Any = None  # the IDelayedCall of the next summary

    def dropped(
        self,
        cause: str,
        *,
        sender: Any = None,
        where: Any = None,
        detail: Any = "",
        level: str = "warn",
        answered: bool = False,
    ) -> None:
        """Count one message dropped for C{cause} (a short stable phrase, our
        own words), from C{sender}, that arrived at C{where}; log it at once
        with C{detail} if its cause was quiet, else in the next summary.
        C{answered}: not dropped but answered with an error (a request anyone
        can make fail), counted and logged the same way."""
        cause = escape_text(cause, _NAME_LENGTH)
        if answered:
            self.answered += 1
            cause = f"answered with an error: {cause}"
        if cause not in self.causes and len(self.causes) >= MAX_CAUSES:
            cause = "other causes"
        who = _name(sender, "unknown")
        place = _name(where, "-")
        self.total += 1
        self.causes[cause] = self.causes.get(cause, 0) + 1
        self.senders.add(who)
        self.places.add(place)
        now = self.clock.seconds()
        last = self._seen.get(cause)
        self._seen[cause] = now
        loglevel = LogLevel.levelWithName(level)
        if last is None or now - last >= self.interval:
            shown = escape_text(str(detail), _DETAIL_LENGTH) if detail != "" else ""
            self.logged += 1
            verb = "answered" if answered else "dropped"
            self.log.emit(loglevel, "{verb} a message at {where}: {cause}{detail} (from {sender})",
                          verb=verb, where=place, cause=cause,
                          detail=f": {shown}" if shown else "", sender=who)  # fmt: skip
            return
        self._pending[cause] = self._pending.get(cause, 0) + 1
        if loglevel > self._pending_level:
            self._pending_level = loglevel
        self._last_sender = who
        self._pending_answered |= answered
        if self._timer is None:
            self._timer = self.clock.callLater(self.interval, self.flush)

    def flush(self) -> None:
        """Log the summary of the drops not logged one by one (if any) now."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        pending, self._pending = self._pending, {}
        if not pending:
            return
        level, self._pending_level = self._pending_level, LogLevel.info
        verb = "dropped or answered" if self._pending_answered else "dropped"
        self._pending_answered = False
        ranked = sorted(pending.items(), key=lambda kv: -kv[1])
        causes = ", ".join(f"{cause} ({n:,})" for cause, n in ranked)
        self.logged += 1
        self.log.emit(level, "{verb} {count} messages in {interval:g} s: {causes}; last from {sender}",
                      verb=verb, count=f"{sum(pending.values()):,}", interval=self.interval,
                      causes=causes, sender=self._last_sender)  # fmt: skip

    def close(self) -> None:
        """Log what is pending and stop the timer (the container stops)."""
        self.flush()

    def as_dict(self) -> dict[str, Any]:
        """The counts, for C{get_info}: total, per cause, per sender, per place."""
        return {
            "total": self.total,
            "answered": self.answered,
            "causes": dict(sorted(self.causes.items(), key=lambda kv: -kv[1])),
            "senders": self.senders.as_dict(),
            "places": self.places.as_dict(),
            "interval": self.interval,
            "logged": self.logged,
        }


def _name(value: Any, missing: str) -> str:
    if value is None or value == "":
        return missing
    # shown: a repr cut short at any depth (a 2,000-deep list has no cheap repr).
    return escape_text(value if isinstance(value, str) else shown(value), _NAME_LENGTH)


def from_config(clock: Any, config: Any) -> Drops:
    """The L{Drops} of a container with C{config} (C{logging.drop_interval}, C{logging.drop_top})."""
    interval = float(config.get("logging.drop_interval", 10.0))
    top = int(config.get("logging.drop_top", 20))
    return Drops(clock, interval, top)
