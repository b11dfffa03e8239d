"""A gateway killed with SIGKILL mid-delivery and started again loses nothing.

A real C{twistd -n cc gateway.rel} on RabbitMQ with its store in a SQLite file;
the webhook receiver is this test's. The receiver holds the first post it
gets unanswered and the test kills the container then; a new container on the
same data directory and system finishes the work: every event arrives at least
once, and an event that arrives twice does so with the same C{Ion-Delivery-Id}.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from tests.gateway.client import fetch
from tests.gateway.receiver import Receiver
from tests.helpers import closed_port
from tests.launch import REPO, await_file, cc_command, clean_env

pytestmark = pytest.mark.rabbitmq

TOKEN = "sigkill-token-0123456789"
EVENTS = 30


class HoldFirst(Receiver):
    """A receiver that leaves its first post unanswered and tells the test."""

    def __init__(self, reactor: Any) -> None:
        super().__init__(reactor)
        self.holding: Deferred[None] = Deferred()
        self.held: list[Any] = []

    def hold(self, request: Any) -> bool:
        if self.holding.called:
            return False
        self.held.append(request)
        self.holding.callback(None)
        return True


def start(tmp: Path, tag: str, port: int, receiver_port: int, n: int) -> subprocess.Popen[str]:
    from tests.rabbit import URL

    config = tmp / "gateway.yml"
    config.write_text(json.dumps({"gateway": {
        "http": f"127.0.0.1:{port}",
        "data_dir": str(tmp / "data"),
        "auth": {"tokens": {TOKEN: "ann"}},
        "allow_targets": ["127.0.0.0/8"],
        "delivery": {"backoff": 0.05, "backoff_max": 0.5, "lease": 2, "timeout": 1,
                     "max_attempts": 1000},
    }}))  # fmt: skip
    ready = tmp / f"ready-{n}"
    log = (tmp / f"gateway-{n}.log").open("w")
    return subprocess.Popen(
        cc_command(f"gw{n}", "-n", "--broker", URL, "-s", f"gwkill-{tag}", "--config",
                   str(config), "--ready-file", str(ready), "gateway.rel"),  # fmt: skip
        cwd=REPO, env=clean_env(), stdout=log, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_sigkill_mid_delivery_loses_nothing(tmp_path: Path) -> None:
    """Killed while a post is under way and started again, the gateway delivers every
    event at least once; a repeat carries the same delivery id."""
    from tests.rabbit import delete_systems, require_rabbitmq

    require_rabbitmq()
    tag = uuid.uuid4().hex[:8]
    receiver = HoldFirst(reactor)
    await receiver.up()
    port = closed_port()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    procs: list[subprocess.Popen[str]] = []
    try:
        procs.append(start(tmp_path, tag, port, receiver.port, 1))
        await await_file(tmp_path / "ready-1", procs[0])
        base = f"http://127.0.0.1:{port}"
        made = await fetch("POST", f"{base}/eventmatch", {
            "name": "all", "jsonpath": "$.data", "target_url": receiver.url()}, auth)  # fmt: skip
        assert made.status in (200, 201), made.body
        for n in range(EVENTS):
            event = {"specversion": "1.0", "id": f"k{n}", "source": "/kill", "type": "t",
                     "data": {"n": n}}  # fmt: skip
            answer = await fetch("POST", f"{base}/receive", event, auth)
            assert answer.status == 202, answer.body
        await receiver.holding  # a post is under way, unanswered
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(timeout=10)
        for request in receiver.held:  # its connection is gone: nobody reads an answer
            request.transport.abortConnection()
        procs.append(start(tmp_path, tag, port, receiver.port, 2))
        await await_file(tmp_path / "ready-2", procs[1])
        await receiver.got.wait_until(
            lambda _: {g["event"]["id"] for g in receiver.got.items} >= {
                f"k{n}" for n in range(EVENTS)}, timeout=60)  # fmt: skip
        by_event: dict[str, set[str]] = {}
        for g in receiver.got.items:
            by_event.setdefault(g["event"]["id"], set()).add(g["delivery"])
        assert set(by_event) == {f"k{n}" for n in range(EVENTS)}
        assert all(len(ids) == 1 for ids in by_event.values()), by_event
        held = receiver.got.items[0]  # the post under way when it was killed: posted again
        again = [g for g in receiver.got.items[1:] if g["event"]["id"] == held["event"]["id"]]
        assert again and again[0]["delivery"] == held["delivery"]
        order = [g["event"]["data"]["n"] for g in receiver.got.items]
        assert order == sorted(order)  # one subscription: in order, repeats adjacent
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=20)
        await receiver.down()
        await delete_systems({f"gwkill-{tag}"}, {f"gwkill-{tag}.gateway.match"})
