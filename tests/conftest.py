"""Fixtures shared by the whole suite: containers on the embedded broker."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any

import pytest
import pytest_twisted
from hypothesis import settings
from twisted.logger import globalLogPublisher

from ion.core.cc.container import Container
from ion.core.messaging.embedded import EmbeddedBroker

# A three-node RabbitMQ cluster of the suite's own (tests/rabbit_cluster.py).
from tests.rabbit_cluster import rabbit_cluster  # noqa: F401

# A RabbitMQ node of the suite's own, with the event exchange plugin (tests/rabbit_node.py).
from tests.rabbit_node import event_broker, event_node, tls_node  # noqa: F401

# ion's wheel and fresh virtualenvs with it installed (tests/wheel.py).
from tests.wheel import built_wheel, fresh_venv  # noqa: F401

# Which tests keep to one pytest-xdist worker (tests/xdist_groups.py).
from tests.xdist_groups import assign_groups, check_grouped, fail_if_ungrouped


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Generator[None, None, None]:
    """Tests that share a costly fixture run on one xdist worker (tests/xdist_groups.py):
    marked before xdist's hook reads the marks, checked after it put them in the ids."""
    assign_groups(items)
    yield
    check_grouped(items)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    fail_if_ungrouped(item)


# The browser tier's summary lines (tests/browser/summary.py): a plugin registered here,
# as xdist's main process, which prints the summary, loads no conftest below tests/.
pytest_plugins = ["tests.browser.summary"]

# Under CI, property tests draw the same examples every run, so a submission
# does not pass or fail by luck; elsewhere they keep exploring.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


class LogCapture:
    """Records log events while installed; C{await wait_for_text(s)} for a matching one."""

    def __init__(self) -> None:
        from tests.helpers import Collector

        self.events: Collector[dict[str, Any]] = Collector()

    def __call__(self, event: dict[str, Any]) -> None:
        self.events(event)

    @staticmethod
    def text(event: dict[str, Any]) -> str:
        from twisted.logger import formatEvent

        return formatEvent(event)

    async def wait_for_text(self, fragment: str, timeout: float = 5.0) -> dict[str, Any]:
        """The first event whose formatted text contains C{fragment}."""
        items = await self.events.wait_until(lambda e: fragment in self.text(e), timeout)
        return items[-1]

    def texts(self) -> list[str]:
        return [self.text(e) for e in self.events.items]

    def texts_with(self, fragment: str) -> list[str]:
        """The texts logged so far that contain C{fragment}."""
        return [t for t in self.texts() if fragment in t]


@pytest_twisted.async_yield_fixture
async def make_container() -> AsyncIterator[Callable[..., Awaitable[Container]]]:
    """C{await make_container(**kw)}: a started container; all are stopped at teardown.

    Containers made in one test share one embedded broker, as containers of one
    system share RabbitMQ.
    """
    from twisted.internet import reactor

    broker = EmbeddedBroker(reactor)
    made: list[Container] = []
    counter = iter(range(1, 1000))

    async def make(**kwargs: Any) -> Container:
        kwargs.setdefault("container_id", f"test{next(counter)}")
        kwargs.setdefault("sysname", "testsys")
        kwargs.setdefault("broker", broker.connection())
        container = Container(reactor=reactor, **kwargs)
        await container.start()
        made.append(container)
        return container

    yield make
    for container in reversed(made):
        await container.stop()


@pytest_twisted.async_yield_fixture
async def container(
    make_container: Callable[..., Awaitable[Container]],
) -> AsyncIterator[Container]:
    """One started container on the embedded broker."""
    yield await make_container()


@pytest_twisted.async_yield_fixture
async def logs() -> AsyncIterator[LogCapture]:
    """Captures every log event emitted during the test."""
    capture = LogCapture()
    globalLogPublisher.addObserver(capture)
    yield capture
    globalLogPublisher.removeObserver(capture)
