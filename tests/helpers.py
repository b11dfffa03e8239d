"""Test helpers: the kit's waiting tools (L{ion.test.waiting}), with two additions
this suite relies on, and a port nothing listens on."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any, TypeVar

from ion.test.waiting import Collector as _KitCollector
from ion.test.waiting import wait_for

T = TypeVar("T")

__all__ = ["Collector", "closed_port", "wait_for"]


def closed_port() -> int:
    """A local TCP port nothing listens on (one the OS just handed out and took back)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def user_procs(container: Any) -> dict[str, Any]:
    """The container's processes but its agent (C{cc_agent}, in every container)."""
    return {k: p for k, p in container.proc_manager.processes.items() if p is not container.agent}
