"""What `show` and the end of `submit --wait` print for each kind (no server: real summaries from
runs in this process, read back as the client reads them, printed at 80 columns)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from trainlab.models import Experiment
from trainlab.render import SafeConsole, experiment_details
from trainlab.verdict import error_line, verdict_lines

MOONS = {"source": "synthetic/moons", "options": {"n_samples": 200, "noise": 0.2}}
TRAIN = {"epochs": 3, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.02}}


def train_spec(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "seed": 0,
        "data": MOONS,
        "model": {"hidden": [8]},
        "train": dict(TRAIN),
        "evaluate": {"plots": False},
    }


SPECS: dict[str, dict[str, Any]] = {
    "train": train_spec("clf"),
    "kfold": {**train_spec("k"), "data": {**MOONS, "split": {"folds": 3}}},
    "compare": {
        "kind": "compare",
        "name": "optimizers",
        "seed": 0,
        "base": train_spec("b"),
        "variants": [{"label": "sgd", "set": {"train.optimizer": {"name": "sgd", "lr": 0.0001}}}, {"label": "adam"}],
    },
    "search": {
        "kind": "search",
        "name": "s",
        "seed": 0,
        "base": {"kind": "analytic", "function": "quadratic"},
        "space": {"h1": {"type": "float", "low": -2, "high": 4}, "h2": {"type": "float", "low": -2, "high": 4}},
        "method": "random",
        "trials": 4,
        "parallel": 1,
    },
    "ensemble": {"kind": "ensemble", "name": "bag", "seed": 0, "base": train_spec("m"), "members": 2},
    "analytic": {"kind": "analytic", "name": "f", "function": "quadratic", "h1": 0.5, "h2": 1.0},
}


@pytest.fixture(scope="module")
def runs() -> dict[str, Experiment]:
    """Each spec run to the end in one in-process host, as the API would serve it."""
    from ml.local import LocalHost
    from ml.spec import experiment_kind, parse_spec

    host = LocalHost()
    out = {}
    for kind, spec in SPECS.items():
        run = host.run(spec)
        assert run.status == "succeeded", (kind, run.error)
        children = [host.experiments[c] for c in run.children]
        out[kind] = Experiment.from_dict(
            {
                "id": run.id,
                "name": run.name,
                "kind": experiment_kind(parse_spec(run.spec)),
                "status": run.status,
                "spec": run.spec,
                "summary": run.summary,
                "error": run.error,
                "children": [
                    {"id": c.id, "name": c.name, "kind": "train", "status": c.status, "parent_id": run.id}
                    for c in children
                ],
            }
        )
    return out


def printed(*renderables: Any, width: int = 80) -> str:
    out = io.StringIO()
    console = SafeConsole(file=out, width=width, color_system=None)
    for r in renderables:
        console.print(r)
    return out.getvalue()


def test_a_compare_ends_with_its_winner_and_names_variants_by_label(runs: dict[str, Experiment]) -> None:
    exp = runs["compare"]
    ranking = exp.summary["ranking"]
    text = printed(*verdict_lines(exp))
    assert f"winner: {exp.summary['best']}" in text
    assert "then 2. " in text and ranking[1]["label"] in text
    shown = printed(experiment_details(exp))
    assert "ranking by validation.loss" in shown
    # the children table names each child by its variant, brackets and all kept as text
    assert "[sgd]" not in shown.replace("optimizers [sgd]", "")  # never a half-eaten markup tag
    rows = [line for line in shown.splitlines() if "│ sgd " in line or "│ adam " in line]
    assert len(rows) >= 4, shown  # in the ranking and in the children table


def test_a_variant_label_that_looks_like_markup_is_printed_as_typed(runs: dict[str, Experiment]) -> None:
    raw = dict(runs["compare"].raw)
    summary = dict(raw["summary"])
    summary["ranking"] = [{**r, "label": f"[bold]{r['label']}[/bold]"} for r in summary["ranking"]]
    summary["best"] = summary["ranking"][0]["label"]
    exp = Experiment.from_dict({**raw, "summary": summary, "name": "cmp [sgd]"})
    text = printed(*verdict_lines(exp), experiment_details(exp))
    assert f"winner: {summary['best']}" in text and "cmp [sgd]" in text


def test_a_search_ends_with_its_best_trial_and_params(runs: dict[str, Experiment]) -> None:
    exp = runs["search"]
    text = printed(*verdict_lines(exp))
    best = exp.summary["best"]
    assert f"best: trial {best['trial']} (#{best['experiment']})" in text
    assert "params: h1=" in text and "trials: 4 complete of 4" in text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("train", "test: accuracy "),
        ("kfold", "validation over 3 folds: accuracy "),
        ("ensemble", "gain over the mean member: "),
        ("analytic", "quadratic(0.5000, 1.0000) = "),
    ],
)
def test_every_kind_ends_with_its_answer(runs: dict[str, Experiment], kind: str, expected: str) -> None:
    exp = runs[kind]
    text = printed(*verdict_lines(exp))
    assert text.startswith(f"experiment {exp.id} succeeded: ")
    assert expected in text
    if exp.diagnosis:
        assert f"diagnosis: {exp.diagnosis.verdict}" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    # `show` ends with the same block
    assert printed(experiment_details(exp)).rstrip().endswith(text.rstrip().splitlines()[-1])


def test_the_error_reason_is_not_said_twice() -> None:
    assert error_line("data", "data error: no column 'ill'") == "data error: no column 'ill'"
    assert error_line("pruned", "pruned: stopped at epoch 3") == "pruned: stopped at epoch 3"
    assert error_line("diverged", "loss is nan at epoch 3") == "diverged: loss is nan at epoch 3"
    assert error_line(None, "boom") == "error: boom"
