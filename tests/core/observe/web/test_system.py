"""The web view across containers (W5), the queues page on both brokers
(W10), the --web option and the shell's web()."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import pytest_twisted
from twisted.python import usage

from ion.core.cc.container import Container
from ion.core.cc.shell_api import ShellApi
from ion.core.cc.tap import Options
from ion.core.process.process import Process
from tests.core.observe.web.client import base_url, get_json, request, web_config
from tests.helpers import Collector
from tests.rabbit import URL, delete_systems, require_rabbitmq

FAST = {"heartbeat": 0.1, "dead_after": 3}


@pytest_twisted.ensureDeferred
async def test_the_system_page_lists_every_container_and_a_dead_one(make_container: Any) -> None:
    """W5: two containers on one broker: /api/system lists both UP with epoch
    and heartbeat age, each row linking to its page; once the other stops
    answering it is DEAD; its container page is then a 404."""
    c1 = await make_container(config=web_config().merged({"agent": FAST}))
    c2 = await make_container(config=web_config().merged({"agent": FAST}))
    base = base_url(c1)
    changes: Collector[Any] = Collector()
    c1.hub.listen(changes)
    await changes.wait_until(lambda e: e.type == "cc" and e.data.get("state") == "UP")
    data = await get_json(base, "api/system")
    rows = {r["cid"]: r for r in data["containers"]}
    assert list(rows) == [c1.id, c2.id] and data["sysname"] == "testsys"
    assert data["broker"] == "local" and data["container"] == c1.id
    assert rows[c1.id]["state"] == rows[c2.id]["state"] == "UP"
    assert rows[c2.id]["epoch"] == 0 and 0 <= rows[c2.id]["heartbeat_age"] < 1.0
    assert rows[c2.id]["processes"] >= 1 and rows[c2.id]["lag_ms"] >= 0
    html = (await request(base)).text
    assert f'<tr data-cid="{c2.id}" data-state="UP"' in html and f'href="/c/{c2.id}"' in html
    other = await get_json(base, f"api/c/{c2.id}")
    assert {p["name"] for p in other["processes"]} >= {"cc_agent"} and other["this"] is False
    assert (await get_json(base, f"api/c/{c2.id}/tree"))["nodes"]

    await c2.agent.freeze()  # stops heartbeats and answers, its queue still held
    await changes.wait_until(lambda e: e.type == "cc" and e.data.get("state") == "DEAD", 5.0)
    rows = {r["cid"]: r for r in (await get_json(base, "api/system"))["containers"]}
    assert rows[c2.id]["state"] == "DEAD" and rows[c2.id]["heartbeat_age"] >= 0.3
    assert (await request(base + f"api/c/{c2.id}")).code == 404
    await c2.agent.thaw()


async def queued_five(container: Container) -> dict[str, Any]:
    """A service queue with no consumer and five messages in it: its row on /api/queues."""
    await container.exchange.declare_queue("idle_svc")
    sender = await container.spawn(Process, name="sender")
    for n in range(5):
        await sender.send("idle_svc", "work", {"n": n})
    data = await get_json(base_url(container), "api/queues")
    (row,) = [r for r in data["queues"] if r["service"] == "idle_svc"]
    return row


@pytest_twisted.ensureDeferred
async def test_queues_on_the_embedded_broker(make_container: Any) -> None:
    """W10 (embedded): five messages on a service queue nobody takes: depth 5, 0 consumers."""
    c = await make_container(config=web_config())
    row = await queued_five(c)
    assert (row["queue"], row["messages"], row["consumers"]) == ("testsys.idle_svc", 5, 0)
    page = (await request(base_url(c) + "queues")).text
    assert 'data-queue="testsys.idle_svc" data-messages="5"' in page


@pytest.mark.rabbitmq
@pytest_twisted.ensureDeferred
async def test_queues_on_rabbitmq() -> None:
    """W10 (RabbitMQ): the same, through a passive declare."""
    require_rabbitmq()
    from twisted.internet import reactor

    from ion.core.messaging.amqp import AmqpBroker

    sysname = f"t-{uuid.uuid4().hex[:8]}"
    c = Container(reactor=reactor, config=web_config(), container_id=f"{sysname}-c1",
                  sysname=sysname, broker=AmqpBroker(reactor, URL))  # fmt: skip
    await c.start()
    try:
        row = await queued_five(c)
        assert (row["messages"], row["consumers"]) == (5, 0)
    finally:
        await c.stop()
        await delete_systems({sysname}, {f"{sysname}.idle_svc"})


@pytest.mark.parametrize("value", ["nope", "70000", "host.example:80", "1.2.3.4:x", ":"])
def test_a_bad_web_option_is_a_usage_error_naming_it(value: str) -> None:
    options = Options()
    with pytest.raises(usage.UsageError, match="--web"):
        options.parseOptions(["--web", value])


def test_the_web_option_sets_web_listen() -> None:
    options = Options()
    options.parseOptions(["--web", "8089"])
    assert options.config.get("web.listen") == "8089"
    from ion.core.observe.web.service import parse_listen

    assert parse_listen("8089") == ("127.0.0.1", 8089)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    assert parse_listen("localhost:80") == ("127.0.0.1", 80)


@pytest_twisted.ensureDeferred
async def test_the_log_line_and_the_shells_web(make_container: Any, logs: Any) -> None:
    """The bound address is logged; web() shows it, the actions and the token,
    which the log never holds; with the view off web() says how to start it."""
    c = await make_container(config=web_config())
    port = c.web.bound_port
    await logs.wait_for_text(f"observer web view at http://127.0.0.1:{port}/")
    text = str(ShellApi(c).web())
    assert f"http://127.0.0.1:{port}/" in text and "actions off" in text
    assert c.web.token in text
    assert not logs.texts_with(c.web.token)
    plain = await make_container()
    assert str(ShellApi(plain).web()) == "the web view is off (start with --web HOST:PORT)"
    assert plain.hub is None and c.hub is not None
    await c.stop()
    assert c.hub is None
