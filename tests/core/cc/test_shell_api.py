"""The shell's helpers, in process: the cc object, the top-level names and their tables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.cc.shell_api import HELPERS, TOP_LEVEL, ShellApi, Table, namespace
from ion.core.exception import NoSuchServiceError, ProcessError, ReceivedApplicationError
from ion.core.process.process import Process
from ion.services.hello import HelloService
from tests.helpers import Collector, user_procs, wait_for
from tests.launch import REPO


class Notes(Process):
    """Records the content of every C{note} it is sent."""

    name = "notes"

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.seen: Collector[Any] = Collector()

    def op_note(self, content: Any, headers: dict, msg: Any) -> None:
        self.seen(content)


def columns_of(text: str) -> list[int]:
    """Where each column of an aligned table starts, from its dashed rule."""
    rule = text.splitlines()[1]
    return [i for i, ch in enumerate(rule) if ch == "-" and (i == 0 or rule[i - 1] == " ")]


@pytest_twisted.ensureDeferred
async def test_ps_prints_an_aligned_table_of_processes(container: Container) -> None:
    """ps() lists each process with its number, name, id, state, service and class, aligned."""
    cc = ShellApi(container)
    hello = await container.spawn(HelloService)
    await container.spawn(Process, name="a-much-longer-process-name")
    table = cc.ps()
    assert isinstance(table, Table) and len(table) == 3  # and the agent
    assert table.rows[1] == ["1", "hello", str(hello.id), "ACTIVE", "hello", "HelloService"]
    text = str(table)
    starts = columns_of(text)
    for line in text.splitlines()[2:5]:
        assert all(line[s - 1] == " " for s in starts[1:])  # every value starts in its column
        assert line[starts[2] :].startswith(
            ("cc_agent.0@", "hello.1@", "a-much-longer-process-name.2@")
        )
    assert text.splitlines()[-1] == "3 processes" and repr(table) == text


@pytest_twisted.ensureDeferred
async def test_spawn_takes_class_dotted_name_module_or_service_name(container: Container) -> None:
    """cc.spawn accepts a class, 'module.Class', a module defining one, and a declared service name."""
    cc = ShellApi(container)
    spawned = [
        await cc.spawn(HelloService, name="h1"),
        await cc.spawn("ion.services.hello.HelloService", name="h2"),
        await cc.spawn("ion.services.hello.service", name="h3"),
        await cc.spawn("ion.services.hello", name="h4"),
        await cc.spawn("hello", name="h5", args={"servicename": "hello-b"}),
    ]
    assert [type(p) for p in spawned] == [HelloService] * 5
    assert [p.proc_name for p in spawned] == ["h1", "h2", "h3", "h4", "h5"]
    assert spawned[-1].svc_name == "hello-b" and spawned[-1].state == "ACTIVE"


@pytest_twisted.ensureDeferred
async def test_spawn_of_missing_module_or_unknown_service_says_why(container: Container) -> None:
    """Spawning a module that does not exist, or a name no class declares, is a clear ProcessError."""
    cc = ShellApi(container)
    with pytest.raises(ProcessError, match=r"cannot spawn 'no\.such\.module': no module"):
        await cc.spawn("no.such.module")
    with pytest.raises(ProcessError, match=r"not a module.*declared: .*hello"):
        await cc.spawn("nosuchservice")
    assert len(user_procs(container)) == 0


@pytest_twisted.ensureDeferred
async def test_spawn_in_another_container_of_this_process(
    make_container: Callable[..., Awaitable[Container]],
) -> None:
    """cc.spawn(..., container=other) spawns there, and a container id that is not local is refused."""
    here, there = await make_container(), await make_container()
    cc = ShellApi(here)
    proc = await cc.spawn(HelloService, container=there)
    assert proc.container is there and str(proc.id).endswith("@" + there.id)
    with pytest.raises(ProcessError, match="only this container"):
        await cc.spawn(HelloService, container="elsewhere")


@pytest_twisted.ensureDeferred
async def test_rpc_send_addresses_by_service_id_name_and_number(container: Container) -> None:
    """rpc_send reaches a process by service name, full id, process name and local number."""
    cc = ShellApi(container)
    greeter = await container.spawn(HelloService, name="greeter")
    assert greeter.id is not None
    expected = {"value": "Hello there, you"}
    for to in ("hello", str(greeter.id), "greeter", greeter.id.local, str(greeter.id.local)):
        assert await wait_for(cc.rpc_send(to, "hello", "you")) == expected
    assert cc.address("greeter") == str(greeter.id) and cc.address("hello") == "hello"


@pytest_twisted.ensureDeferred
async def test_rpc_send_errors_are_raised_clearly(container: Container) -> None:
    """A call to a missing service or an unknown op fails with the ion error that says so."""
    cc = ShellApi(container)
    await container.spawn(HelloService)
    with pytest.raises(NoSuchServiceError, match="nosuch"):
        await wait_for(cc.rpc_send("nosuch", "x"))
    with pytest.raises(ReceivedApplicationError, match="no operation 'nope'"):
        await wait_for(cc.rpc_send("hello", "nope"))
    with pytest.raises(ProcessError, match="no process 42"):
        await wait_for(cc.rpc_send(42, "ping"))


@pytest_twisted.ensureDeferred
async def test_send_delivers_a_one_off_message(container: Container) -> None:
    """send(to, op, content) delivers one message from the implicit shell process."""
    cc = ShellApi(container)
    notes = await container.spawn(Notes)
    result = await cc.send("notes", "note", {"n": 1})
    assert await notes.seen.wait(1) == [{"n": 1}]
    assert str(result) == f"sent note to {notes.id}"
    assert [p.proc_name for p in user_procs(container).values()] == ["notes", "shell"]


@pytest_twisted.ensureDeferred
async def test_ping_reports_who_answered(container: Container) -> None:
    """ping(service) says which process answered the service's ping."""
    cc = ShellApi(container)
    hello = await container.spawn(HelloService)
    text = await wait_for(cc.ping("hello"))
    assert text.startswith(f"ping hello: ok from {hello.id} in ") and repr(text) == str(text)


@pytest_twisted.ensureDeferred
async def test_kill_removes_the_process_from_ps(container: Container) -> None:
    """kill(number) kills the process (exit reason killed, or the one given) and
    ps() no longer lists it; terminate(name) ends one with shutdown; an unknown
    pid is an error."""
    cc = ShellApi(container)
    keep = await container.spawn(HelloService, name="keep")
    doomed = await container.spawn(HelloService, name="doomed")
    other = await container.spawn(HelloService, name="other")
    ended = await container.spawn(HelloService, name="ended")
    assert doomed.id is not None
    assert str(await cc.kill(doomed.id.local)) == f"killed {doomed.id} (killed)"
    assert str(await cc.kill("other", "error:Boom")) == f"killed {other.id} (error:Boom)"
    assert str(await cc.terminate("ended")) == f"terminated {ended.id}"
    assert cc.ps().column("name") == ["cc_agent", "keep"] and doomed.state == "TERMINATED"
    assert (doomed.exit_reason, other.exit_reason, ended.exit_reason) == (
        "killed", "error:Boom", "shutdown",
    )  # fmt: skip
    with pytest.raises(ProcessError, match="no process 'doomed'"):
        await cc.kill("doomed")
    assert cc.get_proc("keep") is keep


@pytest_twisted.ensureDeferred
async def test_makeprocess_and_get_proc(container: Container) -> None:
    """makeprocess() spawns a bare process that get_proc finds by name, id and number."""
    cc = ShellApi(container)
    proc = await cc.makeprocess("mine")
    assert proc.id is not None
    assert cc.get_proc("mine") is cc.get_proc(str(proc.id)) is cc.get_proc(proc.id.local) is proc
    assert await wait_for(proc.rpc_send(str(proc.id), "ping")) == {
        "pong": str(proc.id),
        "state": "ACTIVE",
    }


@pytest_twisted.ensureDeferred
async def test_apps_start_and_stop(container: Container) -> None:
    """cc.start_app, cc.start_rel and cc.stop_app change what cc.apps() lists."""
    cc = ShellApi(container)
    assert cc.apps().column("name") == ["ioncore"]
    assert str(await cc.start_app(str(REPO / "res/apps/hello.app"))) == "started app hello 0.1"
    assert cc.apps().column("name") == ["ioncore", "hello"]
    await cc.stop_app("hello")
    assert cc.apps().column("name") == ["ioncore"] and cc.ps().column("name") == ["cc_agent"]
    text = await cc.start_rel(str(REPO / "res/deploy/hello.rel"))
    assert text.endswith(": hello") and cc.apps().column("state") == ["running", "running"]
    assert cc.ps().column("name") == ["cc_agent", "hello"]


@pytest_twisted.ensureDeferred
async def test_svc_lists_declared_services_and_instances_here(container: Container) -> None:
    """svc() lists each declared service with its version, class and how many run here."""
    cc = ShellApi(container)
    await container.spawn(HelloService)
    await container.spawn(HelloService, name="hello-too")
    rows = {row[0]: row for row in cc.svc() if row[2].startswith("ion.")}
    assert rows["hello"] == ["hello", "0.1.0", "ion.services.hello.service.HelloService", "2"]


@pytest_twisted.ensureDeferred
async def test_ms_lists_exchanges_and_queues(container: Container) -> None:
    """ms() lists the system's exchanges, the service queues and each process's mailbox."""
    cc = ShellApi(container)
    hello = await container.spawn(HelloService)
    table = cc.ms()
    assert table.column("name")[:3] == ["ion.testsys", "ion.testsys.events", "testsys.hello"]
    assert f"testsys.{hello.id}" in table.column("name")
    kinds = dict(zip(table.column("name"), table.column("kind"), strict=True))
    assert kinds["testsys.hello"] == "shared queue"
    assert kinds["ion.testsys"] == "exchange (direct)"
    assert kinds["ion.testsys.events"] == "exchange (topic)"


@pytest_twisted.ensureDeferred
async def test_info_lists_every_helper_one_line_each(container: Container) -> None:
    """info() names the container and has one line for each helper the namespace offers."""
    cc = ShellApi(container)
    text = str(cc.info())
    assert text.startswith(f"container {container.id}   sysname testsys   broker local")
    for name in TOP_LEVEL:
        assert sum(line.startswith(f"  {name}(") for line in text.splitlines()) == 1, name
    for name in ("apps", "start_app", "start_rel", "stop_app", "config"):
        assert f"  cc.{name}" in text
    assert len([n for n, _ in HELPERS]) == len({n for n, _ in HELPERS})
    assert str(cc.info()) == text


@pytest_twisted.ensureDeferred
async def test_namespace_holds_cc_container_and_the_original_names(container: Container) -> None:
    """The shell's namespace has cc, container, and every top-level helper of the original."""
    cc = ShellApi(container)
    ns = namespace(cc)
    assert ns["cc"] is cc and ns["container"] is container
    assert set(TOP_LEVEL) <= set(ns)
    assert set(TOP_LEVEL) == {
        "info", "web", "ps", "nodes", "ms", "svc", "spawn", "send", "rpc_send", "ping", "kill",
        "terminate", "tree", "makeprocess", "get_proc",
        "msc", "trace",
    }  # fmt: skip
    assert cc.config is container.config and cc.config.get("broker.url") == "local"


@pytest_twisted.ensureDeferred
async def test_helpers_called_together_share_one_shell_process(container: Container) -> None:
    """Over RabbitMQ spawning takes round trips: helpers that start meanwhile
    wait for the one shell process instead of each spawning their own."""
    from twisted.internet import defer

    gate: defer.Deferred[None] = defer.Deferred()
    spawn = container.proc_manager.spawn

    async def slow_spawn(*args: Any, **kwargs: Any) -> Process:
        await gate
        return await spawn(*args, **kwargs)

    container.proc_manager.spawn = slow_spawn
    cc = ShellApi(container)
    asking = [defer.ensureDeferred(cc.shell_process()) for _ in range(3)]
    gate.callback(None)
    procs = await wait_for(defer.gatherResults(asking))
    assert procs[0] is procs[1] is procs[2]
    assert [p.proc_name for p in user_procs(container).values()] == ["shell"]
