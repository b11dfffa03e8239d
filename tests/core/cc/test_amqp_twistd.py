"""Several C{twistd -n cc} OS processes forming one system on RabbitMQ."""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ion.core import exception as exc
from ion.core.process.process import Process
from tests.core.cc.apps.whoami import Stuck
from tests.core.cc.test_amqp_containers import System
from tests.helpers import wait_for
from tests.launch import await_file, interrupt, launch, wait_for_file
from tests.rabbit import URL, delete_systems, require_rabbitmq

pytestmark = pytest.mark.rabbitmq


class OsSystem(System):
    """A System whose containers may also be real twistd OS processes."""

    def __init__(self, tmp: Path) -> None:
        super().__init__()
        self.tmp = tmp
        self.procs: list[Any] = []

    def twistd(self, tag: str, script: str) -> Any:
        """Launch a headless container in this system running boot script C{script};
        return it once its ready file is there."""
        boot = self.tmp / f"{tag}.py"
        boot.write_text(script)
        ready = self.tmp / f"{tag}.ready"
        proc = launch(
            f"{tag}-{self.sysname}",
            "-n",
            "--broker",
            URL,
            "-s",
            self.sysname,
            "--ready-file",
            str(ready),
            str(boot),
        )
        self.procs.append(proc)
        wait_for_file(ready, proc)
        return proc

    async def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                interrupt(proc)
        await super().cleanup()
        # The OS containers declared these; the in-process ones do not know them.
        await delete_systems(set(), {f"{self.sysname}.{svc}" for svc in ("whoami", "stuck")})


def _reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@pytest_twisted.async_yield_fixture
async def system(tmp_path: Path) -> AsyncIterator[OsSystem]:
    require_rabbitmq()
    s = OsSystem(tmp_path)
    yield s
    await s.cleanup()


SPAWN_WHOAMI = "from tests.core.cc.apps.whoami import WhoAmI\nawait cc.spawn(WhoAmI)\n"


@pytest_twisted.ensureDeferred
async def test_client_in_one_os_container_calls_service_in_another(system: OsSystem) -> None:
    """HelloService in one twistd container answers a client in another."""
    system.twistd("svc", "await cc.start_rel('res/deploy/hello.rel')\n")
    out = system.tmp / "reply.txt"
    system.twistd(
        "client",
        "from ion.services.hello import HelloServiceClient\n"
        f"reply = await HelloServiceClient(container=cc).hello('from afar')\n"
        f"open({str(out)!r}, 'w').write(reply)\n",
    )
    assert out.read_text() == "Hello there, from afar"


@pytest_twisted.ensureDeferred
async def test_round_robin_across_os_containers_and_sysname_isolation(system: OsSystem) -> None:
    """Calls to a service in two OS containers are shared between them; a container
    in another sysname on the same broker cannot reach it."""
    system.twistd("a", SPAWN_WHOAMI)
    system.twistd("b", SPAWN_WHOAMI)
    client = await (await system.container()).spawn(Process, name="client")
    answers = [await wait_for(client.rpc_send("whoami", "who")) for _ in range(10)]
    assert {a.split("-")[0] for a in answers} == {"t"} and len(set(answers)) == 2
    stranger = await (await system.container(sysname=system.sysname + "-x")).spawn(Process)
    with pytest.raises(exc.NoSuchServiceError):
        await wait_for(stranger.rpc_send("whoami", "who", timeout=30), timeout=5)


@pytest_twisted.ensureDeferred
async def test_sigkill_mid_request_redelivers_to_survivor(system: OsSystem) -> None:
    """A service container killed with SIGKILL mid-request leaves the request to the
    surviving instance, which answers it."""
    marker = system.tmp / "taken"
    doomed = system.twistd(
        "doomed",
        "from tests.core.cc.apps.whoami import Stuck\n"
        f"await cc.spawn(Stuck, args={{'marker': {str(marker)!r}}})\n",
    )
    here = await system.container()
    client = await here.spawn(Process, name="client")
    call = client.rpc_send("stuck", "work", "job-1", timeout=30)
    await await_file(marker, doomed)  # the doomed instance holds it, unacked

    class Survivor(Stuck):
        async def op_work(self, content: Any, headers: dict, msg: Any) -> Any:
            return {"done": content, "redelivered": msg.delivery.redelivered}

    await here.spawn(Survivor)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(timeout=10)
    assert await wait_for(call, timeout=20) == {"done": "job-1", "redelivered": True}
