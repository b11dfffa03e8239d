"""Test helpers: wait on events with a deadline instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime

T = TypeVar("T")


def _reactor() -> IReactorTime:
    from twisted.internet import reactor

    return reactor  # type: ignore[return-value]


async def wait_for(
    d: defer.Deferred[T] | Coroutine[Any, Any, T],
    timeout: float = 5.0,
    clock: IReactorTime | None = None,
) -> T:
    """Await C{d} (a Deferred or a coroutine), failing with C{defer.TimeoutError} after C{timeout}s."""
    if not isinstance(d, defer.Deferred):
        d = defer.Deferred.fromCoroutine(d)
    d.addTimeout(timeout, clock or _reactor())
    return await d


class Collector(Generic[T]):
    """A callback that records what it is called with; C{await wait(n)} for the first C{n}.

    @param ack: call C{item.ack()} on each item (for broker deliveries).
    """

    def __init__(self, ack: bool = False) -> None:
        self.items: list[T] = []
        self._ack = ack
        self._waiters: list[tuple[Callable[[list[T]], bool], defer.Deferred[None]]] = []

    def __call__(self, item: T) -> None:
        self.items.append(item)
        if self._ack:
            item.ack()  # type: ignore[attr-defined]
        for waiter in [w for w in self._waiters if w[0](self.items)]:
            self._waiters.remove(waiter)
            if not waiter[1].called:
                waiter[1].callback(None)

    def __len__(self) -> int:
        return len(self.items)

    async def wait(self, n: int, timeout: float = 5.0) -> list[T]:
        """The first C{n} items, once there are that many; C{defer.TimeoutError} after C{timeout}s."""
        await self._until(lambda items: len(items) >= n, timeout)
        return self.items[:n]

    async def wait_until(self, predicate: Callable[[T], bool], timeout: float = 5.0) -> list[T]:
        """The items up to and including the first one that satisfies C{predicate}."""
        await self._until(lambda items: any(predicate(i) for i in items), timeout)
        end = next(n for n, i in enumerate(self.items) if predicate(i))
        return self.items[: end + 1]

    async def _until(self, condition: Callable[[list[T]], bool], timeout: float) -> None:
        if not condition(self.items):
            d: defer.Deferred[None] = defer.Deferred()
            self._waiters.append((condition, d))
            await wait_for(d, timeout)
