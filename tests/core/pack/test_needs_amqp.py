"""needs: across real twistd containers on RabbitMQ: a kv service, and counters that use it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.launch import REPO, TIMEOUT, clean_env, interrupt, launch_in_system, wait_for_file
from tests.rabbit import URL, delete_systems, require_rabbitmq

pytestmark = pytest.mark.rabbitmq

_SCRIPT = Path(sys.executable).parent / "ion-rpc"
ION_RPC = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ion.scripts.ion_rpc"]
KVCOUNT = "tests.core.pack.apps.kvcount"


def app_text(name: str, cls: str, extra: str = "") -> str:
    """The .app file of a one-process app serving service C{name}."""
    return (
        f"type: application\nname: {name}\nversion: '1'\n"
        f"mod: [ion.core.pack.processapp, [{name}, {KVCOUNT}, {cls}]]\n"
        f"registered: [{name}]\napplications: [ioncore]\n{extra}"
    )


KV_APP = app_text("kv", "KvService")
COUNTER_APP = app_text("counter", "CounterService", "needs: [kv]\n")


class Containers:
    """twistd containers of unique systems on RabbitMQ; all stopped and cleaned after."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []
        self.sysnames: set[str] = set()
        (tmp / "kv.app").write_text(KV_APP)
        (tmp / "counter.app").write_text(COUNTER_APP)

    def sysname(self) -> str:
        name = f"t-{uuid.uuid4().hex[:8]}"
        self.sysnames.add(name)
        return name

    def start(self, tag: str, sysname: str, *args: str, ready: bool = True) -> Any:
        """A headless container of C{sysname} running C{args}; once ready, if C{ready}."""
        marker = self.tmp / f"{tag}.ready"
        proc = launch_in_system(tag, URL, sysname, marker, *args)
        self.procs.append(proc)
        if ready:
            wait_for_file(marker, proc)
        return proc

    def incr(self, sysname: str, name: str) -> dict[str, Any]:
        done = subprocess.run(
            [*ION_RPC, "--broker", URL, "-s", sysname, "counter", "incr", json.dumps(name)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            cwd=REPO,
            env=clean_env(),
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    async def cleanup(self) -> dict[subprocess.Popen[str], str]:
        """Stop every container (once); their outputs. Delete what the systems declared."""
        outputs = {}
        procs, self.procs = self.procs, []
        for proc in procs:
            outputs[proc] = interrupt(proc) if proc.poll() is None else proc.communicate()[0]
        sysnames, self.sysnames = self.sysnames, set()
        queues = {f"{s}.{svc}" for s in sysnames for svc in ("kv", "counter")}
        await delete_systems(sysnames, queues)
        return outputs


@pytest_twisted.async_yield_fixture
async def containers(tmp_path: Path) -> AsyncIterator[Containers]:
    require_rabbitmq()
    made = Containers(tmp_path)
    yield made
    await made.cleanup()


async def test_counters_in_two_containers_share_one_kv(containers: Containers) -> None:
    """kv in one container, a counter in two others (needs: [kv]): incr counts 1, 2, 3
    whichever counter answers, since no counter container started a kv of its own;
    the second counter logs that it adds an instance."""
    sysname = containers.sysname()
    kv_app, counter_app = str(containers.tmp / "kv.app"), str(containers.tmp / "counter.app")
    kv = containers.start("kv", sysname, kv_app)
    first = containers.start("count1", sysname, counter_app)
    second = containers.start("count2", sysname, counter_app)

    replies = [containers.incr(sysname, "hits") for _ in range(3)]

    assert [r["count"] for r in replies] == [1, 2, 3]
    assert {r["container"] for r in replies} == {
        f"t-count1-{sysname}-{os.getpid()}",
        f"t-count2-{sysname}-{os.getpid()}",
    }
    outputs = await containers.cleanup()
    assert "started app kv" in outputs[kv]
    for proc in (first, second):
        assert "started app counter" in outputs[proc] and "started app kv" not in outputs[proc]
    assert "adds an instance of service counter: 2 instances" in outputs[second]
    assert "adds an instance" not in outputs[first]


async def test_without_the_needed_service_the_app_fails_naming_it(
    containers: Containers,
) -> None:
    """A counter container in a system where nobody serves kv waits pack.needs_timeout
    seconds, then fails at start with the error naming kv and the system: exit 1."""
    sysname = containers.sysname()
    proc = containers.start(
        "alone",
        sysname,
        "-a",
        "pack.needs_timeout=0.5",
        str(containers.tmp / "counter.app"),
        ready=False,
    )
    output, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 1, output
    assert (
        f"app 'counter' needs service 'kv', which no container of system {sysname!r} serves"
    ) in output
    assert "started app counter" not in output
