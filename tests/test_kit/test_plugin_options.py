"""The plugin's options seen from outside: pytest runs in a subprocess on small test files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLE = """
import pytest
import pytest_twisted
from twisted.internet import reactor


@pytest_twisted.ensureDeferred
async def test_container(ion_container):
    assert ion_container.running


def test_plain():
    pass


@pytest.mark.ion_broker("amqp")
def test_unreachable(ion_broker):
    pass


@pytest_twisted.ensureDeferred
async def test_leaky(ion_kit):
    ion_kit.forgotten = reactor.callLater(30, print)


def _late():
    pass


@pytest_twisted.ensureDeferred
async def test_late_timer(ion_container):
    reactor.callLater(1.5, _late)  # after the stop (ms), inside the 2 s leftover wait
"""

CLOSED_PORT = "--ion-amqp-url=amqp://guest:guest@127.0.0.1:1/"


def _pytest(where: Path, *args: str, ci: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "ION_TEST_BROKER")}
    if ci:
        env["CI"] = "1"
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=where, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    return tmp_path


def test_broker_list_runs_each_test_once_per_broker(sample):
    """--ion-broker=local,amqp parametrizes tests that use ion fixtures, and only those."""
    run = _pytest(sample, "--collect-only", "-q", "--ion-broker=local,amqp")

    ids = [line for line in run.stdout.splitlines() if "::" in line]
    assert "test_sample.py::test_container[local]" in ids
    assert "test_sample.py::test_container[amqp]" in ids
    assert "test_sample.py::test_plain" in ids
    assert "test_sample.py::test_unreachable" in ids  # its marker decides


def test_unreachable_rabbitmq_skips_and_leftovers_error(sample):
    """Off CI an unreachable RabbitMQ skips the test; a leftover timer errors its teardown,
    also one that fires during teardown."""
    run = _pytest(sample, "-rA", CLOSED_PORT)

    out = run.stdout
    assert "PASSED test_sample.py::test_container" in out
    assert "SKIPPED [1] test_sample.py" in out and "not reachable at 127.0.0.1:1" in out
    assert "ERROR test_sample.py::test_leaky" in out and "left behind" in out
    assert "delayed call print" in out
    assert "ERROR test_sample.py::test_late_timer" in out
    assert "delayed call _late fired after the test ended" in out


def test_on_ci_unreachable_rabbitmq_fails(sample):
    """With CI set an unreachable RabbitMQ fails the test; --ion-no-leak-check lets leftovers be."""
    run = _pytest(sample, "-rA", CLOSED_PORT, "--ion-no-leak-check", ci=True)

    out = run.stdout
    assert "ERROR test_sample.py::test_unreachable" in out and "CI is set" in out
    assert "PASSED test_sample.py::test_leaky" in out
    assert "PASSED test_sample.py::test_late_timer" in out


def test_unknown_broker_is_a_usage_error(sample):
    """A broker that is neither local, amqp nor a URL stops pytest with a usage error."""
    run = _pytest(sample, "--ion-broker=carrier-pigeon")

    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "unknown broker 'carrier-pigeon'" in run.stderr


@pytest.mark.rabbitmq
def test_amqp_url_names_a_clusters_nodes(sample):
    """--ion-amqp-url takes several nodes, comma-separated: a node that is down is
    passed over and the container runs on the next one."""
    from tests.rabbit import URL, require_rabbitmq

    require_rabbitmq()
    nodes = f"--ion-amqp-url=amqp://guest:guest@127.0.0.1:1/,{URL}"
    run = _pytest(sample, "-rA", "--ion-broker=amqp", nodes, "-k", "test_container")

    assert "PASSED test_sample.py::test_container" in run.stdout, run.stdout + run.stderr
