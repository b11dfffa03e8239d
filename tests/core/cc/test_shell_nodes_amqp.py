"""The shell across two real twistd containers on RabbitMQ, through ion-shell on
one's --manhole: nodes(), ps(all=True), spawn(..., node=), and kill of the
other container's process."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.cc.test_manhole import ION_SHELL
from tests.launch import REPO, TIMEOUT, clean_env, interrupt, launch_in_system, wait_for_file
from tests.launch import wait_until as wait_until_true
from tests.rabbit import URL, require_rabbitmq
from tests.scripts.test_ion_rpc import delete_system, ion_rpc

pytestmark = pytest.mark.rabbitmq


@pytest.fixture
def two() -> Iterator[tuple[str, str, str, Path]]:
    """Containers here (with a manhole) and there (spawning ion.services.hello.* for
    others) of a unique system: (sysname, here's id, there's id, the socket)."""
    require_rabbitmq()
    sysname = f"t-nodes-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="ion-", dir="/tmp") as tmp:
        sock = Path(tmp) / "cc.sock"
        there = launch_in_system("there", URL, sysname, Path(tmp) / "there.ready",
                                 "-a", "agent.spawn_allow=[ion.services.hello.*]",
                                 "res/deploy/hello.rel")  # fmt: skip
        here = launch_in_system("here", URL, sysname, Path(tmp) / "here.ready",
                                "--manhole", str(sock))  # fmt: skip
        try:
            wait_for_file(Path(tmp) / "there.ready", there)
            wait_for_file(Path(tmp) / "here.ready", here)
            ids = (f"t-here-{sysname}-{os.getpid()}", f"t-there-{sysname}-{os.getpid()}")
            yield sysname, *ids, sock
        finally:
            for proc in (here, there):
                if proc.poll() is None:
                    interrupt(proc)
            delete_system(sysname)


def knows(sysname: str, cid: str, peer: str) -> bool:
    """Whether container C{cid}'s agent has heard of C{peer} (its get_info's peers)."""
    done = ion_rpc("--broker", URL, "-s", sysname, "--container", cid, "get_info")
    assert done.returncode == 0, done.stderr
    return any(p["cid"] == peer for p in json.loads(done.stdout)["peers"])


def test_the_shell_reaches_the_other_container(two: tuple[str, str, str, Path]) -> None:
    sysname, here, there, sock = two
    wait_until_true(lambda: knows(sysname, here, there), f"{here} hearing of {there}")
    lines = [
        "nodes()",
        "ps(all=True)",
        f"p = await spawn('ion.services.hello.service:HelloService', name='far', node='{there}')",
        "print('spawned', p)",
        "rpc_send(p, 'hello', 'pipe')",
        "kill(p)",
        f"spawn('ion.core.process.supervisor:Supervisor', node='{there}')",
        "ps(all=True)",
    ]
    done = subprocess.run(
        [*ION_SHELL, str(sock)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=REPO,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    rows = [line.split() for line in out.splitlines()]
    assert [here, "0", "UP", "(this", "one)"] in [r[:5] for r in rows]
    assert [there, "0", "UP"] in [r[:3] for r in rows]
    assert [there, "hello", f"hello.1@{there}", "ACTIVE", "hello", "HelloService"] in rows
    assert [here, "cc_agent", f"cc_agent.0@{here}", "ACTIVE", "ContainerAgent"] in rows
    far = f"far.3@{there}"  # after its agent, hello and the supervisor remote
    assert f"spawned {far}" in out and "{'value': 'Hello there, pipe'}" in out
    assert f"killed {far} (killed)" in out
    assert f"NotAllowed: {there} does not spawn 'ion.core.process.supervisor:Supervisor'" in out
    tables = [line for line in out.splitlines() if " processes in 2 containers" in line]
    assert len(tables) == 2 and far not in out.split(f"killed {far}")[1]
