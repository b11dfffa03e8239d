"""The observer's web view in headless Chromium: the MSC gains arrows live (W8), a
supervised crash shows on the tree page as a restart, and a hostile name is shown
as text and runs nothing (W4).

The tests share one container (module scope), in this order.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.webview import WebView

pytestmark = [pytest.mark.browser, pytest.mark.rabbitmq]

XSS = "<img src=x onerror=alert(1)>"
LIVE_WITHIN = 5.0  # s for a page's EventSource on /events to open
POLL = 0.05

# Every src and href, and every resource the page fetched, that is not of the page's origin.
EXTERNAL = """
const urls = [...document.querySelectorAll('[src],[href]')]
    .flatMap(e => [e.getAttribute('src'), e.getAttribute('href')]).filter(u => u !== null);
urls.push(...performance.getEntriesByType('resource').map(e => e.name));
return urls.filter(u => new URL(u, document.baseURI).origin !== location.origin);
"""
# The reader child's row: [pid, restarts, class], read at once (the page re-renders).
READER = """
const row = document.querySelector('#tree tr[data-child-id="reader"]');
return row && [row.dataset.pid, Number(row.dataset.restarts), row.className];
"""


def wait(driver: Any, timeout: float) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=POLL)


def open_live(driver: Any, web: WebView, path: str, page: str) -> None:
    """Load C{path}, check it is page C{page}, and wait until its stream is open."""
    from selenium.webdriver.common.by import By

    driver.get(web.url(path))
    assert driver.find_element(By.TAG_NAME, "body").get_attribute("data-page") == page
    wait(driver, LIVE_WITHIN).until(lambda d: d.find_element(By.ID, "live").text == "live")


def arcs(driver: Any) -> int:
    from selenium.webdriver.common.by import By

    return len(driver.find_elements(By.CSS_SELECTOR, "#chart svg#msc g.msg"))


def test_msc_gains_arrows_within_a_second_of_traffic(
    browser: Any, web: WebView, screenshot: Any
) -> None:
    """W8: / goes live and lists the container UP; calls from another process add
    arrows to the open /msc within 1 s."""
    from selenium.webdriver.common.by import By

    open_live(browser, web, "/", "system")
    rows = browser.find_elements(By.CSS_SELECTOR, f'#containers tr[data-cid="{web.cid}"]')
    assert [r.get_attribute("data-state") for r in rows] == ["UP"]
    open_live(browser, web, "/msc", "msc")
    before = arcs(browser)
    for n in range(2):
        done = web.rpc("hello", "hello", f'"browser {n}"')
        assert done.returncode == 0, done.stderr
    wait(browser, 1.0).until(lambda d: arcs(d) > before)
    screenshot(browser, "w8-msc")


def test_supervised_crash_shows_as_a_restart(browser: Any, web: WebView, screenshot: Any) -> None:
    """Killing the supervised worker 'reader' (POST /api/c/<cid>/kill) shows on the
    open tree page within 3 s: a new pid, ACTIVE, and one restart more, its
    supervisor not given up. Screenshots of /, the tree and /msc at that moment."""
    tree = f"/c/{web.cid}/tree"
    open_live(browser, web, tree, "tree")
    pid, restarts, kind = browser.execute_script(READER)
    assert "child" in kind.split()
    web.post(f"/api/c/{web.cid}/kill", {"pid": pid})

    def restarted(driver: Any) -> list[Any] | None:
        row = driver.execute_script(READER)
        return row if row and row[0] != pid and row[1] > restarts else None

    new_pid = wait(browser, 3.0).until(restarted)[0]
    states = {p["pid"]: p["state"] for p in web.get(f"/api/c/{web.cid}")["processes"]}
    assert states[new_pid] == "ACTIVE"
    pipeline = browser.execute_script(
        "return document.querySelector('#tree tr[data-child-id=\"pipeline\"]').className"
    ).split()
    assert "sup" in pipeline and "gaveup" not in pipeline
    screenshot(browser, "tree")
    for path, page in (("/", "system"), ("/msc", "msc")):
        open_live(browser, web, path, page)
        screenshot(browser, page)


def test_hostile_op_name_is_text_and_runs_nothing(browser: Any, web: WebView) -> None:
    """W4: an op named <img src=x onerror=alert(1)> (process and service names cannot
    hold '<') shows as that text on /msc; no page has such an img, opens an alert, or
    refers to another origin (/conversations lists open ones: this one has ended)."""
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    done = web.rpc("hello", XSS)
    assert done.returncode == 1, done.stderr  # hello has no such op: an error reply
    pages = {
        "/": "system",
        f"/c/{web.cid}": "container",
        f"/c/{web.cid}/tree": "tree",
        "/conversations": "conversations",
        "/msc": "msc",
        "/queues": "queues",
    }
    for path, page in pages.items():
        open_live(browser, web, path, page)
        if page == "msc":
            wait(browser, 1.0).until(lambda d: XSS in d.find_element(By.TAG_NAME, "body").text)
        images = browser.execute_script(
            "return [...document.images].filter(i => i.getAttribute('src') === 'x').length"
        )
        assert images == 0, path
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert  # noqa: B018
        assert browser.execute_script(EXTERNAL) == [], path
