"""The suite's own RabbitMQ node (tests/rabbit_node.py) when things go wrong: a node
that cannot boot says why, and a node whose pytest died is stopped by the watchdog.
(tests/core/messaging/test_event_node.py uses a node that works.)"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

import tests.rabbit_node as rabbit_node
from tests.rabbit_node import NodeStartError, RabbitNode, _unavailable, node_pids


class _BadConfig(RabbitNode):
    def _write_files(self) -> None:
        super()._write_files()
        (self.home / "rabbitmq.conf").write_text("listeners.tcp.1 = not-an-address\n")


@pytest.mark.rabbitmq
def test_a_node_that_cannot_boot_says_why_and_leaves_nothing_behind() -> None:
    if not rabbit_node.SERVER.exists():
        _unavailable(f"{rabbit_node.SERVER} is not installed")
    node = _BadConfig()
    with pytest.raises(NodeStartError) as failed:
        node.start(timeout=60)
    why = str(failed.value)
    assert "exited" in why
    assert "not-an-address" in why and "BOOT FAILED" in why  # from the node's log
    assert not node_pids(node.name)
    assert not node.home.exists()


def test_without_a_node_tests_skip_but_fail_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not available: no rabbit"):
        _unavailable("no rabbit")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set: no rabbit"):
        _unavailable("no rabbit")


def test_the_watchdog_stops_the_node_when_its_pipe_from_pytest_closes() -> None:
    """A stand-in node (a process with the node's name in its environment, no pid
    file so no rabbitmqctl) gets SIGTERM, and the node's directory goes."""
    name = f"iontest_fake{uuid.uuid4().hex[:8]}@localhost"
    home = Path(tempfile.mkdtemp(prefix="ion-rabbit-"))
    fake = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        env=dict(os.environ, RABBITMQ_NODENAME=name),
    )
    try:
        watchdog = subprocess.Popen(
            [sys.executable, "-I", rabbit_node.__file__, "--watch", name, str(home)],
            stdin=subprocess.PIPE,
        )
        assert node_pids(name) == [fake.pid]
        assert watchdog.stdin is not None
        watchdog.stdin.close()  # as when pytest dies
        assert watchdog.wait(timeout=30) == 0
        assert fake.wait(timeout=5) == -15  # SIGTERM
        assert not home.exists()
    finally:
        fake.kill()
        fake.wait()
