"""A RabbitMQ cluster of the suite's own: three nodes on 127.0.0.1, made of the
nodes tests/rabbit_node.py starts (each its own directory, node name, AMQP and
Erlang distribution port; one Erlang cookie for the three), nodes 2 and 3
joined to node 1.

Fixture (registered in tests/conftest.py), per session and started only when a
test first asks for it:

    rabbit_cluster   the started L{RabbitCluster}: C{.urls}, C{.nodes} (names),
                     C{kill(i)}, C{start(i)}, C{stop(i)}, C{pause(i)}, C{resume(i)}

Mark tests that use it C{pytest.mark.rabbitmq}; without RabbitMQ they are
skipped (failed with C{$CI} set), as with tests/rabbit_node.py, whose watchdog
also stops the cluster's nodes should pytest die. scripts/rabbit_cluster.py
starts and stops one by hand.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.rabbit_node import BOOT_TIMEOUT, NodeStartError, RabbitNode, free_ports, start_or_skip


class RabbitCluster:
    """C{size} RabbitMQ nodes joined into one cluster; L{start} it, L{stop} it."""

    def __init__(
        self, size: int = 3, *, parent: Path | None = None, supervised: bool = True
    ) -> None:
        token = uuid.uuid4().hex[:8]
        cookie = uuid.uuid4().hex.upper() + uuid.uuid4().hex.upper()
        taken: set[int] = set()
        self.members: list[RabbitNode] = []
        for i in range(size):
            port, dist_port = free_ports(2, taken)
            self.members.append(
                RabbitNode(
                    (),
                    name=f"iontestc{i + 1}-{token}@localhost",
                    cookie=cookie,
                    parent=parent,
                    supervised=supervised,
                    ports=(port, dist_port),
                )
            )
        self.formation_seconds: float | None = None
        self._down: set[int] = set()  # killed or stopped by a test (paused ones are "up")

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.members]

    @property
    def nodes(self) -> list[str]:
        return [node.name for node in self.members]

    def __repr__(self) -> str:
        return f"<RabbitCluster {' '.join(self.nodes)}>"

    def start(self, i: int | None = None, timeout: float = BOOT_TIMEOUT) -> RabbitCluster:
        """Boot node C{i} again (after L{kill} or L{stop}) and wait until the cluster
        lists it running; without C{i}, form the cluster: boot all nodes (in
        parallel), join them to the first, and wait until the first lists them all
        running (L{NodeStartError} otherwise, after stopping all)."""
        if i is not None:
            node = self.members[i]
            node.spawn()
            node.await_boot(timeout)
            self._down.discard(i)
            self.wait_running(self._up(), timeout)
            return self
        began = time.monotonic()
        try:
            for node in self.members:
                node.spawn()
            for node in self.members:
                node.await_boot(timeout)
            first = self.members[0].name
            for node in self.members[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first, timeout=timeout)
                node.ctl("start_app", timeout=timeout)
            self.wait_running(set(range(len(self.members))), timeout)
        except BaseException:
            self.stop()
            raise
        self.formation_seconds = time.monotonic() - began
        return self

    def running_nodes(self, via: int) -> set[str]:
        """The running nodes of the cluster as member C{via} sees them."""
        out = self.members[via].ctl("cluster_status", "--formatter", "json")
        return set(json.loads(out)["running_nodes"])

    def wait_running(self, indexes: set[int], timeout: float = BOOT_TIMEOUT) -> None:
        """Wait until exactly the members C{indexes} run, as seen by the first of them."""
        want = {self.members[i].name for i in indexes}
        via = min(indexes)
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen = self.running_nodes(via)
            except (NodeStartError, ValueError, KeyError) as e:
                seen, why = set(), str(e)
            else:
                why = f"running: {sorted(seen)}"
            if seen == want:
                return
            if time.monotonic() >= deadline:
                raise NodeStartError(f"cluster not {sorted(want)} within {timeout:g}s; {why}")
            time.sleep(0.2)

    def _up(self) -> set[int]:
        return set(range(len(self.members))) - self._down

    def kill(self, i: int) -> None:
        """SIGKILL node C{i} (its beam and children)."""
        self.members[i].kill()
        self._down.add(i)

    def stop(self, i: int | None = None) -> None:
        """Stop node C{i} gracefully (C{rabbitmqctl stop}), keeping its data for
        L{start}; without C{i}, stop every node for good and remove its directory
        (idempotent)."""
        if i is None:
            for node in self.members:
                node.stop()
            return
        self.members[i].shutdown()
        self._down.add(i)

    def pause(self, i: int) -> None:
        """SIGSTOP node C{i}'s beam; returns once it is stopped."""
        beam = self.members[i].beam_pid()
        os.kill(beam, signal.SIGSTOP)
        _await_state(beam, lambda state: state == "T")

    def resume(self, i: int) -> None:
        """SIGCONT node C{i}'s beam; returns once it runs again."""
        beam = self.members[i].beam_pid()
        os.kill(beam, signal.SIGCONT)
        _await_state(beam, lambda state: state != "T")


def process_state(pid: int) -> str:
    """The state letter of process C{pid} (C{T}: stopped by a signal), from /proc."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2]


def _await_state(pid: int, ok: Callable[[str], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not ok(state := process_state(pid)):
        if time.monotonic() >= deadline:
            raise NodeStartError(f"process {pid} still in state {state} after {timeout:g}s")
        time.sleep(0.01)


@pytest.fixture(scope="session")
def rabbit_cluster() -> Iterator[RabbitCluster]:
    """A three-node RabbitMQ cluster, started on first use, once per session."""
    cluster = start_or_skip(RabbitCluster)
    boots = ", ".join(f"{node.boot_seconds:.2f}s" for node in cluster.members)
    print(
        f"\n[rabbit_cluster] {' '.join(cluster.nodes)}: boots {boots} (in parallel), "
        f"cluster formed in {cluster.formation_seconds:.2f}s"
    )
    try:
        yield cluster
    finally:
        began = time.monotonic()
        cluster.stop()
        print(f"\n[rabbit_cluster] stopped in {time.monotonic() - began:.2f}s")
