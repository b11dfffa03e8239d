"""A bounded replay cache: which signed messages a consumer has already taken.

An entry lives as long as its message's C{ts} is inside the time window (after
that the window alone refuses it). When the cache is full the oldest entry goes,
and the I{horizon} moves up to its C{ts}: a message no younger than the horizon
can no longer be proven new, so it is refused too. Under a sustained load of more
than C{size} messages per window, replay protection thus narrows the window
instead of letting old messages through.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable


class ReplayCache:
    """Keys seen, each with the time (ms) it may be forgotten, oldest first."""

    def __init__(self, size: int, max_repeats: int = 6) -> None:
        if size < 1:
            raise ValueError("a replay cache holds at least one entry")
        self.size = size
        #: How often a broker redelivery of one message is taken (a poison
        #: copy or requeue); a replay without the redelivered flag: never.
        self.max_repeats = max_repeats
        self._seen: OrderedDict[Hashable, list[int]] = OrderedDict()  # key -> [forget_at, n, ts]
        #: Messages whose C{ts} is not above this (ms) are refused: an entry that
        #: young was evicted before its time.
        self.horizon = -(2**63)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._seen)

    def check(
        self, key: Hashable, ts: int, forget_at: int, now: int, redelivery: bool
    ) -> str | None:
        """Record C{key}; None if it is new (or an allowed redelivery), else why not."""
        self._expire(now)
        if ts <= self.horizon:
            return "older than the replay cache reaches"
        entry = self._seen.get(key)
        if entry is not None:
            if not redelivery or entry[1] >= self.max_repeats:
                return "replayed"
            entry[1] += 1
            return None
        if len(self._seen) >= self.size:
            _, (_forget, _n, old_ts) = self._seen.popitem(last=False)
            self.evicted += 1
            # A message of its ts can no longer be told from a replay of it.
            self.horizon = max(self.horizon, old_ts)
        self._seen[key] = [forget_at, 1, ts]
        return None

    def _expire(self, now: int) -> None:
        seen = self._seen
        # Insertion order is nearly expiry order (ts is the sender's clock): stop at
        # the first live entry rather than scan; a straggler goes a little later.
        while seen:
            key, entry = next(iter(seen.items()))
            if entry[0] > now:
                return
            del seen[key]
