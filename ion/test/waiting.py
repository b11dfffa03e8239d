"""Wait on events with a deadline instead of sleeping."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from twisted.internet import defer

T = TypeVar("T")


def _reactor() -> Any:
    from twisted.internet import reactor  # noqa: PLC0415 - no reactor at import time

    return reactor


async def wait_for(
    d: defer.Deferred[T] | Coroutine[Any, Any, T],
    timeout: float = 5.0,
    clock: Any = None,
) -> T:
    """Await C{d} (a Deferred or a coroutine); fail with C{defer.TimeoutError} after C{timeout}s."""
    if not isinstance(d, defer.Deferred):
        d = defer.Deferred.fromCoroutine(d)
    d.addTimeout(timeout, clock or _reactor())
    return await d


class Collector(Generic[T]):
    """A callback that records what it is called with; C{await wait(n)} for the first C{n}."""

    def __init__(self, clock: Any = None) -> None:
        self.items: list[T] = []
        self._clock = clock
        self._waiters: list[tuple[Callable[[list[T]], bool], defer.Deferred[None]]] = []

    def __call__(self, item: T) -> None:
        self.items.append(item)
        for waiter in [w for w in self._waiters if w[0](self.items)]:
            self._waiters.remove(waiter)
            if not waiter[1].called:
                waiter[1].callback(None)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Any:
        return iter(self.items)

    async def wait(self, n: int = 1, timeout: float = 5.0) -> list[T]:
        """The first C{n} items, once there are that many; C{defer.TimeoutError} after C{timeout}s."""
        await self._until(lambda items: len(items) >= n, timeout)
        return self.items[:n]

    async def wait_until(self, predicate: Callable[[T], bool], timeout: float = 5.0) -> T:
        """The first item that satisfies C{predicate}, once there is one."""
        await self._until(lambda items: any(predicate(i) for i in items), timeout)
        return next(i for i in self.items if predicate(i))

    async def _until(self, condition: Callable[[list[T]], bool], timeout: float) -> None:
        if condition(self.items):
            return
        d: defer.Deferred[None] = defer.Deferred()
        waiter = (condition, d)
        self._waiters.append(waiter)
        try:
            await wait_for(d, timeout, self._clock)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
