"""An app's needs: services waited for (served in any container of the system), never started."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel

from ion.core.cc.container import Container
from ion.core.config import DEFAULTS, Config, check_settings
from ion.core.exception import ConfigurationError, IonError, StartupError
from ion.core.pack.needs import NeededServiceError
from tests.core.pack.test_app_manager import app_names, outcome_of

MakeContainer = Callable[..., Awaitable[Container]]

HELLO_APP = """type: application
name: hello
mod: [ion.core.pack.processapp, [hello, ion.services.hello.service, HelloService]]
"""
GREETER_APP = """type: application
name: greeter
applications: [ioncore]
needs: [hello]
mod: [tests.core.pack.apps.recorder, [], {{source: app}}]
config: {config}
"""


@pytest.fixture
def apps_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "apps"
    directory.mkdir()
    (directory / "hello.app").write_text(HELLO_APP)
    (directory / "greeter.app").write_text(GREETER_APP.format(config="{}"))
    return directory


@pytest.fixture
def make(make_container: MakeContainer, apps_dir: Path) -> MakeContainer:
    """C{await make()}: a container of system testsys (one broker) finding C{apps_dir}."""

    async def make_one() -> Container:
        config = Config(DEFAULTS).merged({"pack": {"app_path": [str(apps_dir)]}})
        return await make_container(config=config)

    return make_one


async def test_a_service_served_by_another_container_is_not_started_here(make) -> None:
    """An app that needs a service another container serves starts at once, and the
    service is not started in its container."""
    first, second = await make(), await make()
    await first.start_app("hello")

    await second.start_app("greeter")

    assert app_names(second) == ["ioncore", "greeter"]
    assert second.proc_manager.find("hello") is None


async def test_the_app_waits_until_the_service_is_served(make, logs) -> None:
    """The app waits (on the manager's clock), saying so once at info level, and
    starts once the service appears."""
    first, second = await make(), await make()
    second.app_manager.clock = clock = Clock()
    fired = outcome_of(Deferred.fromCoroutine(second.start_app("greeter")))
    clock.advance(5)
    assert fired == [] and app_names(second) == ["ioncore"]
    said = [e for e in logs.events.items if "waits for service" in logs.text(e)]
    assert [logs.text(e) for e in said] == [
        "app greeter waits for service hello, which no container of system testsys "
        "serves yet (up to 30s, pack.needs_timeout)"
    ]
    assert said[0]["log_level"] == LogLevel.info

    await first.start_app("hello")
    clock.advance(1)  # the next look

    assert len(fired) == 1 and not isinstance(fired[0], Exception), fired
    assert app_names(second) == ["ioncore", "greeter"]


async def test_an_unserved_service_fails_the_start_naming_it_and_the_system(make, apps_dir) -> None:
    """After pack.needs_timeout seconds the start fails: one IonError naming the file,
    the field needs, the service and the sysname; nothing has started."""
    c = await make()
    c.app_manager.clock = clock = Clock()
    fired = outcome_of(Deferred.fromCoroutine(c.start_app("greeter")))
    clock.advance(29.9)
    assert fired == []
    clock.advance(0.1)

    [failure] = fired
    error = failure.value
    assert isinstance(error, NeededServiceError) and isinstance(error, IonError)
    assert (error.service, error.sysname, error.field, error.line) == (
        "hello",
        "testsys",
        "needs",
        4,
    )
    assert str(error).startswith(
        f"{apps_dir / 'greeter.app'}:4: field 'needs': app 'greeter' needs service 'hello', "
        "which no container of system 'testsys' serves (waited 30s"
    )
    assert app_names(c) == ["ioncore"] and not c.app_manager._lock.locked


async def test_the_apps_own_config_sets_the_wait(make, apps_dir) -> None:
    """pack.needs_timeout comes from the app's view; 0 looks once and does not wait."""
    (apps_dir / "greeter.app").write_text(GREETER_APP.format(config="{pack: {needs_timeout: 0}}"))
    c = await make()
    with pytest.raises(NeededServiceError, match=r"waited 0s"):
        await c.start_app("greeter")


async def test_a_stopping_container_stops_waiting(make) -> None:
    """A container that stops while an app waits for a service ends the wait at the next look."""
    c = await make()
    c.app_manager.clock = clock = Clock()
    fired = outcome_of(Deferred.fromCoroutine(c.start_app("greeter")))
    await c.stop()
    assert fired == []
    clock.advance(1)
    assert fired and fired[0].check(StartupError)
    assert "stopped while waiting for service 'hello'" in str(fired[0].value)


async def test_a_second_instance_of_a_service_is_logged_with_the_count(make, logs) -> None:
    """Starting a service the system already serves logs at info level that an
    instance is added, with the count."""
    first, second = await make(), await make()
    await first.start_app("hello")
    assert not logs.texts_with("adds an instance")

    await second.start_app("hello")

    [text] = logs.texts_with("adds an instance")
    assert text == (
        "app hello adds an instance of service hello: 2 instances in system testsys "
        "now share its calls"
    )
    [event] = [e for e in logs.events.items if "adds an instance" in logs.text(e)]
    assert event["log_level"].name == "info"


def test_needs_timeout_is_checked_with_the_other_numbers() -> None:
    """A bad pack.needs_timeout is a usage error naming it and its layer."""
    with pytest.raises(ConfigurationError, match=r"pack.needs_timeout: .* not -1 \(from -a\)"):
        check_settings([("defaults", DEFAULTS), ("-a", {"pack": {"needs_timeout": -1}})])
    check_settings([("-a", {"pack": {"needs_timeout": 0}})])
