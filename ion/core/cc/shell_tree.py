"""The shell's C{tree()}: a container's processes as supervision trees.

Each process not under a supervisor is a root; under a supervisor come its
children in start order (a child that is not running is listed without a
pid, state C{down}), under any other process the processes it spawned.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ion.core.process.supervisor import Supervisor

if TYPE_CHECKING:
    from ion.core.cc.shell_table import Table
    from ion.core.process.process import Process

COLUMNS = ["process", "child id", "id", "state", "restarts", "strategy"]
INDENT = "  "


def supervision_tree(processes: Iterable[Process]) -> Table:
    """The rows of C{tree()}: every process once, children indented under their parent."""
    from ion.core.cc.shell_table import Table

    procs = list(processes)
    rows: list[list[Any]] = []
    for proc in procs:
        if proc.parent is None or proc.parent not in procs:
            _add(rows, proc, 0, "", None)
    return Table(COLUMNS, rows, "process")


def _strategy(proc: Process) -> str:
    if not isinstance(proc, Supervisor):
        return ""
    flags = proc.flags
    return f"{flags.strategy} ({flags.intensity} in {flags.period:g}s)"


def _add(rows: list[list[Any]], proc: Process, depth: int, child_id: str, restarts: Any) -> None:
    rows.append(
        [INDENT * depth + proc.proc_name, child_id, str(proc.id), proc.state,
         restarts, _strategy(proc)]
    )  # fmt: skip
    if isinstance(proc, Supervisor):
        for kid in proc.kids:
            if kid.proc is not None:
                _add(rows, kid.proc, depth + 1, kid.spec.id, kid.restarts)
            else:
                name = INDENT * (depth + 1) + (kid.spec.name or kid.spec.id)
                rows.append([name, kid.spec.id, "", "down", kid.restarts, ""])
    else:
        for child in proc.children:
            _add(rows, child, depth + 1, "", None)
