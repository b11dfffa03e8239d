"""Processes for supervision trees started from .app files: each records its
start and terminate hook in L{EVENTS}, which tests read and wait on."""

from __future__ import annotations

from typing import Any

from ion.core.messaging import message as m
from ion.core.process.process import Process
from tests.helpers import Collector

#: (what, process name) as it happened, across the test.
EVENTS: Collector[tuple[str, str]] = Collector()


class Recorded(Process):
    """Records ("start", name) once ACTIVE and ("terminate", name) in its hook;
    C{crash} ends it with C{error:RuntimeError}; spawn arg C{fail_init} fails its
    start, C{crash_at_start} ends it with C{error:Boom} as soon as it is ACTIVE."""

    crash_on_error = True

    def on_init(self) -> None:
        if self.args.get("fail_init"):
            raise RuntimeError(f"{self.proc_name} cannot start")

    def on_activate(self) -> None:
        EVENTS(("start", self.proc_name))
        if self.args.get("crash_at_start"):
            assert self.container is not None
            self.container.reactor.callLater(0, self.crash, "error:Boom")

    def on_terminate(self) -> None:
        EVENTS(("terminate", self.proc_name))

    def op_crash(self, content: Any, headers: dict[str, Any], msg: m.Message) -> Any:
        raise RuntimeError(f"{self.proc_name} asked to crash")
