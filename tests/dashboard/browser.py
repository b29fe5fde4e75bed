"""What the headless-Chromium dashboard tests share (Debian's chromium + chromium-driver, driven
by Selenium): polling a page until it shows something, reading a chart's points, signing in."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from tests.cli.support import ROOT

SCREENSHOTS = ROOT / "test-artifacts"
T = TypeVar("T")


def eventually(probe: Callable[[], T], timeout: float = 20, what: str = "the page") -> T:
    """Poll until probe() returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; last value {value!r}")
        time.sleep(0.2)


def chart_points(browser: Any, key: str) -> list[dict[str, Any]]:
    """Per dataset of one chart: its label, how many points it holds and how many it drew."""
    return browser.execute_script(
        """const c = window.trainlabCharts && window.trainlabCharts[arguments[0]];
        if (!c) return [];
        return c.data.datasets.map((d, i) => ({label: d.label, points: d.data.length,
            drawn: c.getDatasetMeta(i).data.filter(p => Number.isFinite(p.x) && Number.isFinite(p.y)).length}));""",
        key,
    )


def sign_in(browser: Any, url: str, token: str | None) -> Any:
    """Sign in with the token through the sign-in page (no token: the server has no auth)."""
    browser.get(f"{url}/login")
    if token:
        browser.find_element("id", "token").send_keys(token)
        browser.find_element("id", "sign-in").click()
        eventually(lambda: browser.execute_script("return document.body.dataset.page") == "list", what="the list")
    return browser
