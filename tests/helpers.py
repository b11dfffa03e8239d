"""Test helpers: the kit's waiting tools (L{ion.test.waiting}), with two additions
this suite relies on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ion.test.waiting import Collector as _KitCollector
from ion.test.waiting import wait_for

T = TypeVar("T")

__all__ = ["Collector", "wait_for"]


class Collector(_KitCollector[T]):
    """The kit's Collector, which also acks broker deliveries when asked (C{ack}),
    and whose L{wait_until} returns every item up to and including the match."""

    def __init__(self, ack: bool = False) -> None:
        super().__init__()
        self._ack = ack

    def __call__(self, item: T) -> None:
        if self._ack:
            item.ack()  # type: ignore[attr-defined]
        super().__call__(item)

    async def wait_until(  # type: ignore[override]
        self, predicate: Callable[[T], bool], timeout: float = 5.0
    ) -> list[T]:
        """The items up to and including the first one that satisfies C{predicate}."""
        await super().wait_until(predicate, timeout)
        end = next(n for n, i in enumerate(self.items) if predicate(i))
        return self.items[: end + 1]
