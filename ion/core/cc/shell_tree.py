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


def tree_nodes(processes: Iterable[Process]) -> list[dict[str, Any]]:
    """The same walk as L{supervision_tree}, as plain records (the agent's
    C{get_info} and the web view): one per row, with its C{depth}; a
    supervisor's record has its flags and C{restarts_in_period}, a supervised
    child's its C{child_id}, C{restart} type, C{restarts}, C{last_exit} and
    C{gave_up} (its last process was a supervisor that gave up)."""
    procs = list(processes)
    out: list[dict[str, Any]] = []
    for proc in procs:
        if proc.parent is None or proc.parent not in procs:
            _node(out, proc, None, 0)
    return out


def _node(out: list[dict[str, Any]], proc: Process | None, kid: Any, depth: int) -> None:
    node: dict[str, Any] = {"depth": depth, "pid": None, "name": "", "state": "down"}
    if kid is not None:
        spec = kid.spec
        node.update(child_id=spec.id, name=spec.name or spec.id, restart=spec.restart,
                    type=spec.type, restarts=kid.restarts, last_exit=kid.last_exit,
                    gave_up=kid.gave_up)  # fmt: skip
    if proc is not None:
        node.update(pid=str(proc.id), name=proc.proc_name, state=proc.state)
    if isinstance(proc, Supervisor):
        flags = proc.flags
        node.update(supervisor=True, strategy=flags.strategy, intensity=flags.intensity,
                    period=flags.period, restarts_in_period=proc.restarts_in_period())  # fmt: skip
    else:
        node["supervisor"] = kid is not None and kid.spec.type == "supervisor"
    out.append(node)
    if isinstance(proc, Supervisor):
        for child in proc.kids:
            _node(out, child.proc, child, depth + 1)
    elif proc is not None:
        for child_proc in proc.children:
            _node(out, child_proc, None, depth + 1)


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
