"""scripts/fuzz_messages.py: malformed messages cost a container nothing.

One test draws the script's cases at a container on the embedded broker (fast,
no broker needed); one runs the script itself, small, on RabbitMQ."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_twisted
from twisted.logger import LogLevel

from ion.core.cc.agent_wire import agent_key
from ion.core.process.process import Process
from ion.core.process.runtime import REPLY_KEY_SUFFIX
from ion.services.hello.service import HelloService
from tests.helpers import wait_for
from tests.rabbit import URL, require_rabbitmq

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz_messages.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_messages", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_messages"] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


fuzz = load_script()  # (its cases come from scripts/fuzz_cases.py, on the path it sets)


@pytest_twisted.ensureDeferred
async def test_fuzz_cases_cost_a_container_nothing(make_container: Any, logs: Any) -> None:
    """2,000 of the script's malformed messages at a container's hello service and
    agent: nothing logged as an error or a failure, calls answered between batches,
    every message counted, and few lines logged (the first of each cause)."""
    container = await make_container()
    await container.spawn(HelloService, name="hello")
    client = await container.spawn(Process, name="client")
    agent = str(container.agent.id)
    targets = fuzz.Targets("hello", agent_key(container.id), agent, agent + REPLY_KEY_SUFFIX)
    rng = random.Random(7)
    makers, weights = fuzz.cases(signing=False)
    for n, maker in enumerate(rng.choices(makers, weights, k=2_000), 1):
        key, body = maker(rng, targets)
        await container.exchange.publish(key, body)
        if n % 500 == 0:  # the calls queue behind the batch: it has been taken
            assert await wait_for(client.rpc_send("hello", "hello", "x"), 10) == {
                "value": "Hello there, x"
            }
            pong = await wait_for(client.rpc_send(agent_key(container.id), "ping"), 10)
            assert pong["container"] == container.id
    bad = [
        logs.text(e)
        for e in logs.events.items
        if e.get("log_level") in (LogLevel.error, LogLevel.critical) or "log_failure" in e
    ]
    assert bad == []
    drops = container.drops.as_dict()
    assert drops["total"] >= 1_500  # (spoofed replies to the agent count once more)
    lines = logs.texts_with("a message at")
    assert 0 < len(lines) <= len(drops["causes"])
    assert all("\n" not in line and "\x1b" not in line for line in logs.texts())


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_the_fuzz_script_meets_its_targets() -> None:
    """The script, 2,000 messages on RabbitMQ at a twistd container: no crash, no
    hang, no traceback, RSS flat, under 100 log lines."""
    require_rabbitmq()
    from twisted.internet import reactor

    args = fuzz.parse(["--count", "2000", "--batch", "500", "--drop-interval", "2", "--url", URL])
    result, missed = await fuzz.fuzz(reactor, args)
    assert result["met"] == {
        "crashes": True,
        "hangs": True,
        "tracebacks": True,
        "rss_flat": True,
        "log_lines": True,
    }, result
    assert not missed and result["count"] == 2_000 and result["dropped"] >= 1_500
