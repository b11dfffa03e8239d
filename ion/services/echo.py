"""The echo service: answers with what it was sent (for benchmarks and health checks)."""

from __future__ import annotations

from typing import Any

from ion.core.process.service import ServiceProcess


class EchoService(ServiceProcess):
    """Answers C{echo} with its content."""

    declare = ServiceProcess.service_declare(name="echo", version="0.1.0")

    def op_echo(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        """Return C{content} unchanged."""
        return content
