"""Plots of a search as PNG bytes: the optimization history and the parallel coordinates.

matplotlib's object API (`Figure` + `FigureCanvasAgg`), never pyplot, as in `ml.plots`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ml.spec.search import CategoricalParam, FloatParam, IntParam

DPI = 100
MARKERS = {"complete": ("o", "tab:blue"), "pruned": ("x", "tab:orange")}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    FigureCanvasAgg(fig).print_png(buffer)
    return buffer.getvalue()


def optimization_history_png(rows: Sequence[Mapping[str, Any]], direction: str, metric: str, title: str) -> bytes:
    """Each trial's objective against its number, and the best value so far.

    Args:
        rows: the search summary's trial rows (trial, state, value, last_value).
        direction: minimize or maximize (which way "best so far" goes).
        metric: the objective's name, for the axis.
        title: the figure's title.

    Returns:
        The PNG file's bytes. Pruned trials are drawn at their last reported value.
    """
    fig = Figure(figsize=(6.4, 4.0), dpi=DPI)
    ax = fig.add_subplot()
    ordered = sorted(rows, key=lambda r: r["trial"])
    for state, (marker, color) in MARKERS.items():
        key = "value" if state == "complete" else "last_value"
        points = [(r["trial"], r.get(key)) for r in ordered if r["state"] == state and r.get(key) is not None]
        if points:
            trial_numbers, values = zip(*points, strict=True)
            ax.scatter(trial_numbers, values, marker=marker, color=color, label=f"{state} ({len(points)})", zorder=3)
    best = None
    xs: list[Any] = []
    ys: list[Any] = []
    pick = min if direction == "minimize" else max
    for r in ordered:
        if r["state"] == "complete" and r.get("value") is not None:
            best = r["value"] if best is None else pick(best, r["value"])
        if best is not None:
            xs.append(r["trial"])
            ys.append(best)
    if xs:
        ax.step(xs, ys, where="post", color="tab:red", label=f"best so far: {ys[-1]:.4g}")
    positive = [v for v in ys if v is not None and v > 0]
    if positive and direction == "minimize" and max(positive) / max(min(positive), 1e-300) > 1e3:
        ax.set_yscale("log")
    failed = sum(1 for r in rows if r["state"] == "failed")
    ax.set_xlabel("trial" + (f"  ({failed} failed, not shown)" if failed else ""))
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return _png(fig)


def _position(param: Any, value: Any) -> float:
    """A parameter value on [0, 1] along its axis (log ranges on a log scale)."""
    if isinstance(param, CategoricalParam):
        index = [repr(c) for c in param.choices].index(repr(value))
        return index / max(1, len(param.choices) - 1)
    assert isinstance(param, FloatParam | IntParam)
    low, high, v = float(param.low), float(param.high), float(value)
    if high == low:
        return 0.5
    if param.log:
        low, high, v = math.log(low), math.log(high), math.log(v)
    return (v - low) / (high - low)


def parallel_coordinates_png(
    rows: Sequence[Mapping[str, Any]], space: Mapping[str, Any], metric: str, direction: str, title: str
) -> bytes:
    """One line per complete trial across one axis per parameter, coloured by its objective.

    Args:
        rows: the search summary's trial rows.
        space: the search space (path -> parameter spec), for the axes' ranges.
        metric: the objective's name.
        direction: minimize or maximize (the best trials are drawn brightest, on top).
        title: the figure's title.

    Returns:
        The PNG file's bytes.
    """
    complete = [r for r in rows if r["state"] == "complete" and r.get("value") is not None]
    values = np.array([r["value"] for r in complete], dtype=float)
    lo, hi = float(values.min()), float(values.max())
    score = (values - lo) / (hi - lo) if hi > lo else np.ones_like(values)
    if direction == "minimize":
        score = 1.0 - score
    paths = list(space)
    fig = Figure(figsize=(max(5.0, 1.6 * (len(paths) + 1)), 4.2), dpi=DPI)
    ax = fig.add_subplot()
    cmap = colormaps["viridis"]
    for i in np.argsort(score):
        r = complete[i]
        ys = [_position(space[p], r["params"][p]) for p in paths] + [float(score[i])]
        ax.plot(range(len(ys)), ys, color=cmap(score[i]), alpha=0.8, linewidth=1.4)
    ax.set_xticks(range(len(paths) + 1))
    best, worst = (lo, hi) if direction == "minimize" else (hi, lo)
    objective_label = f"{metric}\nbest {best:.3g} (top) .. {worst:.3g}"
    ax.set_xticklabels([_axis_label(space[p], p) for p in paths] + [objective_label], fontsize=8)
    for x in range(len(paths) + 1):
        ax.axvline(x, color="grey", linewidth=0.8)
    ax.set_yticks([0, 1])
    ax.set_yticklabels(["low", "high"])
    ax.set_title(f"{title}: {len(complete)} complete trials (bright: best)")
    return _png(fig)


def _axis_label(param: Any, path: str) -> str:
    if isinstance(param, CategoricalParam):
        return f"{path}\n{param.choices[0]} .. {param.choices[-1]}"
    return f"{path}\n{param.low:g} .. {param.high:g}" + (" (log)" if param.log else "")
