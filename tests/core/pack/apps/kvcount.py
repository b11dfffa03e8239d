"""A key-value service and a counter that keeps its counts in it (the two-container case)."""

from __future__ import annotations

from typing import Any

from ion.core.exception import NotFound, ReceivedError
from ion.core.process.service import ServiceClient, ServiceProcess


class KvService(ServiceProcess):
    """Keeps values by key in memory."""

    service_name = "kv"

    def on_init(self) -> None:
        self.data: dict[str, Any] = {}

    def op_get(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        if content not in self.data:
            raise NotFound(f"no key {content!r}")
        return self.data[content]

    def op_put(self, content: Any, headers: dict[str, Any], msg: Any) -> None:
        self.data[content["key"]] = content["value"]


class KvClient(ServiceClient):
    targetname = "kv"

    async def get(self, key: str, default: Any = None) -> Any:
        try:
            return await self.rpc_send("get", key)
        except ReceivedError as e:
            if e.code == NotFound.code:
                return default
            raise

    async def put(self, key: str, value: Any) -> None:
        await self.rpc_send("put", {"key": key, "value": value})


class CounterService(ServiceProcess):
    """C{incr(name)}: the count of C{name} after adding one, kept in the kv service."""

    service_name = "counter"

    async def op_incr(self, content: Any, headers: dict[str, Any], msg: Any) -> dict[str, Any]:
        kv = KvClient(proc=self)
        count = await kv.get(content, 0) + 1
        await kv.put(content, count)
        assert self.container is not None
        return {"count": count, "container": self.container.id}
