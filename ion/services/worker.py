"""A tiny worker for supervision trees (ion/res/apps/supervised.app): it
counts the work it is given and crashes when asked to."""

from __future__ import annotations

from typing import Any

from ion.core.messaging import message as m
from ion.core.process.process import Process


class Worker(Process):
    """Counts C{work} requests; C{crash} ends it with C{error:RuntimeError}."""

    crash_on_error = True  # let it crash: its supervisor restarts it

    def on_init(self) -> None:
        self.done = 0

    def op_work(self, content: Any, headers: dict[str, Any], msg: m.Message) -> Any:
        self.done += 1
        return {"by": str(self.id), "done": self.done}

    def op_crash(self, content: Any, headers: dict[str, Any], msg: m.Message) -> Any:
        raise RuntimeError(f"{self.proc_name} asked to crash")
