"""A RabbitMQ cluster of the suite's own: three nodes on 127.0.0.1, made of the
nodes tests/rabbit_node.py starts (each its own directory, node name, AMQP and
Erlang distribution port; one Erlang cookie for the three), nodes 2 and 3
joined to node 1.

Fixture (registered in tests/conftest.py), per session and started only when a
test first asks for it:

    rabbit_cluster   the started L{RabbitCluster}: C{.urls}, C{.nodes} (names),
                     C{kill(i)}, C{start(i)}, C{stop(i)}, C{pause(i)}, C{resume(i)},
                     C{leader(queue)}, C{wait_leader(queue, not_on=i)}, C{restart_all()}

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

LEADER_ASK_TIMEOUT = 5.0  # one member's answer (rabbitmqctl takes ~0.8 s here)
LEADER_TIMEOUT = 60.0


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
        self._paused: set[int] = set()

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
        """Wait until exactly the members C{indexes} run, as seen by each of them
        (nodes that joined through the first see each other only once they
        have connected themselves)."""
        want = {self.members[i].name for i in indexes}
        deadline = time.monotonic() + timeout
        pending = sorted(indexes)
        while True:
            try:
                seen = self.running_nodes(pending[0])
            except (NodeStartError, ValueError, KeyError) as e:
                seen, why = set(), str(e)
            else:
                why = f"running, as {self.members[pending[0]].name} sees it: {sorted(seen)}"
            if seen == want:
                pending.pop(0)
                if not pending:
                    return
                continue
            if time.monotonic() >= deadline:
                raise NodeStartError(f"cluster not {sorted(want)} within {timeout:g}s; {why}")
            time.sleep(0.2)

    def _up(self) -> set[int]:
        return set(range(len(self.members))) - self._down

    def leader(self, queue: str, vhost: str = "/", timeout: float = LEADER_ASK_TIMEOUT) -> int:
        """The index of the member leading quorum queue C{queue} now, as the queue's
        record in the cluster's metadata says (the new leader rewrites it when
        elected, so just after a leader was lost it may still name the lost one:
        L{wait_leader} for a change). Asks the members that are up, those not
        paused first, each with C{timeout} seconds; L{NodeStartError} when none
        answers or the queue is not there (not a quorum queue: C{ValueError})."""
        expr = (
            "case rabbit_amqqueue:lookup(rabbit_misc:r("
            f"{_erl_binary(vhost)}, queue, {_erl_binary(queue)})) of "
            "{ok, Q} -> case amqqueue:get_pid(Q) of "
            "{_, Node} when is_atom(Node) -> {leader, Node}; Pid -> {not_quorum, Pid} end; "
            "Error -> Error end."
        )
        up = sorted(self._up(), key=lambda i: (i in self._paused, i))
        errors = []
        for via in up:
            try:
                out = self.members[via].ctl("eval", expr, timeout=timeout).strip()
            except NodeStartError as e:
                errors.append(str(e))
                continue
            if out.startswith("{leader,"):
                name = out[len("{leader,") : -1].strip().strip("'")
                return self.nodes.index(name)
            if out.startswith("{not_quorum,"):
                raise ValueError(f"{queue!r} in vhost {vhost!r} is not a quorum queue: {out}")
            raise NodeStartError(f"quorum queue {queue!r} in vhost {vhost!r}: {out}")
        raise NodeStartError(f"no member told the leader of {queue!r}: {'; '.join(errors)}")

    def wait_leader(
        self, queue: str, not_on: int | None = None, timeout: float = LEADER_TIMEOUT
    ) -> int:
        """Wait until quorum queue C{queue} (in vhost /) has a leader, one other than
        member C{not_on} when given; its index (L{NodeStartError} after C{timeout})."""
        deadline = time.monotonic() + timeout
        while True:
            ask = max(0.5, min(LEADER_ASK_TIMEOUT, deadline - time.monotonic()))
            try:
                found: int | None = self.leader(queue, timeout=ask)
            except NodeStartError as e:
                found, why = None, str(e)
            else:
                why = f"leader: member {found}"
            if found is not None and found != not_on:
                return found
            if time.monotonic() >= deadline:
                raise NodeStartError(
                    f"no leader of {queue!r} other than member {not_on} within {timeout:g}s; {why}"
                )
            time.sleep(0.2)

    def restart_all(self, timeout: float = BOOT_TIMEOUT) -> None:
        """A full cluster restart: resume paused members, stop those running
        gracefully (the last member first, the first last), then boot all of them
        in parallel (each waits for its peers' tables, so booting one by one would
        not do) and wait until they all run, clustered again. Durable queues and
        persistent messages survive it."""
        for i in sorted(self._paused):
            self.resume(i)
        for i in sorted(self._up(), reverse=True):
            self.members[i].shutdown()
            self._down.add(i)
        began = time.monotonic()
        for node in self.members:
            node.spawn()
        for i, node in enumerate(self.members):
            node.await_boot(max(1.0, timeout - (time.monotonic() - began)))
            self._down.discard(i)
        self.wait_running(self._up(), max(1.0, timeout - (time.monotonic() - began)))

    def kill(self, i: int) -> None:
        """SIGKILL node C{i} (its beam and children)."""
        self.members[i].kill()
        self._down.add(i)
        self._paused.discard(i)

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
        self._paused.add(i)

    def resume(self, i: int) -> None:
        """SIGCONT node C{i}'s beam; returns once it runs again."""
        beam = self.members[i].beam_pid()
        os.kill(beam, signal.SIGCONT)
        _await_state(beam, lambda state: state != "T")
        self._paused.discard(i)


def _erl_binary(text: str) -> str:
    """C{text} as an Erlang binary literal (its UTF-8 bytes, so any name is safe)."""
    return "<<" + ",".join(str(b) for b in text.encode()) + ">>"


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
