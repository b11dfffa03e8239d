"""The shell's view of the whole system, through the container agents.

    ><> nodes()                          # this container and the peers it knows
    ><> ps(all=True)                     # the processes of every live container
    ><> p = spawn('pkg.mod:Class', node='host_4242')
    ><> kill(p)                          # a pid of another container: its agent kills it

C{nodes()} is this container's own view (no network). The rest asks other
containers' agents (L{ion.core.cc.agent_client}): C{ps(all=True)} asks all at
once and gives each C{agent.info_timeout} seconds, so one that does not answer
is a row of its own, not a hang. The errors the agents answer with come back
as ion's own (C{NotAllowed}, C{ModuleNotFound}, C{SpawnFailed}, C{NotFound}),
which the shell shows as one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ion.core import exception as exc
from ion.core.cc import agent_client
from ion.core.cc.shell_table import Table, Text
from ion.core.id import ProcessId
from ion.core.process.signals import container_of

if TYPE_CHECKING:
    from ion.core.cc.container import Container
    from ion.core.cc.shell_api import ShellApi
    from ion.core.process.process import Process

NODE_COLUMNS = ["container", "epoch", "state", "host", "os pid", "apps", "H",
                "last heard", "lag ms", "procs", "why"]  # fmt: skip
PS_COLUMNS = ["container", "name", "id", "state", "service", "class"]
NO_ANSWER = "no answer"


class SystemTable(Table):
    """A L{Table} whose last line is the given footer."""

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], footer: str) -> None:
        super().__init__(columns, rows)
        self.footer = footer

    def __str__(self) -> str:
        return f"{super().__str__()}\n{self.footer}"

    __repr__ = __str__


def nodes(container: Container) -> Table:
    """This container (state C{UP (this one)}) and every peer it knows, newest epoch
    of each, as its agent last heard of them."""
    now = container.reactor.seconds()
    me, *peers = agent_client.nodes(container)
    rows = [_node_row(me, now)]
    rows += [_node_row(p, now) for p in sorted(peers, key=lambda p: str(p["cid"]))]
    return Table(NODE_COLUMNS, rows, "container")


def _node_row(node: dict[str, Any], now: float) -> list[Any]:
    heard = node.get("last_heard")
    interval = node.get("interval")
    return [
        node["cid"],
        node.get("epoch"),
        node.get("state"),
        node.get("host"),
        node.get("os_pid"),
        ",".join(node.get("apps") or ()),
        "" if interval is None else f"{interval:g}s",
        "-" if heard is None else f"{max(0.0, now - heard):.1f}s ago",
        f"{float(node.get('lag_ms') or 0.0):.1f}",
        node.get("n_procs"),
        node.get("why"),
    ]


async def ps_all(api: ShellApi, timeout: float | None = None) -> Table:
    """The processes of every container not known DEAD or LEFT, asked at once with
    a deadline (default C{agent.info_timeout}); a container that did not answer
    is one row, C{no answer (why)}."""
    caller = await api.shell_process()
    answers = await agent_client.gather_info(caller, timeout)
    rows: list[list[Any]] = []
    silent = 0
    for cid, info in answers:
        if isinstance(info, BaseException):
            silent += 1
            rows.append([cid, "", "", f"{NO_ANSWER} ({_why(info)})", "", ""])
            continue
        for proc in info.get("processes") or ():
            cls = str(proc.get("class") or "")
            rows.append([cid, proc.get("name"), proc.get("pid"), proc.get("state"),
                         proc.get("service"), cls.rpartition(".")[2]])  # fmt: skip
    n, m = len(rows) - silent, len(answers) - silent
    footer = f"{n} process{'' if n == 1 else 'es'} in {m} container{'' if m == 1 else 's'}"
    if silent:
        footer += f"; {silent} did not answer"
    return SystemTable(PS_COLUMNS, rows, footer)


def _why(error: BaseException) -> str:
    if isinstance(error, exc.TimeoutError):
        return "no reply in time"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def remote_module(target: Any) -> str:
    """What the agent of another container is asked to spawn: C{'module:Class'} or
    C{'module.Class'} as given, or the name of a class defined at a module's top level."""
    if isinstance(target, str):
        return target
    if isinstance(target, type):
        module, name = target.__module__, target.__qualname__
        if "." in name or module in ("__main__", "__ion_shell__", "builtins"):
            raise exc.ProcessError(
                f"spawn(..., node=): {name} is not importable by another container; "
                "name a class at the top level of a module, as 'module:Class'"
            )
        return f"{module}:{name}"
    raise exc.ProcessError(
        f"spawn(..., node=): give 'module:Class' (a string) to spawn in another container, "
        f"not {target!r}"
    )


async def spawn_on(
    api: ShellApi, target: Any, node: str, name: str | None, args: dict[str, Any] | None
) -> Text:
    """Spawn C{target} in container C{node} through its agent; the new pid."""
    module = remote_module(target)
    caller = await api.shell_process()
    pid = await _asked(node, agent_client.spawn_on(caller, node, module, name=name, args=args))
    return Text(pid)


def is_remote(container: Container, pid: Any) -> bool:
    """Whether C{pid} is the full id of a process of another container."""
    if not isinstance(pid, str | ProcessId):
        return False
    text = str(pid)
    return ProcessId.is_pid(text) and container_of(text) != container.id


def not_the_agent(container: Container, proc: Process) -> Process:
    """C{proc}, unless it is the container agent, which stops with its container
    (as its C{kill} and C{terminate} ops say to others)."""
    if proc is container.agent:
        raise exc.NotAllowed(
            f"{proc.id} is the container agent: it stops with its container, not alone "
            "(without it the container is out of its system)"
        )
    return proc


async def stop_on(api: ShellApi, pid: Any, kill: bool, reason: str) -> Text:
    """Kill or terminate process C{pid} of another container through its agent."""
    text, cid = str(pid), container_of(str(pid))
    caller = await api.shell_process()
    await _asked(cid, agent_client.stop_remote(caller, text, kill=kill, reason=reason))
    return Text(f"killed {text} ({reason})" if kill else f"terminated {text}")


async def _asked(cid: str, call: Any) -> Any:
    """The result of a call to C{cid}'s agent; a timeout names the container."""
    try:
        return await call
    except exc.TimeoutError as e:
        raise exc.TimeoutError(f"container {cid} did not answer in time ({e})") from None
    except exc.NotFound as e:
        if isinstance(e, exc.ModuleNotFound) or not str(e).startswith("no container"):
            raise
        raise exc.NotFound(f"{e} (nodes() lists the containers this one knows)") from None
