"""ion's pytest plugin: fixtures for containers, apps, releases and offline processes.

Installed with ion (entry point C{pytest11: ion}); it needs pytest-twisted.

Fixtures (all per test):

- C{ion_container}: one started container of a fresh system; mark the test
  C{@pytest.mark.ion_container(rel=..., apps=[...], processes=[...], config={...})}
  to start a release, apps and processes in it.
- C{ion_container_factory}: C{await ion_container_factory(**same keywords)}; every
  container of a test belongs to the same system (and broker).
- C{ion_kit}: the L{IonKit} behind both (C{.sysname}, C{.containers}, C{.find}).
- C{ion_broker}: the L{BrokerSpec} the test runs on; C{ion_sysname}: its sysname.
- C{ion_offline}: an L{OfflineContainer} (no broker) for unit tests;
  C{ion_process_factory}: C{await ion_process_factory(Cls, **fakes)} builds one
  process in it with its clients faked (see L{ion.test.fakes.process_factory}).

A test using these fixtures, and a fixture of its own that takes C{ion_kit},
C{ion_container} or C{ion_container_factory}, run where a client made with no
arguments (C{HelloServiceClient()}) finds the test's first container.

At teardown every container stops, broker connections the test left open are
closed, what the system declared on the broker is deleted, and the test errors
if connections, queues, delayed calls or sockets stayed, or a timer of the
test's fired during teardown (C{--ion-no-leak-check} turns that off; queues or
exchanges that could not be deleted still fail it).

Broker choice, in one place: C{--ion-broker=local|amqp|amqp://...} (default
C{$ION_TEST_BROKER}, else local), overridden per test by
C{@pytest.mark.ion_broker("amqp")} or C{parametrize("ion_broker", [...], indirect=True)}.
C{--ion-broker=local,amqp} runs every test that uses these fixtures once per broker.
When RabbitMQ is asked for but unreachable the test is skipped, or fails if
C{$CI} is set. Each test gets its own sysname (C{test-<hex>}), so parallel and
repeated runs on one RabbitMQ never see each other.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ion.test.brokers import (
    ENV_BROKER,
    BrokerSpec,
    on_ci,
    parse_broker,
    unavailable_reason,
    unique_sysname,
)

try:
    import pytest_twisted
except ImportError:  # pragma: no cover - the fixtures then say what is missing
    pytest_twisted = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ion", "ion capability container")
    group.addoption(
        "--ion-broker",
        default=None,
        help="broker for ion fixtures: local (default; or $ION_TEST_BROKER), amqp, "
        "an amqp:// URL, or a comma list (local,amqp) to run each test once per broker",
    )
    group.addoption(
        "--ion-amqp-url",
        default=None,
        help="the RabbitMQ URL 'amqp' stands for (default: $ION_TEST_AMQP_URL, "
        "else amqp://guest:guest@127.0.0.1:5672/)",
    )
    group.addoption(
        "--ion-no-leak-check",
        action="store_true",
        help="do not fail tests that leave delayed calls, sockets, connections or queues "
        "behind (what cannot be deleted from the broker still fails them)",
    )
    parser.addini("ion_root", "directory holding res/ for ion fixtures (default: rootdir)")


def pytest_configure(config: pytest.Config) -> None:
    for value in _option_brokers(config):
        try:
            parse_broker(value)
        except ValueError as e:
            raise pytest.UsageError(f"--ion-broker: {e}") from None
    config.addinivalue_line(
        "markers",
        "ion_broker(broker): run this test's ion containers on 'local', 'amqp' or an amqp:// URL",
    )
    config.addinivalue_line(
        "markers",
        "ion_container(rel=None, apps=(), processes=(), config=None): "
        "what the ion_container fixture starts",
    )


def _option_brokers(config: pytest.Config) -> list[str]:
    value = config.getoption("ion_broker", None) or os.environ.get(ENV_BROKER) or "local"
    return [v.strip() for v in value.split(",") if v.strip()] or ["local"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """With C{--ion-broker=a,b}, run each test that uses ion fixtures once per broker."""
    if "ion_broker" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("ion_broker") is not None:
        return
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
        if "ion_broker" in (names.replace(" ", "").split(",") if isinstance(names, str) else names):
            return
    brokers = _option_brokers(metafunc.config)
    if len(brokers) > 1:
        metafunc.parametrize("ion_broker", brokers, indirect=True, ids=brokers)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Any:
    """A test using ion's containers runs where clients made without arguments
    (C{HelloServiceClient()}) find its first container."""
    kit = pyfuncitem.funcargs.get("ion_kit")
    test = pyfuncitem.obj
    if kit is None or getattr(test, "hypothesis", None) is not None:
        return (yield)
    place = _place_of(kit)
    pyfuncitem.obj = _run_in(place, test)
    try:
        return (yield)
    finally:
        pyfuncitem.obj = test


_CONTAINER_FIXTURES = frozenset({"ion_kit", "ion_container", "ion_container_factory"})


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Any:
    """A fixture of the test's own that uses ion's containers runs where the test does."""
    if not _CONTAINER_FIXTURES & set(fixturedef.argnames):
        return (yield)
    func = fixturedef.func
    fixturedef.func = _run_in(_place_of(request.getfixturevalue("ion_kit")), func)
    try:
        return (yield)
    finally:
        fixturedef.func = func


def _place_of(kit: Any) -> Any:
    from ion.core.process.context import Here

    return Here(find=lambda: kit.containers[0] if kit.containers else None)


def _run_in(place: Any, test: Callable[..., Any]) -> Callable[..., Any]:
    """C{test}, called in C{place}: the coroutine it returns is started there
    (Twisted keeps a copy of the context for it), then the place is left."""
    from twisted.internet.defer import ensureDeferred

    from ion.core.process import context

    @functools.wraps(test)  # keeps pytest-twisted's mark
    def run(*args: Any, **kwargs: Any) -> Any:
        token = context.entered(place)
        try:
            result = test(*args, **kwargs)
            if inspect.iscoroutine(result):
                return ensureDeferred(result)
            if inspect.isasyncgen(result):  # a yield fixture: each step is started apart
                return _PlacedSteps(place, result)
            return result
        finally:
            context.left(token)

    return run


class _PlacedSteps:
    """An async generator whose every step runs in C{place}."""

    def __init__(self, place: Any, steps: Any) -> None:
        self.place = place
        self.steps = steps

    def __aiter__(self) -> _PlacedSteps:
        return self

    async def __anext__(self) -> Any:
        from ion.core.process import context

        token = context.entered(self.place)  # in this step's own copy of the context
        try:
            return await self.steps.__anext__()
        finally:
            context.left(token)


def require_broker(spec: BrokerSpec) -> BrokerSpec:
    """Skip the test if C{spec}'s broker is unreachable, or fail it when C{$CI} is set."""
    reason = unavailable_reason(spec)
    if reason is not None:
        if on_ci():
            pytest.fail(f"{reason} (and CI is set, so this is a failure)", pytrace=False)
        pytest.skip(reason)
    return spec


def require_rabbitmq(url: str | None = None) -> BrokerSpec:
    """Skip (or on CI fail) the calling test unless RabbitMQ answers at C{url} (default: 'amqp')."""
    return require_broker(parse_broker(url or "amqp"))


def _root(config: pytest.Config) -> Path:
    value = config.getini("ion_root")
    return config.rootpath / value if value else config.rootpath


@pytest.fixture
def ion_broker(request: pytest.FixtureRequest) -> BrokerSpec:
    """The broker this test's containers use (param, else marker, else option)."""
    value = getattr(request, "param", None)
    if value is None:
        marker = request.node.get_closest_marker("ion_broker")
        if marker is not None:
            value = marker.args[0] if marker.args else marker.kwargs.get("broker")
    if value is None:
        value = _option_brokers(request.config)[0]
    try:
        spec = parse_broker(value, request.config.getoption("ion_amqp_url", None))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None
    return require_broker(spec)


@pytest.fixture
def ion_sysname() -> str:
    """A sysname no other test uses: C{test-<8 hex digits>}."""
    return unique_sysname()


def _need_pytest_twisted(*_args: Any, **_kwargs: Any) -> Any:
    pytest.fail("ion's fixtures need pytest-twisted: pip install pytest-twisted", pytrace=False)


if pytest_twisted is None:  # pragma: no cover
    ion_kit = ion_container = ion_offline = pytest.fixture(_need_pytest_twisted)
    ion_container_factory = ion_process_factory = pytest.fixture(_need_pytest_twisted)
else:

    @pytest_twisted.async_yield_fixture
    async def ion_kit(
        request: pytest.FixtureRequest, ion_broker: BrokerSpec, ion_sysname: str
    ) -> AsyncIterator[Any]:
        """The test system's L{IonKit}; stopped, cleaned and checked for leftovers at teardown."""
        from ion.test.kit import IonKit

        kit = IonKit(
            broker=ion_broker,
            sysname=ion_sysname,
            root=_root(request.config),
            check_leftovers=not request.config.getoption("ion_no_leak_check", False),
        )
        yield kit
        await kit.stop()

    @pytest.fixture
    def ion_container_factory(ion_kit: Any) -> Callable[..., Awaitable[Any]]:
        """C{await ion_container_factory(rel=, apps=, processes=, config=)}: a started container."""
        return ion_kit.start_container

    @pytest_twisted.async_fixture
    async def ion_container(request: pytest.FixtureRequest, ion_kit: Any) -> Any:
        """A started container, with what the test's C{ion_container} marker asks for."""
        marker = request.node.get_closest_marker("ion_container")
        kwargs = dict(marker.kwargs) if marker is not None else {}
        return await ion_kit.start_container(**kwargs)

    @pytest_twisted.async_yield_fixture
    async def ion_offline(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        """A container without a broker for unit tests; its processes end at teardown."""
        from twisted.internet import reactor

        from ion.test.fakes import OfflineContainer
        from ion.test.leaks import LeftoversError, reactor_state, wait_until_clean

        before = reactor_state(reactor)
        offline = OfflineContainer(reactor=reactor)
        yield offline
        await offline.stop()
        found = await wait_until_clean(reactor, before)
        if found and not request.config.getoption("ion_no_leak_check", False):
            raise LeftoversError(found)

    @pytest.fixture
    def ion_process_factory(ion_offline: Any) -> Callable[..., Awaitable[Any]]:
        """C{await ion_process_factory(Cls, args=, config=, **fakes)}: an offline process."""
        from ion.test.fakes import process_factory

        async def make(cls: Any, **kwargs: Any) -> Any:
            return await process_factory(cls, container=ion_offline, **kwargs)

        return make
