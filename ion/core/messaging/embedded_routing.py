"""The exchanges of an L{ion.core.messaging.embedded.EmbeddedBroker}: bindings and routing.

An L{Exchange} keeps its bindings by key, so direct routing, and topic routing
with no wildcard binding, is one dict lookup; wildcard topic bindings are
matched with L{ion.core.messaging.topic}, and their answers (and fanout's) are
cached per routing key until the bindings change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ion.core.messaging.topic import compile_topic, is_wildcard

__all__ = ["Exchange"]

_ROUTE_CACHE_MAX = 4096


class Exchange:
    """One exchange: its type, its bindings and the queues a routing key reaches."""

    __slots__ = ("name", "type", "auto_delete", "_keys", "_wild", "_cache")

    def __init__(self, name: str, type: str, auto_delete: bool) -> None:
        self.name = name
        self.type = type
        self.auto_delete = auto_delete
        self._keys: dict[str, dict[str, None]] = {}  # binding key -> queue names (ordered set)
        self._wild: dict[tuple[str, str], Callable[[str], bool]] = {}  # (pattern, queue) -> match
        self._cache: dict[str, tuple[str, ...]] = {}  # routing key -> queue names

    def bind(self, queue: str, key: str) -> None:
        """Route messages whose routing key matches C{key} to C{queue}."""
        if self.type == "topic" and is_wildcard(key):
            self._wild[(key, queue)] = compile_topic(key)
        else:
            self._keys.setdefault(key, {})[queue] = None
        self._cache.clear()

    def unbind(self, queue: str, key: str) -> None:
        """Undo L{bind}; a binding that does not exist is ignored."""
        if self._wild.pop((key, queue), None) is None:
            queues = self._keys.get(key)
            if queues is not None:
                queues.pop(queue, None)
                if not queues:
                    del self._keys[key]
        self._cache.clear()

    def bindings(self) -> list[tuple[str, str]]:
        """Every (queue, binding key) pair."""
        pairs = [(q, key) for key, queues in self._keys.items() for q in queues]
        return pairs + [(q, key) for key, q in self._wild]

    def route(self, key: str) -> Iterable[str]:
        """The names of the queues a message with routing key C{key} goes to."""
        if self.type == "direct":
            return self._keys.get(key, ())
        if self.type == "topic" and not self._wild:
            return self._keys.get(key, ())
        if self.type == "fanout":
            key = ""  # one cached answer for every key
        hit = self._cache.get(key)
        if hit is None:
            if self.type == "fanout":
                names = {q: None for queues in self._keys.values() for q in queues}
            else:
                names = dict.fromkeys(self._keys.get(key, ()))
                for (_, queue), match in self._wild.items():
                    if match(key):
                        names[queue] = None
            hit = tuple(names)
            if len(self._cache) >= _ROUTE_CACHE_MAX:
                self._cache.clear()
            self._cache[key] = hit
        return hit
