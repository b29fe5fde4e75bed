"""The dashboard's reading views in headless Chromium against a live server with a real worker:
the run table (metric and parameter columns, sorting, the choice remembered), who is signed in
and an admin's owner column, a search's Optuna-style views, a PINN's single values and ≈0 terms,
and plot thumbnails that open full size."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.support import analytic_search, fast_spec
from tests.dashboard.browser import SCREENSHOTS, chart_points, eventually, sign_in
from tests.services import Service
from trainlab.client import Client, Experiment

pytestmark = pytest.mark.e2e

PINN = {
    "kind": "pinn",
    "name": "dash-pinn",
    "network": {"hidden": [8, 8], "periodic_embedding": True},  # the boundary terms hold exactly: ~1e-32
    "collocation": {"interior": 64, "initial": 16, "boundary": 8},
    "optimizer": {"adam_steps": 4, "lbfgs_steps": 2},
    "log_every": 2,
    "evaluation_grid": {"nx": 11, "nt": 6},
}


@pytest.fixture(scope="module")
def table_runs(client: Client) -> list[Experiment]:
    """Three runs: lr 0.01 with batches of 8, lr 0.2 with 16, the optimizer's default lr with 128."""
    specs = [
        fast_spec("table-a", epochs=2, batch_size=8, optimizer={"name": "sgd", "lr": 0.01}),
        fast_spec("table-b", epochs=2, batch_size=16, optimizer={"name": "sgd", "lr": 0.2}),
        fast_spec("table-c", epochs=2, batch_size=128),
    ]
    ids = [client.submit(spec).id for spec in specs]
    runs = [client.wait(i, poll=0.3, timeout=180) for i in ids]
    assert all(r.status == "succeeded" for r in runs), [r.error for r in runs]
    return runs


def names_in_order(browser: Any) -> list[str]:
    return [r.find_element("css selector", 'td[data-column="name"]').text for r in rows(browser)]


def rows(browser: Any) -> list[Any]:
    return browser.find_elements("css selector", "#experiments tbody tr[data-id]")


def header(browser: Any, column: str) -> list[Any]:
    return browser.find_elements("css selector", f'#experiments thead th[data-column="{column}"]')


def open_table(browser: Any, url: str, count: int) -> None:
    browser.get(f"{url}/?name=table-")
    eventually(lambda: len(rows(browser)) == count, what=f"{count} rows")


def test_the_run_table_shows_chosen_columns_and_sorts_them(
    signed_in: Any, live: tuple[Service, str | None], table_runs: list[Experiment]
) -> None:
    service, _ = live
    signed_in.get(f"{service.url}/")
    signed_in.execute_script("localStorage.clear()")
    open_table(signed_in, service.url, 3)
    # by default: the validation loss and the learning rate, where a row has them
    eventually(lambda: header(signed_in, "metric:validation.loss"), what="the validation loss column")
    assert header(signed_in, "param:train.optimizer.lr")
    for run in table_runs:
        row = signed_in.find_element("css selector", f'tr[data-id="{run.id}"]')
        shown = row.find_element("css selector", 'td[data-column="metric:validation.loss"]').text
        assert float(shown) == pytest.approx(run.summary["final"]["validation"]["loss"], abs=6e-5)

    # choose a metric column in the picker: it shows, and stays after a reload
    signed_in.find_element("css selector", "#column-picker summary").click()
    signed_in.find_element("css selector", 'input[data-column="metric:test.f1"]').click()
    eventually(lambda: header(signed_in, "metric:test.f1"), what="the chosen column")
    for run in table_runs:
        cell = signed_in.find_element("css selector", f'tr[data-id="{run.id}"] td[data-column="metric:test.f1"]')
        assert float(cell.text) == pytest.approx(run.summary["test"]["f1"], abs=6e-5)
    open_table(signed_in, service.url, 3)
    assert header(signed_in, "metric:test.f1") and header(signed_in, "metric:validation.loss")

    # sort by a parameter: numbers as numbers (8 < 16 < 128, not "128" < "16" < "8"), then reversed
    signed_in.find_element("css selector", "#column-picker summary").click()
    signed_in.find_element("css selector", 'input[data-column="param:train.batch_size"]').click()
    eventually(lambda: header(signed_in, "param:train.batch_size"), what="the batch size column")
    header(signed_in, "param:train.batch_size")[0].click()
    eventually(lambda: names_in_order(signed_in) == ["table-a", "table-b", "table-c"], what="ascending")
    assert header(signed_in, "param:train.batch_size")[0].get_attribute("aria-sort") == "ascending"
    header(signed_in, "param:train.batch_size")[0].click()
    eventually(lambda: names_in_order(signed_in) == ["table-c", "table-b", "table-a"], what="descending")
    # a missing value (table-c's lr is the optimizer's default, not in its spec) is last both ways
    header(signed_in, "param:train.optimizer.lr")[0].click()
    eventually(lambda: names_in_order(signed_in) == ["table-a", "table-b", "table-c"], what="lr ascending")
    header(signed_in, "param:train.optimizer.lr")[0].click()
    eventually(lambda: names_in_order(signed_in) == ["table-b", "table-a", "table-c"], what="lr descending")
    # the sort survives the 2 s refresh and a reload
    open_table(signed_in, service.url, 3)
    eventually(lambda: names_in_order(signed_in) == ["table-b", "table-a", "table-c"], what="the kept sort")
    SCREENSHOTS.mkdir(exist_ok=True)
    signed_in.save_screenshot(str(SCREENSHOTS / "dashboard-run-table.png"))
    signed_in.execute_script("localStorage.clear()")


def test_the_header_says_who_is_signed_in_and_an_admin_sees_owners(
    signed_in: Any, live: tuple[Service, str | None], table_runs: list[Experiment]
) -> None:
    service, _ = live
    open_table(signed_in, service.url, 3)
    whoami = eventually(lambda: signed_in.find_element("id", "whoami").text, what="signed in as")
    assert whoami == "signed in as tester"  # the service's user, not an admin
    assert not header(signed_in, "owner")
    admin = service.create_user("boss", True)
    sign_in(signed_in, service.url, admin)
    open_table(signed_in, service.url, 3)
    assert eventually(lambda: signed_in.find_element("id", "whoami").text) == "signed in as boss (admin)"
    eventually(lambda: header(signed_in, "owner"), what="the owner column")
    owners = {r.find_element("css selector", 'td[data-column="owner"]').text for r in rows(signed_in)}
    assert owners == {"tester"}


def test_a_search_draws_history_importances_and_parallel_coordinates(
    signed_in: Any, live: tuple[Service, str | None], client: Client
) -> None:
    service, _ = live
    spec = analytic_search("dash-search-views", trials=6)
    spec["space"]["h1"] = {"type": "float", "low": 0.01, "high": 3, "log": True}
    search = client.wait(client.submit(spec).id, poll=0.3, timeout=180)
    assert search.status == "succeeded", search.error
    trials = search.summary["trials"]
    complete = [t for t in trials if t["state"] == "complete"]
    signed_in.get(f"{service.url}/experiments/{search.id}")
    history = eventually(lambda: chart_points(signed_in, "trials"), what="the optimization history")
    assert [(d["label"], d["points"]) for d in history] == [("trial", len(complete)), ("best so far", len(complete))]
    importances = eventually(lambda: chart_points(signed_in, "importances"), what="the importances")
    assert importances[0]["points"] == importances[0]["drawn"] == len(search.summary["importances"]) == 2
    labels = signed_in.execute_script("return window.trainlabCharts.importances.data.labels")
    ranked = sorted(search.summary["importances"].items(), key=lambda kv: -kv[1])
    assert [label.split(" ")[0] for label in labels] == [name for name, _ in ranked]  # most important on top
    # parallel coordinates: an axis per parameter and the objective, a line per complete trial
    axes = eventually(lambda: signed_in.find_elements("css selector", "#parallel svg g.axis"), what="the axes")
    scales = {a.get_attribute("data-param"): a.get_attribute("data-scale") for a in axes}
    assert scales == {"h1": "log", "h2": "linear", "value": "linear"}  # h1's space is log-scaled
    lines = signed_in.find_elements("css selector", "#parallel svg path.trial")
    assert len(lines) == len(complete) == 6
    best = signed_in.find_element("css selector", "#parallel svg path.trial.best")
    assert best.get_attribute("data-trial") == str(search.summary["best"]["trial"])
    # every child stays reachable, best first
    children = signed_in.find_elements("css selector", "#children tbody tr td:first-child a")
    assert len(children) == len(search.children) and children[0].text == f"#{search.summary['best']['experiment']}"
    SCREENSHOTS.mkdir(exist_ok=True)
    signed_in.save_screenshot(str(SCREENSHOTS / "dashboard-search.png"))


@pytest.fixture(scope="module")
def pinn(client: Client) -> Experiment:
    run = client.wait(client.submit(PINN).id, poll=0.3, timeout=240)
    assert run.status == "succeeded", run.error
    return run


def test_a_pinn_shows_single_values_as_values_and_exact_terms_as_zero(
    signed_in: Any, live: tuple[Service, str | None], client: Client, pinn: Experiment
) -> None:
    service, _ = live
    signed_in.get(f"{service.url}/experiments/{pinn.id}")
    loss = eventually(lambda: chart_points(signed_in, "experiment:loss"), what="the loss chart")
    steps = len(client.metrics(pinn.id, name="loss", split="train"))
    assert loss[0]["points"] == loss[0]["drawn"] == steps > 1
    value = eventually(
        lambda: signed_in.find_elements("css selector", '#curve-values tr[data-metric="relative_l2_error"]'),
        what="the error as a value",
    )[0]
    assert float(value.find_elements("tag name", "td")[2].text) == pytest.approx(
        pinn.summary["relative_l2_error"], rel=1e-3
    )
    assert not chart_points(signed_in, "experiment:relative_l2_error")  # no one-point chart
    boundary = [m.value for m in client.metrics(pinn.id, name="loss_boundary", split="train")]
    assert len(boundary) > 1 and max(abs(v) for v in boundary) < 1e-12  # the case in point
    row = signed_in.find_element("css selector", '#curve-values tr[data-metric="loss_boundary"]')
    assert "≈0 (below 1e-12)" in row.text and row.get_attribute("data-shape") == "tiny"
    assert not chart_points(signed_in, "experiment:loss_boundary")
    SCREENSHOTS.mkdir(exist_ok=True)
    signed_in.save_screenshot(str(SCREENSHOTS / "dashboard-pinn.png"))


def test_a_plot_thumbnail_opens_the_plot_full_size(
    signed_in: Any, live: tuple[Service, str | None], pinn: Experiment
) -> None:
    service, _ = live
    signed_in.get(f"{service.url}/experiments/{pinn.id}")
    link = eventually(
        lambda: signed_in.find_elements("css selector", '#plots a[href*="pinn_solution.png"] img'), what="thumbnail"
    )[0].find_element("xpath", "..")
    href = link.get_attribute("href")
    assert "inline=true" in href and link.get_attribute("target") == "_blank"
    page = signed_in.current_window_handle
    link.click()
    eventually(lambda: len(signed_in.window_handles) == 2, what="a new tab")
    signed_in.switch_to.window([w for w in signed_in.window_handles if w != page][0])
    try:
        eventually(lambda: signed_in.execute_script("return document.contentType") == "image/png", what="the image")
        width = eventually(lambda: signed_in.execute_script("return document.images[0].naturalWidth"), what="drawn")
    finally:
        signed_in.close()
        signed_in.switch_to.window(page)
    thumbnail = signed_in.execute_script(
        "return document.querySelector('#plots img[alt=\"pinn_solution.png\"]').naturalWidth"
    )
    assert width == thumbnail > 100  # the same image, at its own size
