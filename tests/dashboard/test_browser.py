"""The dashboard end to end in headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium) against a live server with a real worker. Outside CI a missing browser skips; in CI it
fails. The last screenshot is saved as test-artifacts/dashboard.png. The service, the browser and
the sign-in are conftest's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.support import analytic_search, auth_enforced, fast_spec, long_spec
from tests.dashboard.browser import SCREENSHOTS, chart_points, eventually
from tests.services import Service
from trainlab.client import Client, Experiment

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def finished(client: Client) -> Experiment:
    created = client.submit(fast_spec("dash-finished", epochs=8, optimizer={"name": "adam", "lr": 0.01}))
    final = client.wait(created.id, poll=0.3, timeout=180)
    assert final.status == "succeeded", final.error
    return final


def test_the_list_shows_experiments_with_status_and_filters(
    signed_in: Any, live: tuple[Service, str | None], finished: Experiment
) -> None:
    service, _ = live
    signed_in.get(f"{service.url}/?status=succeeded")
    row = eventually(
        lambda: signed_in.find_elements("css selector", f'#experiments tr[data-id="{finished.id}"]'), what="the row"
    )[0]
    assert "dash-finished" in row.text and "succeeded" in row.text
    assert signed_in.find_element("name", "status").get_attribute("value") == "succeeded"
    signed_in.get(f"{service.url}/?status=failed")
    eventually(lambda: "no experiments match" in signed_in.find_element("id", "experiments").text, what="empty")


def test_a_finished_experiment_shows_curves_diagnosis_and_plots(
    signed_in: Any, live: tuple[Service, str | None], client: Client, finished: Experiment
) -> None:
    service, _ = live
    signed_in.get(f"{service.url}/")
    link = eventually(lambda: signed_in.find_elements("link text", f"#{finished.id}"), what="the link")[0]
    link.click()
    loss = eventually(lambda: chart_points(signed_in, "experiment:loss"), what="the loss chart")
    epochs = finished.summary["epochs_run"]
    assert {d["label"]: d["points"] for d in loss} == {"train": epochs, "validation": epochs}
    assert all(d["drawn"] == d["points"] for d in loss), loss
    stored = client.metrics(finished.id, name="loss", split="validation")
    shown = signed_in.execute_script("return window.trainlabCharts['experiment:loss'].data.datasets[1].data")
    assert [p["y"] for p in shown] == pytest.approx([m.value for m in stored])
    verdict = signed_in.find_element("id", "verdict").text
    assert finished.diagnosis is not None and verdict == finished.diagnosis.verdict
    assert f"device {finished.summary['device']}" in signed_in.find_element("id", "summary").text  # where it ran
    advice = signed_in.find_elements("css selector", "#diagnosis .advice li")
    assert [a.text for a in advice] == finished.diagnosis.advice
    images = eventually(lambda: signed_in.find_elements("css selector", "#plots img"), what="the plots")
    alts = {img.get_attribute("alt") for img in images}
    assert {"roc.png", "pr.png", "learning_curves.png", "confusion_matrix.png"} <= alts
    eventually(
        lambda: signed_in.execute_script("return [...document.images].every(i => i.complete && i.naturalWidth > 0)"),
        what="the plots to load",
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    signed_in.save_screenshot(str(SCREENSHOTS / "dashboard-finished.png"))


def test_a_running_experiment_updates_live(signed_in: Any, live: tuple[Service, str | None], client: Client) -> None:
    service, _ = live
    running = client.submit(long_spec("dash-running"))
    try:
        eventually(lambda: len(client.metrics(running.id, name="loss")) >= 2, timeout=90, what="first epochs")
        signed_in.get(f"{service.url}/experiments/{running.id}")
        first = eventually(lambda: chart_points(signed_in, "experiment:loss"), what="the loss chart")
        state = signed_in.find_element("id", "state")
        assert "running" in state.text
        grown = eventually(
            lambda: (pts := chart_points(signed_in, "experiment:loss")) and pts[0]["points"] > first[0]["points"],
            timeout=30,
            what="the chart to grow",
        )
        assert grown
        SCREENSHOTS.mkdir(exist_ok=True)
        signed_in.save_screenshot(str(SCREENSHOTS / "dashboard.png"))
        signed_in.find_element("id", "cancel").click()
        eventually(lambda: "cancelled" in signed_in.find_element("id", "state").text, timeout=30, what="cancelled")
    finally:
        client.cancel(running.id)


def test_compare_overlays_the_curves_of_two_experiments(
    signed_in: Any, live: tuple[Service, str | None], client: Client, finished: Experiment
) -> None:
    service, _ = live
    other = client.wait(client.submit(fast_spec("dash-other", epochs=4)).id, poll=0.3, timeout=120)
    signed_in.get(f"{service.url}/compare?ids={finished.id},{other.id}")
    curves = eventually(lambda: chart_points(signed_in, "compare:validation loss"), what="the compare chart")
    assert [d["points"] for d in curves] == [finished.summary["epochs_run"], other.summary["epochs_run"]]
    assert [d["label"] for d in curves] == [f"#{finished.id} dash-finished", f"#{other.id} dash-other"]
    # learning rates span decades: their chart has a log scale
    eventually(lambda: chart_points(signed_in, "compare:train lr"), what="the lr chart")
    assert signed_in.execute_script("return window.trainlabCharts['compare:train lr'].options.scales.y.type") == (
        "logarithmic"
    )
    diff = signed_in.find_element("id", "spec-diff").text
    assert "train.epochs" in diff and "train.optimizer.lr" in diff


def test_a_fan_out_parent_shows_its_children_and_their_curves(
    signed_in: Any, live: tuple[Service, str | None], client: Client
) -> None:
    service, _ = live
    spec = fast_spec("dash-kfold", epochs=3)
    spec["data"]["split"] = {"test": 0.2, "folds": 2, "stratify": True}
    parent = client.wait(client.submit(spec).id, poll=0.3, timeout=240)
    assert parent.status == "succeeded", parent.error
    signed_in.get(f"{service.url}/experiments/{parent.id}")
    eventually(lambda: "2/2 done" in signed_in.find_element("id", "children-title").text, what="the folds")
    rows = signed_in.find_elements("css selector", "#children tbody tr")
    assert [r.find_element("tag name", "a").text for r in rows] == [f"#{c.id}" for c in parent.children]
    curves = eventually(lambda: chart_points(signed_in, "children:loss"), what="the folds' curves")
    assert [d["label"] for d in curves] == ["fold 1/2", "fold 2/2"]  # by fold, not by id
    assert all(d["points"] == d["drawn"] > 0 for d in curves)
    assert "± " in signed_in.find_element("id", "summary").text  # mean ± std over the folds
    # the list shows top-level experiments; the folds only with "children too"
    signed_in.get(f"{service.url}/?name=dash-kfold")
    eventually(lambda: signed_in.find_elements("css selector", f'#experiments tr[data-id="{parent.id}"]'), what="row")
    shown = {r.get_attribute("data-id") for r in signed_in.find_elements("css selector", "#experiments tbody tr")}
    assert shown == {str(parent.id)}
    signed_in.get(f"{service.url}/?name=dash-kfold&children=1")
    child = parent.children[0].id
    eventually(lambda: signed_in.find_elements("css selector", f'#experiments tr[data-id="{child}"]'), what="a fold")
    assert signed_in.find_element("id", "children-too").is_selected()


def test_a_compare_shows_its_winner_and_labels_curves_by_variant(
    signed_in: Any, live: tuple[Service, str | None], client: Client
) -> None:
    service, _ = live
    base = fast_spec("base", epochs=4)
    spec = {
        "kind": "compare",
        "name": "dash-compare",
        "seed": 0,
        "base": {k: v for k, v in base.items() if k != "name"},
        "variants": [
            {"label": "sgd", "set": {"train.optimizer": {"name": "sgd", "lr": 0.0001}}},
            {"label": "adam", "set": {"train.optimizer": {"name": "adam", "lr": 0.01}}},
        ],
    }
    parent = client.wait(client.submit(spec).id, poll=0.3, timeout=240)
    assert parent.status == "succeeded", parent.error
    ranking = sorted(parent.summary["ranking"], key=lambda r: r["rank"])
    signed_in.get(f"{service.url}/experiments/{parent.id}")
    winner = eventually(lambda: signed_in.find_elements("id", "winner"), what="the winner")[0]
    assert f"winner: {parent.summary['best']}" in winner.text
    rows = signed_in.find_elements("css selector", "#answer tbody tr")
    assert [r.find_elements("tag name", "td")[1].text for r in rows] == [r["label"] for r in ranking]
    curves = eventually(lambda: chart_points(signed_in, "children:loss"), what="the variants' curves")
    assert [d["label"] for d in curves] == [r["label"] for r in ranking]  # by variant, best first
    children = [r.text for r in signed_in.find_elements("css selector", "#children tbody tr td:nth-child(2)")]
    assert children == [r["label"] for r in ranking]


def test_a_search_shows_its_trials_and_history(
    signed_in: Any, live: tuple[Service, str | None], client: Client
) -> None:
    service, _ = live
    search = client.wait(client.submit(analytic_search("dash-search", trials=6)).id, poll=0.3, timeout=180)
    assert search.status == "succeeded", search.error
    signed_in.get(f"{service.url}/experiments/{search.id}")
    history = eventually(lambda: chart_points(signed_in, "trials"), what="the search history")
    assert [d["label"] for d in history] == ["trial", "best so far"]
    assert [d["points"] for d in history] == [6, 6]
    best = signed_in.execute_script("return window.trainlabCharts.trials.data.datasets[1].data.at(-1).y")
    assert best == pytest.approx(search.summary["best"]["value"])
    rows = signed_in.find_elements("css selector", "#trials tbody tr")
    assert len(rows) == 6 and "params.h1" in signed_in.find_element("id", "trials").text
    states = signed_in.find_elements("css selector", "#trials tbody .status")
    assert len(states) == 6 and all(s.text == "complete" for s in states)  # a badge, coloured by state
    best = search.summary["best"]
    assert f"best: trial {best['trial']}" in signed_in.find_element("id", "winner").text
    assert "6 complete, 0 pruned, 0 failed" in signed_in.find_element("id", "answer").text


def test_without_a_token_the_pages_send_you_to_sign_in(browser: Any, live: tuple[Service, str | None]) -> None:
    service, _ = live
    assert auth_enforced(service)
    browser.delete_all_cookies()
    browser.get(f"{service.url}/")
    eventually(lambda: "/login" in browser.current_url, what="the sign-in page")
    browser.find_element("id", "token").send_keys("tl_not-a-real-token")
    browser.find_element("id", "sign-in").click()
    # The page already says why it was opened; wait for the answer to the token just typed.
    error = eventually(
        lambda: "refused" in (text := browser.find_element("id", "login-error").text) and text, what="the refusal"
    )
    assert "refused this token" in error and "/login" in browser.current_url
