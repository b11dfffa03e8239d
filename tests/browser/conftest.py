"""The browser tier: the system's headless Chromium, driven with Selenium, against the
observer's web view of a container run as an OS process on RabbitMQ.

It needs /usr/bin/chromium and /usr/bin/chromedriver (scripts/install_browser) and
selenium (the test extras); without them its tests skip, or fail when C{$CI} is set.
Nothing is downloaded: the driver's path is given, so Selenium Manager never runs.
Screenshots go to C{$ION_SCREENSHOTS}, else a temporary directory; the summary names it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from ion.test.brokers import on_ci, unique_sysname
from tests.browser.summary import SHOT, TIER
from tests.browser.webview import WebView
from tests.rabbit import delete_systems, require_rabbitmq

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",  # tests may run as root
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Without these Chromium keeps dialling Google's hosts.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # A page kept in the back-forward cache keeps its /events stream open, and after
    # six of them (the browser's connections per origin) the next page cannot load.
    "--disable-back-forward-cache",
    "--window-size=1200,800",
)

_current: pytest.Item | None = None  # the test running now (its screenshots go in its report)


def unavailable() -> str | None:
    """Why the browser cannot run here, or None."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return f"{' and '.join(missing)} missing: run scripts/install_browser"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


def require_browser() -> None:
    """Skip the test without a browser; fail it instead when C{$CI} is set."""
    reason = unavailable()
    if reason is not None:
        if on_ci():
            pytest.fail(f"{reason} (and CI is set, so this is a failure)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium (a Selenium C{WebDriver}) with a fresh profile."""
    require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager, were it asked, fetches nothing
    home = tmp_path_factory.mktemp("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={home}", f"--disk-cache-dir={home / 'cache'}"):
        options.add_argument(flag)
    # Its caches and settings in the temporary directory too, not the user's home.
    env = {**os.environ, "XDG_CACHE_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
    service = Service(executable_path=CHROMEDRIVER, env=env)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(10)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebView]:
    """A container of a fresh system on RabbitMQ serving the web view (actions on), with
    the supervised app (a three-level tree of workers) and the hello service; what the
    system declared is deleted afterwards."""
    require_browser()  # no container for tests that will not run
    require_rabbitmq()
    sysname = unique_sysname("web")
    try:
        view = WebView(tmp_path_factory.mktemp("web"), sysname, "supervised.app", "hello.app")
        yield view
        view.stop()
    finally:  # also when it failed to start, having declared some of it
        # The service's queue is shared, so it outlives the container.
        done = delete_systems({sysname}, {f"{sysname}.hello"})
        pytest_twisted.blockon(Deferred.fromCoroutine(done))


@pytest.fixture(scope="session")
def screenshot(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Path]:
    """C{screenshot(driver, name)}: save the page as C{name}.png; its path."""
    given = os.environ.get("ION_SCREENSHOTS")
    folder = Path(given) if given else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def save(driver: Any, name: str) -> Path:
        path = folder / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"no screenshot saved at {path}"
        if _current is not None:  # the summary learns of it from the test's report
            _current.user_properties.append((SHOT, str(path)))
        print(f"screenshot: {path}")
        return path

    return save


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    global _current
    _current = item
    if item.get_closest_marker("browser") is not None:
        item.user_properties.append((TIER, True))  # so each of its reports says so
    try:
        return (yield)
    finally:
        _current = None
