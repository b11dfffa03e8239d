"""The shell's sequence charts of this container's message tap: C{msc()}
(mscgen text, or an SVG file) and C{trace()} (text for the terminal)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ion.core.cc.shell_table import Text
from ion.core.exception import ProcessError
from ion.core.id import ProcessId
from ion.core.observe import arcs
from ion.core.observe.arcs import Arc
from ion.core.observe.msc import chart_lanes, render_svg
from ion.core.observe.mscgen import to_mscgen
from ion.core.observe.textchart import text_chart
from ion.core.process.process import Process

if TYPE_CHECKING:
    from ion.core.cc.shell_api import ShellApi

TAP_OFF = "the message tap is off (observer.tap: false)"


def msc(
    api: ShellApi,
    n: int,
    file: str | None = None,
    pid: Any = None,
    service: str | None = None,
    op: str | None = None,
    conv: str | None = None,
) -> Text:
    """The chart of the last C{n} messages that match: mscgen text, or an SVG
    written to C{file} and a line saying so."""
    chart = tap_arcs(api, n, pid, service, op, conv)
    if isinstance(chart, Text):
        return chart
    arc_list, names = chart
    if file is None:
        return Text(to_mscgen(arc_list, names=names).rstrip("\n"))
    title = f"{api.container.id}: the last {len(arc_list)} messages"
    svg = render_svg(arc_list, title=title, names=names)
    # A chart is tens of kB at most (the tap's size bounds it): written at once.
    Path(file).write_text(svg, encoding="utf-8")
    lanes = len(chart_lanes(arc_list, None, names))
    return Text(f"wrote {len(arc_list)} messages ({lanes} lanes) to {file}")


def trace(api: ShellApi, n: int) -> Text:
    """The last C{n} messages as a text chart."""
    chart = tap_arcs(api, n)
    if isinstance(chart, Text):
        return chart
    return Text(text_chart(chart[0], names=chart[1]))


def tap_arcs(
    api: ShellApi, n: int, pid: Any = None, service: Any = None, op: Any = None, conv: Any = None
) -> tuple[list[Arc], dict[str, str]] | Text:
    """The last C{n} arcs of the tap that match, and the process names its rows
    tell; the Text L{TAP_OFF} when the container has no tap."""
    tap = api.container.tap
    if tap is None:
        return Text(TAP_OFF)
    if not isinstance(n, int) or n < 1:
        raise ProcessError(f"n must be a positive number of messages, not {n!r}")
    filtered = any((pid, service, op, conv))
    # A filter looks at every row kept: the last n rows may hold none that match.
    rows = tap.read(limit=None if filtered else n).rows
    who = _pid_of(api, pid) if pid is not None else None
    return arcs.last_arcs(rows, n, pid=who, service=service, op=op, conv_id=conv)


def _pid_of(api: ShellApi, pid: Any) -> str:
    """The full id of a local process (by name or number), or C{pid} as given
    (a process of another container)."""
    if isinstance(pid, (Process, int)) or str(pid).isdigit():
        return str(api.get_proc(pid).id)
    proc = None if ProcessId.is_pid(str(pid)) else api.container.proc_manager.find(str(pid))
    return str(proc.id) if proc is not None else str(pid)
