"""A process for link tests in real (twistd) containers: it links and monitors
when asked, and writes what it sees, with the wall-clock time, as JSON lines to
the file C{args["log"]} (a file, not a message: it works while the broker
link is down). L{boot_script} is the boot file of a container of them."""

from __future__ import annotations

import json
import time
from typing import Any

from ion.core.messaging import message as m
from ion.core.process.process import Process


class Reporter(Process):
    """Traps exits; C{link}, C{monitor}, C{exit} and C{call} on request."""

    trap_exits = True

    def note(self, event: str, **fields: Any) -> None:
        entry = {"event": event, "by": str(self.id), "at": time.time(), **fields}
        with open(self.args["log"], "a") as f:
            f.write(json.dumps(entry) + "\n")

    def op_link(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.note("linking", pid=content)
        self.link(content)
        return "ok"

    def op_monitor(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.note("monitoring", pid=content)
        return self.monitor(content)

    def op_exit(self, content: Any, headers: dict, msg: m.Message) -> Any:
        self.note("exiting", reason=content)
        self.exit(content)

    async def op_call(self, content: Any, headers: dict, msg: m.Message) -> Any:
        """Call C{echo} on each pid of C{content}: what this process sent them
        before has reached them once this returns."""
        return [await self.rpc_send(pid, "echo", "sync") for pid in content]

    def op_echo(self, content: Any, headers: dict, msg: m.Message) -> Any:
        return content

    def on_exit(self, pid: str, reason: str) -> None:
        self.note("on_exit", pid=pid, reason=reason)

    def on_down(self, ref: str, pid: str, reason: str) -> None:
        self.note("on_down", ref=ref, pid=pid, reason=reason)


BOOT = """\
import json, os
from tests.core.process.linkers import Reporter
pids = {{}}
for name in {names!r}:
    proc = await cc.spawn(Reporter, name=name, args={{"log": {log!r}}})
    pids[name] = str(proc.id)
open({pids!r} + ".tmp", "w").write(json.dumps(pids))
os.rename({pids!r} + ".tmp", {pids!r})
"""


def boot_script(names: list[str], log: str, pids: str) -> str:
    """A boot file spawning a L{Reporter} per name, logging to C{log}, and
    writing C{{name: pid}} to C{pids}."""
    return BOOT.format(names=names, log=log, pids=pids)
