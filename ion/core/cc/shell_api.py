"""The helpers of the cc shell: the C{cc} object and the original's top-level names.

    ><> ps()                                   # this container's processes
    ><> p = await cc.spawn('hello', name='hello2')
    ><> rpc_send('hello', 'hello', 'you')      # the shell shows the reply when it comes
    {'value': 'Hello there, you'}

A process is addressed by its full id (C{hello.1@host_42}), its name (the
newest process of that name) or its local number (C{1}). Helpers that list
things return a L{Table}, which the shell prints aligned and code can iterate;
helpers that wait return a Deferred or coroutine, which the shell awaits.
Messages go out from one implicit process, C{shell}, spawned on first use.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from ion.core.cc import shell_charts, shell_nodes
from ion.core.cc.shell_table import Table, Text
from ion.core.cc.shell_tree import supervision_tree
from ion.core.exception import ProcessError
from ion.core.id import ProcessId
from ion.core.process.exit import KILLED, SHUTDOWN
from ion.core.process.implicit import ImplicitProcess
from ion.core.process.lookup import declared_services, qualname, resolve_spawnable, service_name_of
from ion.core.process.process import Process
from ion.core.security.identity import shell_user

if TYPE_CHECKING:
    from ion.core.cc.container import Container


class ShellApi:
    """The C{cc} object of the shell: one container's processes, apps, services and names."""

    def __init__(self, container: Container) -> None:
        self.container = container
        self._shell = ImplicitProcess(container, "shell")
        #: The user-id the shell's calls carry (L{ion.core.security.identity.shell_user}).
        self.user = shell_user(container.config)

    def __repr__(self) -> str:
        return f"<cc: container {self.container.id}, sysname {self.container.sysname}; info()>"

    @property
    def config(self) -> Any:
        """The container's configuration (C{cc.config.get('broker.url')})."""
        return self.container.config

    @property
    def id(self) -> str:
        return self.container.id

    @property
    def sysname(self) -> str:
        return self.container.sysname

    # -- processes ---------------------------------------------------------------

    def get_proc(self, pid: Any) -> Process:
        """The local process with this full id, name or local number."""
        if isinstance(pid, Process):
            return pid
        proc = self.container.proc_manager.find(pid if isinstance(pid, int) else str(pid))
        if proc is None:
            raise ProcessError(f"no process {pid!r} in container {self.container.id} (see ps())")
        return proc

    def ps(self, all: bool = False) -> Table | Awaitable[Table]:
        """Print a table of this container's processes: number, name, id, state, service,
        class. C{all=True}: the processes of every container of the system that is not
        DEAD or LEFT, asked through their agents (each has C{agent.info_timeout}
        seconds; one that does not answer is a row C{no answer (why)})."""
        if all:
            return shell_nodes.ps_all(self)
        rows = []
        for proc in self.container.proc_manager.processes.values():
            assert proc.id is not None
            rows.append(
                [
                    proc.id.local,
                    proc.proc_name,
                    str(proc.id),
                    proc.state,
                    getattr(proc, "svc_name", ""),
                    type(proc).__name__,
                ]
            )
        return Table(["#", "name", "id", "state", "service", "class"], rows, "process")

    async def spawn(
        self,
        target: Any,
        name: str | None = None,
        args: dict[str, Any] | None = None,
        container: Any = None,
        node: str | None = None,
    ) -> Process | Text:
        """Spawn a process from a class, 'module.Class', a module or a declared service name;
        return it once ACTIVE. C{node=cid}: spawn C{'module:Class'} in container C{cid}
        of the system, through its agent (if its C{agent.spawn_allow} allows the
        module); return the new pid."""
        if node is not None and node != self.container.id:
            if container is not None:
                raise ProcessError("spawn: give container= or node=, not both")
            return await shell_nodes.spawn_on(self, target, node, name, args)
        where = self._container(container)
        return await where.spawn(resolve_spawnable(target), name=name, args=args)

    def _container(self, container: Any) -> Container:
        if container is None or container is self.container or container == self.container.id:
            return self.container
        if hasattr(container, "proc_manager"):
            return container
        raise ProcessError(
            f"container {container!r}: only this container ({self.container.id}) or another "
            "Container object in this OS process can be given (node='<container id>' spawns "
            "in another container of the system)"
        )

    def nodes(self) -> Table:
        """Print this container and the containers of the system it knows, as its
        agent sees them (no network): id, epoch, state (UP, SUSPECT, DEAD, LEFT) and
        why, host, OS pid, apps, heartbeat interval, when last heard, reactor lag,
        processes."""
        return shell_nodes.nodes(self.container)

    def tree(self) -> Table:
        """Print the supervision trees of this container: each supervisor's children
        (child id, pid, state, restarts) under it, with its strategy; processes under
        no supervisor are roots."""
        return supervision_tree(self.container.proc_manager.processes.values())

    async def kill(self, pid: Any, reason: str = KILLED) -> Text:
        """Kill a process (full id, name or number) at once, with exit reason
        C{reason}: no terminate hook runs, and its supervisor (if any) restarts it
        as its spec says. A full id of another container: through its agent."""
        if shell_nodes.is_remote(self.container, pid):
            return await shell_nodes.stop_on(self, pid, True, reason)
        proc = shell_nodes.not_the_agent(self.container, self.get_proc(pid))
        await self.container.proc_manager.kill(proc, reason)
        self._forget_shell(proc)
        return Text(f"killed {proc.id} ({reason})")

    async def terminate(self, pid: Any, reason: str = SHUTDOWN) -> Text:
        """Terminate a process (full id, name or number): its terminate hook runs;
        it ends with exit reason C{reason}. A full id of another container: through
        its agent."""
        if shell_nodes.is_remote(self.container, pid):
            return await shell_nodes.stop_on(self, pid, False, reason)
        proc = shell_nodes.not_the_agent(self.container, self.get_proc(pid))
        await self.container.proc_manager.terminate(proc, reason)
        self._forget_shell(proc)
        return Text(f"terminated {proc.id}")

    def _forget_shell(self, proc: Process) -> None:
        if proc is self._shell.proc:
            self._shell.proc = None

    async def makeprocess(self, name: str = "shellproc") -> Process:
        """Spawn a bare Process to send from (C{await p.rpc_send(...)})."""
        proc = await self.container.spawn(Process, name=name)
        proc.user_id = self.user
        return proc

    async def shell_process(self) -> Process:
        """The implicit process C{send}, C{rpc_send} and C{ping} use (spawned on first
        use; helpers called together share that one spawn)."""
        proc = await self._shell.get()
        proc.user_id = self.user  # whoever reached the shell: its calls say so
        return proc

    # -- messages ----------------------------------------------------------------

    def address(self, to: Any) -> str:
        """The routing key for C{to}: a local number or a local process's name becomes
        its id; a process id or a service name is used as it is."""
        if isinstance(to, Process):
            return str(to.id)
        if isinstance(to, int) or (isinstance(to, str) and to.isdigit()):
            return str(self.get_proc(to).id)
        to = str(to)
        if ProcessId.is_pid(to):
            return to
        proc = self.container.proc_manager.find(to)
        if proc is not None and getattr(proc, "svc_name", None) != to:
            return str(proc.id)
        return to

    async def send(
        self, to: Any, op: str, content: Any = None, headers: dict[str, Any] | None = None
    ) -> Text:
        """Send a one-off message C{op} to C{to} (no reply is awaited)."""
        key = self.address(to)
        await (await self.shell_process()).send(key, op, content, headers)
        return Text(f"sent {op} to {key}")

    async def rpc_send(
        self,
        to: Any,
        op: str,
        content: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call C{op} of C{to} (service name, process id, name or number); the reply content."""
        proc = await self.shell_process()
        return await proc.rpc_send(self.address(to), op, content, headers=headers, timeout=timeout)

    async def ping(self, service: Any, timeout: float | None = None) -> Text:
        """Ping a service or process and say who answered, and how fast."""
        proc = await self.shell_process()
        start = time.monotonic()
        reply = await proc.rpc_send(self.address(service), "ping", timeout=timeout)
        ms = (time.monotonic() - start) * 1000
        who = reply.get("pong", "?") if isinstance(reply, dict) else reply
        return Text(f"ping {service}: ok from {who} in {ms:.1f} ms")

    # -- apps, services, names ---------------------------------------------------

    def apps(self) -> Table:
        """Print a table of the running apps: name, version, state, release."""
        rows = [[a.name, a.version, a.state, a.release or ""] for a in self.container.apps()]
        return Table(["name", "version", "state", "release"], rows, "app")

    async def start_app(self, app: Any, **kwargs: Any) -> Text:
        """Start an app by name or .app path (after the apps it needs)."""
        info = await self.container.start_app(app, **kwargs)
        return Text(f"started app {info.name} {info.version}")

    async def start_rel(self, path: Any) -> Text:
        """Start a release by .rel path or name."""
        infos = await self.container.start_rel(path)
        return Text(
            f"started release {path}: " + (", ".join(i.name for i in infos) or "nothing new")
        )

    async def stop_app(self, name: str) -> Text:
        """Stop a running app (and its processes)."""
        await self.container.stop_app(name)
        return Text(f"stopped app {name}")

    def svc(self) -> Table:
        """Print the declared services: name, version, class, and instances running here."""
        running: dict[str, int] = {}
        for proc in self.container.proc_manager.processes.values():
            key = qualname(type(proc))
            running[key] = running.get(key, 0) + 1
        rows = [
            [
                service_name_of(cls),
                (getattr(cls, "declare", None) or {}).get("version", getattr(cls, "version", "")),
                qualname(cls),
                running.get(qualname(cls), 0),
            ]
            for cls in sorted(declared_services(), key=lambda c: (service_name_of(c), qualname(c)))
        ]
        return Table(["service", "version", "class", "here"], rows, "service")

    def ms(self) -> Table:
        """Print the broker names of this container: exchanges, service queues, mailboxes."""
        ex = self.container.exchange
        rows = [
            [ex.exchange_name, "exchange (direct)", "", "processes and services"],
            [ex.events_exchange, "exchange (topic)", "", "events"],
        ]
        for queue in sorted(ex.shared_queues):
            key = queue[len(ex.sysname) + 1 :]
            rows.append([queue, "shared queue", key, "service or subscription"])
        for proc in self.container.proc_manager.processes.values():
            rows.append([ex.queue_name(str(proc.id)), "mailbox", str(proc.id), proc.proc_name])
        return Table(["name", "kind", "routing key", "for"], rows)

    def msc(
        self,
        n: int = 50,
        file: str | None = None,
        pid: str | None = None,
        service: str | None = None,
        op: str | None = None,
        conv: str | None = None,
    ) -> Text:
        """The last C{n} messages of this container's tap as a sequence chart: mscgen
        text, or with C{file} an SVG written there. C{pid}, C{service}, C{op} and
        C{conv} (a conversation id) keep only the messages that match; C{pid} is a
        full id, or a local process's name or number."""
        return shell_charts.msc(self, n, file, pid, service, op, conv)

    def trace(self, n: int = 20) -> Text:
        """The last C{n} messages of this container's tap as a text sequence chart."""
        return shell_charts.trace(self, n)

    def info(self) -> Text:
        """Print this container and every helper of the shell, one line each."""
        c = self.container
        head = [
            f"container {c.id}   sysname {c.sysname}   broker {c.broker_node}",
            f"{len(c.proc_manager.processes)} processes, apps: "
            + (", ".join(a.name for a in c.apps()) or "none"),
            c.policy.summary() if c.policy is not None else "policy: none (every request allowed)",
            _drops_line(c.drops.as_dict()),
            "",
            "helpers (also as cc.<name>; a process is a full id, a name or a number):",
        ]
        width = max(len(n) for n, _ in HELPERS) + 2
        lines = [f"  {name.ljust(width)}{doc}".replace("\n", "\n" + " " * (width + 2))
                 for name, doc in HELPERS]  # fmt: skip
        tail = [
            "",
            "expr? shows the help of expr; a Deferred or coroutine is awaited and its result",
            "shown (await works too); Tab completes; Ctrl-C clears the line or stops waiting;",
            "Ctrl-D leaves the shell.",
        ]
        return Text("\n".join(head + lines + tail))

    def web(self) -> Text:
        """Print the observer web view's address, whether its actions are on, and
        the token the pages ask for before an action (C{X-Ion-Token})."""
        view = self.container.web
        if view is None or view.url is None:
            return Text("the web view is off (start with --web HOST:PORT)")
        actions = "on" if view.actions else "off (web.actions: true turns them on)"
        return Text(f"web view at {view.url}\nactions {actions}\ntoken {view.token}")


def _drops_line(drops: dict[str, Any]) -> str:
    """One line of the bad messages dropped: how many, the top causes and senders."""
    if not drops["total"]:
        return "no bad messages dropped"
    causes = ", ".join(f"{k} ({n:,})" for k, n in list(drops["causes"].items())[:3])
    senders = ", ".join(f"{k} ({n:,})" for k, n in list(drops["senders"].items())[:3])
    return f"{drops['total']:,} bad messages dropped: {causes}; from {senders}"


HELPERS: list[tuple[str, str]] = [
    ("info()", "this text"),
    ("web()", "the observer web view: its address, actions, token"),
    ("ps(all=)", "the processes of this container; all=True: of every live container"),
    ("nodes()", "this container and its peers: state, epoch, host, last heard"),
    ("ms()", "exchanges and queues of this container on the broker"),
    (
        "msc(n=, file=)",
        "the last n messages as a sequence chart: mscgen text, or an SVG\n"
        "to file; pid=, service=, op=, conv= keep the ones that match",
    ),
    ("trace(n=)", "the last n messages as a text sequence chart"),
    ("svc()", "declared services (classes), and how many run here"),
    (
        "spawn(what, name=, args=)",
        "spawn a process: class, 'module.Class', module or service name;\n"
        "node=cid: 'module:Class' in container cid, through its agent",
    ),
    ("tree()", "supervisors and their children: child id, pid, state, restarts"),
    ("kill(pid, reason=)", "kill a process, here or elsewhere (its supervisor restarts it)"),
    ("terminate(pid)", "terminate a process, here or elsewhere (its terminate hook runs)"),
    ("get_proc(pid)", "the local Process object"),
    ("makeprocess(name=)", "spawn a bare Process to send from"),
    ("send(to, op, content)", "send a one-off message from the shell process"),
    ("rpc_send(to, op, content)", "call an operation; shows the reply content"),
    ("ping(service)", "ping a service or process"),
    ("cc.apps()", "running apps"),
    ("cc.start_app(app)", "start an app by name or .app path"),
    ("cc.start_rel(path)", "start a release"),
    ("cc.stop_app(name)", "stop an app"),
    ("cc.config", "the container's configuration"),
    ("container", "the Container object itself"),
]

TOP_LEVEL = (
    "info",
    "web",
    "ps",
    "nodes",
    "ms",
    "msc",
    "trace",
    "svc",
    "spawn",
    "send",
    "rpc_send",
    "ping",
    "kill",
    "terminate",
    "tree",
    "makeprocess",
    "get_proc",
)


def namespace(api: ShellApi) -> dict[str, Any]:
    """The names a shell session starts with: C{cc}, C{container} and the helpers."""
    ns: dict[str, Any] = {"cc": api, "container": api.container, "__name__": "__ion_shell__"}
    ns.update({name: getattr(api, name) for name in TOP_LEVEL})
    return ns
