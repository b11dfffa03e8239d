"""The services scripts/chaos.py runs in its twistd containers.

ChaosEcho answers each call with the call's own token (so a reply given to the
wrong call shows) after a short pause (so a killed instance dies mid-request),
and tells the sink it ran it (so a call run twice shows). ChaosSink records
what it is sent, and reports it.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import deferLater

from ion.core.process.service import ServiceProcess


class ChaosEcho(ServiceProcess):
    declare = ServiceProcess.service_declare(name="chaos_echo", version="0.1.0")

    async def op_echo(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        await deferLater(self.container.reactor, float(content.get("pause", 0.02)), lambda: None)
        sent = self.send("chaos_sink", "ran", content["token"])
        sent.addErrback(lambda _: None)  # best effort: a cut link loses it, said in the count
        return {"token": content["token"], "by": str(self.id)}


class ChaosSink(ServiceProcess):
    declare = ServiceProcess.service_declare(name="chaos_sink", version="0.1.0")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.records: list[int] = []
        self.ran: list[str] = []

    def op_record(self, content: Any, headers: dict[str, Any], msg: Any) -> None:
        self.records.append(content)

    def op_ran(self, content: Any, headers: dict[str, Any], msg: Any) -> None:
        self.ran.append(content)

    def op_report(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return {"records": self.records, "ran": self.ran}
