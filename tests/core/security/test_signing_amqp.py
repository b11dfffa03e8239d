"""Signing on RabbitMQ: signed calls between containers, and the boot check of a
signing container joining a system that does not sign (or signs with its keys)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from ion.core.cc.container import Container
from ion.core.exception import StartupError
from ion.core.messaging.amqp import AmqpBroker
from ion.core.process.process import Process
from ion.services.hello import HelloService
from tests.core.security.conftest import Containers, config
from tests.helpers import wait_for
from tests.rabbit import URL, delete_systems, require_rabbitmq

pytestmark = pytest.mark.rabbitmq
FAST = {"heartbeat": 0.2}

Make = Callable[..., Awaitable[Container]]


@pytest_twisted.async_yield_fixture
async def rabbit_system() -> AsyncIterator[Make]:
    """C{await make(config, start=True)}: a container of one unique sysname on RabbitMQ."""
    require_rabbitmq()
    from twisted.internet import reactor

    sysname = f"sig-{uuid.uuid4().hex[:8]}"
    made = Containers(sysname, f"{sysname}-c",
                      lambda n: AmqpBroker(reactor, URL, heartbeat=10, name=f"c{n}"))  # fmt: skip
    yield made
    await made.stop_all()
    await delete_systems({sysname}, {f"{sysname}.hello"})


@pytest_twisted.ensureDeferred
async def test_signed_containers_call_each_other(rabbit_system: Make, key_file: Path) -> None:
    server = await rabbit_system(config(key_file, agent=FAST))
    await server.spawn(HelloService)
    client_cc = await rabbit_system(config(key_file, agent=FAST, security={"join_check": 1.0}))
    client = await client_cc.spawn(Process, name="client")
    assert await wait_for(client.rpc_send("hello", "hello", "x"), 10) is not None
    signers: list[Any] = [server.exchange.signer, client_cc.exchange.signer]
    assert all(s.refused == {} and s.verified > 0 for s in signers)


@pytest_twisted.ensureDeferred
async def test_signing_container_refuses_an_unsigned_system_on_rabbitmq(
    rabbit_system: Make, key_file: Path
) -> None:
    first = await rabbit_system(config(None, agent=FAST))
    joining = await rabbit_system(
        config(key_file, agent=FAST, security={"join_check": 3.0}), start=False
    )
    with pytest.raises(StartupError, match=f"container '{first.id}' sends .* \\(unsigned\\)"):
        await joining.start()
