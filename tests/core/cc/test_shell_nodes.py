"""The shell across containers: nodes(), ps(all=True), spawn(..., node=), and kill
and terminate of another container's process, on the embedded broker and a
fake clock (L{tests.core.cc.agent_system})."""

from __future__ import annotations

import os
import socket
from typing import Any

import pytest

from ion.core import exception as exc
from ion.core.cc.interpreter import ShellInterpreter, format_error
from ion.core.cc.membership import LEFT, SUSPECT
from ion.core.cc.shell_api import ShellApi, Table, Text, namespace
from ion.core.cc.shell_nodes import NODE_COLUMNS, PS_COLUMNS
from ion.core.process.process import Process
from ion.core.process.service import ServiceProcess
from tests.core.cc.agent_system import H, K, System

HERE = "tests.core.cc.test_shell_nodes"
ALLOW = [f"{HERE}:*"]


class Echo(Process):
    def op_echo(self, content: Any, headers: dict[str, Any], msg: Any) -> Any:
        return content


class Greeter(ServiceProcess):
    service_name = "greeter"


class BadInit(Process):
    def on_init(self) -> None:
        raise ValueError("no good")


@pytest.fixture
def system() -> Any:
    s = System(presence=False, spawn_allow=ALLOW, info_timeout=1.0)
    yield s
    for c in s.containers.values():
        if c.agent is not None and c.agent.frozen:
            s.wait(c.agent.thaw())
    s.stop_all()


def rows_by(table: Table, column: str = "container") -> dict[str, dict[str, str]]:
    """The rows of C{table} as mappings, keyed by C{column}."""
    i = table.columns.index(column)
    return {row[i]: dict(zip(table.columns, row, strict=True)) for row in table}


def run_until(system: System, done: Any, limit: float) -> None:
    """Run the fake clock until C{done()}, for at most C{limit} seconds."""
    end = system.clock.seconds() + limit
    while not done() and system.clock.seconds() < end:
        system.run(0.01)
    assert done(), f"not within {limit}s of fake time"


def test_nodes_shows_this_container_and_each_peer_from_the_local_view(system: System) -> None:
    c1 = system.start("c1")
    system.start("c2")
    c3 = system.start("c3")
    system.wait(c1.spawn(Echo))
    system.run(2 * H)
    cc = ShellApi(c1)
    table = cc.nodes()
    assert table.columns == NODE_COLUMNS and len(table) == 3
    nodes = rows_by(table)
    assert list(nodes) == ["c1", "c2", "c3"]
    me = nodes["c1"]
    assert me["state"] == "UP (this one)" and me["epoch"] == "0" and me["last heard"] == "-"
    assert me["host"] == socket.gethostname() and me["os pid"] == str(os.getpid())
    assert me["apps"] == "ioncore" and me["H"] == f"{H:g}s" and me["procs"] == "2"
    for cid in ("c2", "c3"):
        peer = nodes[cid]
        assert peer["state"] == "UP" and peer["epoch"] == "0" and peer["why"] == "first heard"
        assert peer["host"] == socket.gethostname() and peer["H"] == f"{H:g}s"
        assert peer["procs"] == "1" and peer["apps"] == "ioncore"
        assert float(peer["last heard"].removesuffix("s ago")) <= H
        assert float(peer["lag ms"]) >= 0
    assert str(table).splitlines()[-1] == "3 containers"

    # c3 stops answering (its queue still held), c2 stops in order.
    system.wait(c3.agent.freeze())  # type: ignore[union-attr]
    run_until(system, lambda: system.view("c1")["c3"][1] == SUSPECT, (K + 1) * H)
    system.stop("c2")
    system.run(0.05)
    nodes = rows_by(cc.nodes())
    assert nodes["c2"]["state"] == LEFT and nodes["c2"]["why"] == "said goodbye"
    assert nodes["c3"]["state"] == SUSPECT
    assert nodes["c3"]["why"] == f"no heartbeat for {K * H:.2f}s"
    assert float(nodes["c3"]["last heard"].removesuffix("s ago")) >= K * H


def test_ps_all_lists_every_containers_processes_and_marks_one_that_does_not_answer(
    system: System,
) -> None:
    c1, c2, c3 = system.start("c1"), system.start("c2"), system.start("c3")
    system.run(H)
    echo = system.wait(c2.spawn(Echo, name="echo"))
    greeter = system.wait(c2.spawn(Greeter))
    cc = ShellApi(c1)
    assert isinstance(cc.ps(), Table), "ps() alone stays local and immediate"
    system.wait(c3.agent.freeze())  # type: ignore[union-attr]
    asked = system.clock.seconds()
    table = system.wait(cc.ps(all=True))
    took = system.clock.seconds() - asked
    assert took <= 1.0 + 0.02, f"took {took:.2f}s, the deadline (agent.info_timeout) is 1s"
    assert table.columns == PS_COLUMNS
    rows = [dict(zip(table.columns, row, strict=True)) for row in table]
    by_pid = {r["id"]: r for r in rows if r["id"]}
    assert by_pid[str(echo.id)] == {"container": "c2", "name": "echo", "id": str(echo.id),
                                    "state": "ACTIVE", "service": "", "class": "Echo"}  # fmt: skip
    assert by_pid[str(greeter.id)]["service"] == "greeter"
    assert sorted(r["name"] for r in rows if r["container"] == "c1") == ["cc_agent", "shell"]
    assert sorted(r["name"] for r in rows if r["container"] == "c2") == [
        "cc_agent", "echo", "greeter"
    ]  # fmt: skip
    (silent,) = [r for r in rows if r["container"] == "c3"]
    assert silent["state"] == "no answer (no reply in time)" and silent["id"] == ""
    assert str(table).splitlines()[-1] == "5 processes in 2 containers; 1 did not answer"
    assert [r[0] for r in table] == ["c1", "c1", "c2", "c2", "c2", "c3"], "this one first"


def test_ps_all_skips_containers_known_dead_or_left(system: System) -> None:
    c1 = system.start("c1")
    system.start("c2")
    system.run(H)
    system.stop("c2")
    system.run(0.05)
    table = system.wait(ShellApi(c1).ps(all=True))
    assert set(table.column("container")) == {"c1"}
    assert str(table).splitlines()[-1] == "2 processes in 1 container"


def test_spawn_with_node_spawns_in_that_container_and_returns_the_pid(system: System) -> None:
    c1, c2 = system.start("c1"), system.start("c2")
    system.run(H)
    cc = ShellApi(c1)
    pid = system.wait(cc.spawn(f"{HERE}:Echo", name="echo", node="c2"))
    assert isinstance(pid, Text) and repr(pid) == str(pid)
    assert pid.startswith("echo.") and pid.endswith("@c2")
    assert type(c2.proc_manager.processes[pid]) is Echo
    assert system.wait(cc.rpc_send(pid, "echo", {"x": 1})) == {"x": 1}
    # A class is sent as 'module:Class'; node= this container spawns here.
    other = system.wait(cc.spawn(Echo, args={"a": 1}, node="c2"))
    assert other.endswith("@c2") and c2.proc_manager.processes[other].args == {"a": 1}
    here = system.wait(cc.spawn(Echo, node="c1"))
    assert isinstance(here, Echo) and here.container is c1


def test_spawn_with_node_errors_are_one_clear_line(system: System) -> None:
    c1, c2 = system.start("c1"), system.start("c2")
    c3 = system.start("c3", spawn_allow=[])
    system.run(H)
    cc = ShellApi(c1)

    def error_of(target: Any, node: str) -> str:
        with pytest.raises(exc.IonError) as caught:
            system.wait(cc.spawn(target, node=node))
        return format_error(caught.value)

    assert error_of(f"{HERE}:Echo", "c3") == (
        f"NotAllowed: c3 does not spawn '{HERE}:Echo' for others: "
        "agent.spawn_allow lists the module globs it may\n"
    )
    assert error_of(f"{HERE}:Nothing", "c2") == (
        f"ModuleNotFound: cannot spawn '{HERE}:Nothing': module '{HERE}' has no 'Nothing'\n"
    )
    assert error_of(f"{HERE}:BadInit", "c2").startswith("SpawnFailed: error: ")
    assert "no good" in error_of(f"{HERE}:BadInit", "c2")
    assert error_of(f"{HERE}:Echo", "nowhere") == (
        "NotFound: no container nowhere in system s (nodes() lists the containers this one knows)\n"
    )

    class Local(Process):
        pass

    assert "not importable by another container" in error_of(Local, "c2")
    assert "give 'module:Class' (a string)" in error_of(42, "c2")
    names = sorted(p.proc_name for p in c2.proc_manager.processes.values())
    assert names == ["cc_agent", "remote"], "nothing left behind"
    assert [p.proc_name for p in c3.proc_manager.processes.values()] == ["cc_agent"]


def test_spawn_in_a_frozen_container_times_out_naming_it(system: System) -> None:
    c1 = system.start("c1")
    c2 = system.start("c2")
    system.run(H)
    system.wait(c2.agent.freeze())  # type: ignore[union-attr]
    cc = ShellApi(c1)
    with pytest.raises(exc.TimeoutError, match="container c2 did not answer in time"):
        system.wait(cc.spawn(f"{HERE}:Echo", node="c2", name="late"))


def test_kill_and_terminate_a_process_of_another_container(system: System) -> None:
    c1, c2 = system.start("c1"), system.start("c2")
    system.run(H)
    cc = ShellApi(c1)
    a, b, c = (system.wait(c2.spawn(Echo, name=n)) for n in ("a", "b", "c"))
    local = system.wait(c1.spawn(Echo, name="local"))
    assert str(system.wait(cc.terminate(str(a.id)))) == f"terminated {a.id}"
    assert str(system.wait(cc.kill(str(b.id)))) == f"killed {b.id} (killed)"
    assert str(system.wait(cc.kill(c.id, "error:Boom"))) == f"killed {c.id} (error:Boom)"
    assert (a.exit_reason, b.exit_reason, c.exit_reason) == ("shutdown", "killed", "error:Boom")
    assert sorted(p.proc_name for p in c2.proc_manager.processes.values()) == ["cc_agent"]
    with pytest.raises(exc.NotFound, match=f"no process {a.id} in container c2"):
        system.wait(cc.kill(str(a.id)))
    with pytest.raises(exc.NotFound, match="no container nowhere"):
        system.wait(cc.terminate("x.1@nowhere"))
    with pytest.raises(exc.NotAllowed, match="stopped with its container"):
        system.wait(cc.kill(str(c2.agent.id)))  # type: ignore[union-attr]
    # A pid of this container is local, as before; its agent stops only with it.
    assert str(system.wait(cc.kill(str(local.id)))) == f"killed {local.id} (killed)"
    for stop in (cc.kill, cc.terminate):
        with pytest.raises(exc.NotAllowed, match="is the container agent: it stops with"):
            system.wait(stop("cc_agent"))
    assert c1.agent is not None and c1.agent.state == "ACTIVE"


def test_the_shell_shows_agent_errors_as_one_line_and_goes_on(system: System) -> None:
    """Lines typed at the prompt: an error is shown and the next line runs."""
    c1 = system.start("c1")
    system.start("c2")
    system.run(H)
    shown: list[str] = []

    class Terminal:
        def out(self, text: str) -> None:
            shown.append(text)

    interpreter = ShellInterpreter(Terminal(), namespace(ShellApi(c1)))  # type: ignore[arg-type]

    def line(text: str) -> str:
        shown.clear()
        interpreter.push(text.encode())
        while interpreter.waits:
            d = interpreter.waits.pop(0)
            d.addCallbacks(interpreter.display, lambda f: shown.append(format_error(f.value)))
            system.wait(d)
        return "".join(shown)

    assert line(f"spawn('{HERE}:Nope', node='c2')").startswith("ModuleNotFound: cannot spawn")
    assert line("kill('x.1@gone')").startswith("NotFound: no container gone in system s")
    pid = line(f"p = await spawn('{HERE}:Echo', node='c2'); p")
    assert pid.startswith("echo.") and pid.endswith("@c2\n")
    assert line("terminate(p)") == f"terminated {pid.strip()}\n"
    nodes = line("nodes()")
    assert nodes.splitlines()[0].split()[:4] == ["container", "epoch", "state", "host"]
    assert "c2" in nodes and nodes.endswith("2 containers\n")
    assert line("ps(all=True)").endswith("4 processes in 2 containers\n")
