"""The dashboard's pages, sign-in and static files, in process on each database backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from tests.cli.support import ROOT


def anonymous(api_env: Path) -> TestClient:
    """A browser on our own pages with no token yet (the shared `client` fixture sends one); like
    a browser, it says which page a form or script request comes from (Origin)."""
    from api.main import create_app

    return TestClient(create_app(), follow_redirects=False, headers={"Origin": "http://testserver"})


def test_pages_render_their_frame_with_filters_and_scripts(api_env: Path) -> None:
    with anonymous(api_env) as browser:
        listing = browser.get("/", params={"status": "running", "name": "<script>x</script>"})
        assert listing.status_code == 200 and listing.headers["content-type"].startswith("text/html")
        assert 'data-page="list"' in listing.text and '<option value="running" selected>' in listing.text
        assert "<script>x</script>" not in listing.text and "&lt;script&gt;" in listing.text
        scripts = ("chart.umd.min.js", "dashboard.js", "runtable.js", "experiment.js", "search.js")
        for script in scripts:
            assert f'src="/static/{script}"' in listing.text
            assert browser.get(f"/static/{script}").status_code == 200, script
        page = browser.get("/experiments/7")
        assert page.status_code == 200 and 'data-experiment-id="7"' in page.text
        compare = browser.get("/compare", params={"ids": "3,4,3"})
        assert 'data-experiment-ids="3,4"' in compare.text
        assert browser.get("/compare", params={"ids": "3,x"}).status_code == 422
        assert browser.get("/experiments/x").status_code == 422


def test_static_files_are_shipped_and_nothing_else_is_served(api_env: Path) -> None:
    with anonymous(api_env) as browser:
        chart = browser.get("/static/chart.umd.min.js")
        assert chart.status_code == 200 and chart.headers["content-type"].startswith("text/javascript")
        assert chart.text.startswith("/*!\n * Chart.js v4") and "MIT License" in chart.text[:300]
        assert browser.get("/static/dashboard.css").headers["content-type"].startswith("text/css")
        for bad in ("missing.js", "..%2Fdashboard.py", ".hidden", "%2e%2e%2fmain.py"):
            assert browser.get(f"/static/{bad}").status_code == 404, bad


def test_sign_in_keeps_the_token_in_an_http_only_cookie_the_api_accepts(api_env: Path) -> None:
    from trainlab.admin import create_user

    token = create_user("dashboard-user")
    with anonymous(api_env) as browser:
        assert browser.get("/api/v1/experiments").status_code == 401
        assert 'name="token"' in browser.get("/login").text
        signed = browser.post("/login", data={"token": token, "next": "/experiments/3"})
        assert signed.status_code == 303 and signed.headers["location"] == "/experiments/3"
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith(f"trainlab_token={token};")
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert browser.get("/api/v1/experiments").status_code == 200  # the cookie alone
        out = browser.post("/logout")
        assert out.status_code == 303 and 'trainlab_token=""' in out.headers["set-cookie"]
        assert browser.get("/api/v1/experiments").status_code == 401


def test_sign_in_refuses_what_is_not_a_token_and_never_redirects_off_site(api_env: Path) -> None:
    with anonymous(api_env) as browser:
        refused = browser.post("/login", data={"token": "password123"})
        assert refused.status_code == 400 and "starts with tl_" in refused.text
        assert "set-cookie" not in refused.headers
        for target in ("//evil.example/x", "https://evil.example", "/\\evil.example"):
            signed = browser.post("/login", data={"token": "tl_abcdefgh", "next": target})
            assert signed.headers["location"] == "/", target


def test_the_api_process_never_imports_torch() -> None:
    code = "import sys, api.main; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=120).returncode == 0
