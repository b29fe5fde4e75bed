"""What the experiment list shows of each run besides its record: its main metrics (from its
summary, or the last logged step while it has none) and its parameters (the spec's values), as
flat `{column: value}` maps a run table can pick columns from and sort by.

Everything here reads rows the list already loaded; the last logged steps of runs without a
summary come from one batched query (`MetricRepository.latest_of`), never one per row."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

# Numbers of a summary worth a column, by key (train, pinn, analytic runs).
SUMMARY_NUMBERS = (
    "final_loss",
    "validation_loss",
    "relative_l2_error",
    "max_abs_error",
    "value",
    "epochs_run",
    "best_epoch",
    "parameters",
    "training_seconds",
)
# Spec keys that name or describe a run rather than configure it (the table has them already).
NOT_PARAMETERS = frozenset({"name", "description", "spec_version", "kind"})
MAX_PARAMETERS = 80
MAX_TEXT = 60

Scalar = float | int | str | bool


def _number(value: Any) -> float | None:
    """A finite number (a k-fold's {mean, std} counts as its mean); None otherwise."""
    if isinstance(value, dict) and "mean" in value:
        value = value["mean"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _split_numbers(out: dict[str, float], split: str, values: Any) -> None:
    if not isinstance(values, dict):
        return
    for name, value in values.items():
        number = _number(value)
        if number is not None and name != "threshold":
            out[f"{split}.{name}"] = number


def summary_metrics(summary: dict[str, Any] | None) -> dict[str, float]:
    """A run's final metrics by column (`validation.loss`, `test.accuracy`, `relative_l2_error`...):
    the last epoch's values (`final`), the evaluated splits (a k-fold's means), the summary's own
    numbers, and a search's best value under its objective's name."""
    s = summary if isinstance(summary, dict) else {}
    out: dict[str, float] = {}
    final = s.get("final")
    if isinstance(final, dict):
        for split, values in final.items():
            _split_numbers(out, split, values)
    for split in ("validation", "test"):
        _split_numbers(out, split, s.get(split))
    for key in SUMMARY_NUMBERS:
        number = _number(s.get(key))
        if number is not None:
            out[key] = number
    best, objective = s.get("best"), s.get("objective")
    if isinstance(best, dict) and isinstance(objective, dict) and isinstance(objective.get("metric"), str):
        number = _number(best.get("value"))
        if number is not None:
            out.setdefault(objective["metric"], number)
    return out


def latest_metrics(rows: Iterable[tuple[str, str, float]]) -> dict[str, float]:
    """A run's last logged step as columns (`train.loss`, `validation.accuracy`...)."""
    return {f"{split}.{name}": value for split, name, value in rows if _number(value) is not None}


def _text(value: Any) -> Scalar | None:
    if value is None or isinstance(value, bool | int | float | str):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value[:MAX_TEXT] if isinstance(value, str) else value
    if isinstance(value, list):
        if all(isinstance(v, dict) and isinstance(v.get("step"), str) for v in value):  # preprocess steps
            return ", ".join(v["step"] for v in value)[:MAX_TEXT] or None
        if all(v is None or isinstance(v, bool | int | float | str) for v in value):
            return json.dumps(value)[:MAX_TEXT]
    return None


def spec_parameters(spec: dict[str, Any] | None) -> dict[str, Scalar]:
    """A spec's set values by dotted path (`train.optimizer.lr`, `model.type`, `model.hidden`
    as `[64, 64]`); unset (null) values and naming keys left out, at most MAX_PARAMETERS."""
    out: dict[str, Scalar] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if not prefix and key in NOT_PARAMETERS:
                    continue
                walk(value, f"{prefix}.{key}" if prefix else str(key))
            return
        value = _text(node)
        if value is not None and value != "" and len(out) < MAX_PARAMETERS:
            out[prefix] = value

    walk(spec if isinstance(spec, dict) else {}, "")
    return out
