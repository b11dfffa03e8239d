"""A greeter that calls the hello service, and fails in the ways services do."""

from __future__ import annotations

from typing import Any

from ion.core.process.service import ServiceClient, ServiceProcess
from ion.services.hello.service import HelloServiceClient


class GreeterService(ServiceProcess):
    """Greets through the hello service; C{broken} and C{broken_later} raise."""

    declare = ServiceProcess.service_declare(name="greeter", version="0.1.0")

    async def op_greet(self, content: Any, headers: dict[str, Any], msg: Any) -> str:
        # No arguments: in a handler, the client calls from this process.
        return await HelloServiceClient().hello(content)

    def op_broken(self, content: Any, headers: dict[str, Any], msg: Any) -> None:
        raise RuntimeError("the greeter is broken")

    async def op_broken_later(self, content: Any, headers: dict[str, Any], msg: Any) -> None:
        await HelloServiceClient().hello("first")
        raise KeyError(content)


class GreeterClient(ServiceClient):
    """Calls the greeter."""

    targetname = "greeter"

    async def greet(self, name: str) -> str:
        return await self.rpc_send("greet", name)

    async def broken(self) -> None:
        await self.rpc_send("broken")

    async def broken_later(self, key: str) -> None:
        await self.rpc_send("broken_later", key)
