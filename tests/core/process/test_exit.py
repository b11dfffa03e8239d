"""Exit reasons: what ends a process and with which reason, and kill."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer

from ion.core import exception as exc
from ion.core.process.exit import error, is_abnormal, of_exception, shutdown
from ion.core.process.process import Process
from tests.core.process.workers import Crashy, HeldService, Worker, ended, entries
from tests.helpers import Collector, wait_for


@pytest.mark.parametrize(
    "reason,abnormal",
    [
        ("normal", False),
        ("shutdown", False),
        ("shutdown:upgrade", False),
        ("shutdowns", True),
        ("killed", True),
        ("error:RuntimeError", True),
        ("noproc", True),
        ("noconnection", True),
        ("timeout", True),
    ],
)
def test_abnormal_reasons_follow_otp(reason: str, abnormal: bool) -> None:
    """Every reason but normal, shutdown and shutdown:* is abnormal."""
    assert is_abnormal(reason) is abnormal


def test_reasons_made_from_exceptions() -> None:
    """An exception makes error:<its type>; a ProcessExit its own reason."""
    assert error(ValueError("x")) == of_exception(ValueError("x")) == "error:ValueError"
    assert of_exception(exc.ProcessExit("boom")) == "boom"
    assert shutdown("x") == "shutdown:x"
    assert issubclass(exc.ProcessExit, exc.IonError) and issubclass(exc.FatalError, exc.IonError)


async def spawn(container: Any, cls: type = Worker, name: str = "w", **args: Any) -> Any:
    journal = args.setdefault("journal", Collector())
    proc = await container.spawn(cls, name=name, args=args)
    return proc, journal


@pytest_twisted.ensureDeferred
async def test_terminate_ends_with_shutdown_by_default(container: Any) -> None:
    """A process stopped from outside exits with shutdown, or the reason given."""
    a, journal = await spawn(container, name="a")
    b, _ = await spawn(container, name="b", journal=journal)
    await container.terminate(a)
    await container.proc_manager.terminate(b, "shutdown:upgrade")
    assert (a.exit_reason, b.exit_reason) == ("shutdown", "shutdown:upgrade")
    assert await ended(journal, "a") == "shutdown" and a.state == "TERMINATED"


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize(
    "op,content,reason",
    [
        ("exit", "normal", "normal"),
        ("exit", "boom", "boom"),
        ("raise", "fatal", "error:FatalError"),
    ],
)
async def test_exit_from_a_handler_answers_then_ends(
    container: Any, op: str, content: str, reason: str
) -> None:
    """self.exit(reason), or a FatalError, answers the request with an error, then
    the process exits with that reason (its terminate hook runs) and is forgotten."""
    proc, journal = await spawn(container)
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedError):
        await wait_for(client.rpc_send(proc.id, op, content))
    assert await ended(journal, "w") == reason == proc.exit_reason
    assert entries(journal, "terminate") and str(proc.id) not in container.proc_manager.processes


@pytest_twisted.ensureDeferred
async def test_a_handler_error_keeps_the_process_by_default(container: Any) -> None:
    """Without crash_on_error a handler's error is only its reply."""
    proc, journal = await spawn(container)
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedError):
        await wait_for(client.rpc_send(proc.id, "raise", "runtime"))
    assert proc.state == "ACTIVE" and proc.exit_reason is None


@pytest_twisted.ensureDeferred
async def test_crash_on_error_exits_after_replying(container: Any) -> None:
    """With crash_on_error a handler's error is answered, then the process exits
    with error:<Type>; an ApplicationError (the caller's mistake) does not count."""
    proc, journal = await spawn(container, Crashy)
    client = await container.spawn(Process, name="client")
    with pytest.raises(exc.ReceivedApplicationError):
        await wait_for(client.rpc_send(proc.id, "raise", "bad"))
    assert proc.state == "ACTIVE"
    with pytest.raises(exc.ReceivedError, match="raised by request"):
        await wait_for(client.rpc_send(proc.id, "raise", "runtime"))
    assert await ended(journal, "w") == "error:RuntimeError"


@pytest_twisted.ensureDeferred
async def test_a_failing_start_hook_is_a_spawn_error_with_a_reason(container: Any) -> None:
    """on_init raising fails the spawn with error:<Type>; ProcessExit gives its reason."""
    with pytest.raises(exc.SpawnError) as raised:
        await spawn(container, fail_init=True)
    assert raised.value.reason == "error:RuntimeError"

    class Quits(Worker):
        def on_activate(self) -> None:
            self.exit("shutdown:not_needed")

    with pytest.raises(exc.SpawnError) as raised:
        await spawn(container, Quits, name="q")
    assert raised.value.reason == "shutdown:not_needed"


@pytest_twisted.ensureDeferred
async def test_kill_skips_the_terminate_hook(container: Any) -> None:
    """A killed process exits with killed and its on_terminate never runs."""
    proc, journal = await spawn(container)
    await container.proc_manager.kill(proc)
    assert await ended(journal, "w") == "killed" and proc.terminated
    assert entries(journal, "terminate") == []
    assert str(proc.id) not in container.proc_manager.processes
    await proc.kill()  # a terminated process: nothing happens


@pytest_twisted.ensureDeferred
async def test_kill_cuts_a_hung_terminate_hook_short(container: Any) -> None:
    """A kill while on_terminate hangs ends it at once, with reason killed; the
    terminate under way returns too."""
    proc, journal = await spawn(container, gate=defer.Deferred())
    terminating = defer.ensureDeferred(proc.terminate())
    await journal.wait_until(lambda e: e[0] == "terminate")
    assert proc.state == "TERMINATING" and not terminating.called
    await wait_for(proc.kill())
    await wait_for(terminating)
    assert proc.exit_reason == "killed" and entries(journal, "terminated") == []


@pytest_twisted.ensureDeferred
async def test_kill_gives_a_request_in_flight_back_to_its_queue(make_container: Any) -> None:
    """A service instance killed mid-request does not answer it: the request
    goes back to the service queue, another instance takes it, and the caller
    gets exactly one reply."""
    container = await make_container()
    journal: Collector[Any] = Collector()
    first = await container.spawn(HeldService, name="first", args={"journal": journal})
    client = await (await make_container()).spawn(Process, name="client")
    call = client.rpc_send("held", "work", 7)
    await journal.wait_until(lambda e: e[:2] == ("work", "first"))
    await container.proc_manager.kill(first)
    second = await container.spawn(HeldService, name="second", args={"journal": journal})
    assert await wait_for(call) == {"done": 7, "by": str(second.id)}
    assert [e[1:] for e in entries(journal, "work")] == [("first", 7, False), ("second", 7, True)]


@pytest_twisted.ensureDeferred
async def test_kill_answers_a_request_to_its_own_id(container: Any) -> None:
    """A request sent to the killed process's own id has no other taker: it is
    answered with an error at once, not left to time out."""
    proc, journal = await spawn(container)
    client = await container.spawn(Process, name="client")
    call = client.rpc_send(proc.id, "hold", 1)
    await journal.wait_until(lambda e: e[0] == "holding")
    await container.proc_manager.kill(proc)
    with pytest.raises(exc.ReceivedError, match="was killed"):
        await wait_for(call)
