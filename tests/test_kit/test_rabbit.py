"""The kit on RabbitMQ: marker and option, per-test sysnames, and no crosstalk between
systems, in one process and between two pytest runs at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted

from ion.core.process.process import Process
from ion.services.hello.service import HelloServiceClient
from ion.test import IonKit, RecordingService
from ion.test.plugin import require_rabbitmq

pytestmark = pytest.mark.rabbitmq

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("isolation_probe.py")


@pytest.mark.ion_broker("amqp")
@pytest.mark.ion_container(rel="res/deploy/hello.rel")
@pytest_twisted.ensureDeferred
async def test_marker_runs_the_container_on_rabbitmq(ion_container, ion_broker):
    """@pytest.mark.ion_broker('amqp') puts the container on RabbitMQ, in a fresh sysname."""
    from ion.core.messaging.amqp import AmqpBroker

    assert ion_broker.is_amqp and ion_broker.url.startswith("amqp://")
    assert isinstance(ion_container.exchange.broker._conn, AmqpBroker)
    assert ion_container.sysname.startswith("test-")
    assert "rabbit" in await HelloServiceClient(container=ion_container).hello("rabbit")


@pytest_twisted.ensureDeferred
async def test_two_systems_on_one_rabbitmq_do_not_meet():
    """Same service name in two systems at once: each system's calls reach only its own."""
    require_rabbitmq()
    kits, probes, callers = [], [], []
    try:
        for _ in range(2):  # nested: the second kit stops first (see IonKit.stop)
            kits.append(IonKit(broker="amqp", root=ROOT))
            container = await kits[-1].start_container()
            probes.append(await container.spawn(RecordingService, args={"servicename": "probe"}))
            callers.append(await container.spawn(Process, name="caller"))
        for i in range(10):
            await callers[0].rpc_send("probe", "work", i)
        await callers[1].rpc_send("probe", "work", "b")
    finally:
        for kit in reversed(kits):
            await kit.stop()

    assert kits[0].sysname != kits[1].sysname
    assert [m.content for m in probes[0].received()] == list(range(10))
    assert [m.content for m in probes[1].received()] == ["b"]


def test_two_runs_at_once_do_not_see_each_other(tmp_path):
    """Two pytest runs at once on one RabbitMQ, each with the same service names, see
    only their own calls and events."""
    require_rabbitmq()
    runs = []
    for tag, other in (("a", "b"), ("b", "a")):
        env = dict(os.environ, ION_PROBE_DIR=str(tmp_path), ION_PROBE_TAG=tag)
        env["ION_PROBE_OTHER"] = other
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        cmd += ["--ion-broker=amqp", str(PROBE)]
        runs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [run.communicate(timeout=120)[0] for run in runs]

    for run, output in zip(runs, outputs, strict=True):
        assert run.returncode == 0, output
        assert "1 passed" in output, output
