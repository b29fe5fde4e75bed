"""`make examples`' screenshots (examples/screenshots.py) against a live server: every page it
knows is saved as a whole-page PNG after its data is drawn. Outside CI a missing browser skips;
in CI it fails."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from examples import screenshots
from tests.cli.support import analytic_search, fast_spec, live_service
from tests.services import unavailable
from trainlab.client import Client

pytestmark = pytest.mark.e2e


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_screenshots_show_each_page_whole(tmp_path: Path) -> None:
    if not (screenshots.CHROMIUM.exists() and screenshots.CHROMEDRIVER.exists()):
        unavailable("headless Chromium is missing: apt-get install -y chromium chromium-driver (make test does)")
    with live_service() as (service, token, _config), Client(service.url, token) as client:
        assert token
        train = client.wait(client.submit(fast_spec("shot-train", epochs=4)).id, poll=0.3, timeout=180)
        search = client.wait(client.submit(analytic_search("shot-search", trials=4)).id, poll=0.3, timeout=180)
        assert train.status == search.status == "succeeded"
        saved = screenshots.capture(
            service.url, token, {"quickstart": train.id, "search-tpe": search.id}, tmp_path / "shots"
        )
    assert [p.name for p in saved] == ["list.png", "train.png", "search.png"]  # no compare or k-fold ran
    for path in saved:
        width, height = png_size(path)
        assert width == screenshots.WIDTH and 300 < height <= screenshots.MAX_HEIGHT, (path.name, height)
    assert png_size(tmp_path / "shots" / "train.png")[1] > 1000  # the whole page, not one window of it
