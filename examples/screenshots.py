"""Dashboard screenshots for the README, taken by `make examples` in headless Chromium (Debian's
chromium + chromium-driver, driven by Selenium as in tests/dashboard) once the examples have run
on its service: the run table (the list), a train run, a compare, a search (its history,
parameter importances and parallel coordinates), a k-fold and a PINN, each the whole page.

Written to docs/screenshots/<page>.png; a page whose example did not run is left as it was.
Without Chromium it says so and takes none (the examples still count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from examples.browser import CHROMEDRIVER, CHROMIUM, headless_chromium

WIDTH, MAX_HEIGHT = 1280, 2600
# screenshot name -> the example whose experiment page it shows (None: the list)
PAGES: dict[str, str | None] = {
    "list": None,
    "train": "quickstart",
    "compare": "optimizers-compare",
    "search": "search-tpe",
    "kfold": "kfold",
    "pinn": "pinn-heat",
}


def _eventually(probe: Callable[[], Any], timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def _settled(driver: Any, page: str) -> None:
    """Wait for the page's data: its rows or charts drawn, its images loaded, animations over."""
    _eventually(lambda: driver.execute_script("return document.readyState") == "complete")
    if page == "list":
        _eventually(lambda: driver.find_elements("css selector", "#experiments tr[data-id]"))
    else:
        _eventually(lambda: driver.execute_script("return Object.keys(window.trainlabCharts || {}).length > 0"))
    _eventually(lambda: driver.execute_script("return [...document.images].every(i => i.complete)"), timeout=10)
    time.sleep(1.5)  # Chart.js animations and the first refresh


def capture(url: str, token: str, experiments: dict[str, int], out: Path) -> list[Path]:
    """Sign in with the token and save each page of PAGES whose example ran; returns the files."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        print("screenshots: no headless Chromium (apt-get install -y chromium chromium-driver): none taken")
        return []
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    with headless_chromium(WIDTH, 1000, "--hide-scrollbars", prefix="trainlab-screenshots-") as driver:
        driver.get(f"{url}/login")
        driver.find_element("id", "token").send_keys(token)
        driver.find_element("id", "sign-in").click()
        _eventually(lambda: driver.execute_script("return document.body.dataset.page") == "list")
        for name, example in PAGES.items():
            if example is not None and example not in experiments:
                continue
            driver.set_window_size(WIDTH, 1000)
            driver.get(f"{url}/" if example is None else f"{url}/experiments/{experiments[example]}")
            _settled(driver, name)
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(WIDTH, min(MAX_HEIGHT, int(height) + 20))
            time.sleep(0.5)
            path = out / f"{name}.png"
            driver.save_screenshot(str(path))
            saved.append(path)
            print(f"screenshot {path.relative_to(out.parent.parent) if out.parent.parent in path.parents else path}")
    return saved
