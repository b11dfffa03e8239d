"""The hello service: the smallest useful service, and the shape of every other."""

from __future__ import annotations

from typing import Any

from ion.core.exception import BadRequest
from ion.core.process.service import ServiceClient, ServiceProcess
from ion.gateway.routes import http


class HelloService(ServiceProcess):
    """Answers C{hello} with a greeting."""

    declare = ServiceProcess.service_declare(name="hello", version="0.1.0", dependencies=[])

    @http("GET", "/hello/<name>", content="name")
    def op_hello(self, content: Any, headers: dict[str, Any], msg: Any) -> dict[str, str]:
        """Greet C{content} (a string)."""
        if not isinstance(content, str):
            raise BadRequest(f"hello takes a string, not {type(content).__name__}")
        return {"value": "Hello there, " + content}


class HelloServiceClient(ServiceClient):
    """Calls the hello service."""

    targetname = "hello"

    async def hello(self, text: str = "Hi there, hello1") -> str:
        """Return the service's greeting for C{text}."""
        reply = await self.rpc_send("hello", text)
        return reply["value"]
