"""Services for the multi-container tests: who answered, and one that never does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from ion.core.process.service import ServiceProcess


class WhoAmI(ServiceProcess):
    """Answers C{who} with its container's id."""

    service_name = "whoami"

    def op_who(self, content: Any, headers: dict, msg: Any) -> str:
        assert self.container is not None
        return self.container.id


class Stuck(ServiceProcess):
    """Takes C{work}, says so in the file named by spawn arg C{marker}, never answers."""

    service_name = "stuck"

    async def op_work(self, content: Any, headers: dict, msg: Any) -> None:
        Path(self.args["marker"]).write_text(f"{self.id} has {content}\n")
        await Deferred()  # until the container dies
