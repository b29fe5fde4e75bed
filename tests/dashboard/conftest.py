"""One live service (the embedded default with one worker) and one headless Chromium for every
browser test of the dashboard (they are slow to start on a shared machine). Outside CI a missing
browser skips; in CI it fails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from examples.browser import CHROMEDRIVER, CHROMIUM, headless_chromium
from tests.cli.support import live_service
from tests.dashboard.browser import sign_in
from tests.services import Service, unavailable
from trainlab.client import Client


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        unavailable("headless Chromium is missing: apt-get install -y chromium chromium-driver (make test does)")
    with headless_chromium(1400, 1800) as driver:
        yield driver


@pytest.fixture(scope="package")
def live() -> Iterator[tuple[Service, str | None]]:
    with live_service() as (service, token, _config):
        yield service, token


@pytest.fixture(scope="package")
def client(live: tuple[Service, str | None]) -> Iterator[Client]:
    service, token = live
    with Client(service.url, token) as c:
        yield c


@pytest.fixture
def signed_in(browser: Any, live: tuple[Service, str | None]) -> Any:
    """The browser signed in as the service's (non-admin) user, whatever the last test did."""
    service, token = live
    return sign_in(browser, service.url, token)
