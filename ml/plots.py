"""Evaluation plots as PNG bytes.

Uses matplotlib's object API (`Figure` + `FigureCanvasAgg`) and never pyplot, so no global
figure state leaks between runs or threads. Every function returns the PNG file's bytes, ready
for `Reporter.save_artifact(name, data, "image/png")`. Missing values (None) are left as gaps.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import NDArray

DPI = 100
PANEL_SIZE = (5.0, 3.6)
"""Width and height (inches) of one panel."""
MAX_ANNOTATED_CLASSES = 20
"""Confusion matrices with more classes than this are drawn without numbers in the cells."""

Values = Sequence[float | None]


def _array(values: Values) -> NDArray[np.float64]:
    """Floats with None as NaN (matplotlib leaves a gap)."""
    return np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)


def _to_png(fig: Figure) -> bytes:
    canvas = FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.tight_layout()
    canvas.print_png(buffer)
    return buffer.getvalue()


def _epochs(values: Values) -> NDArray[np.int64]:
    return np.arange(1, len(values) + 1)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def learning_curves_png(
    series: Mapping[str, Mapping[str, Values]],
    title: str = "Learning curves",
    best_epoch: int | None = None,
) -> bytes:
    """One panel per metric, one line per split, against the epoch (counted from 1).

    Args:
        series: ``{metric: {split: values}}``, e.g. ``{"loss": {"train": [...],
            "validation": [...]}, "accuracy": {...}}``.
        title: the figure's title.
        best_epoch: if given, a dashed vertical line there (e.g. early stopping's best epoch).

    Returns:
        PNG bytes.
    """
    n = max(1, len(series))
    fig = Figure(figsize=(PANEL_SIZE[0] * n, PANEL_SIZE[1]), dpi=DPI)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (metric, splits) in zip(axes, series.items(), strict=False):
        for split, values in splits.items():
            ax.plot(_epochs(values), _array(values), label=split)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", label=f"best epoch {best_epoch}")
        ax.set(xlabel="epoch", ylabel=metric, title=metric)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    return _to_png(fig)


def _chance_line(ax: Axes, xs: Sequence[float], ys: Sequence[float], label: str) -> None:
    ax.plot(xs, ys, color="grey", linestyle="--", label=label)


def roc_png(
    fpr: Values,
    tpr: Values,
    auc: float | None,
    threshold_point: tuple[float, float] | None = None,
    threshold: float | None = None,
) -> bytes:
    """The ROC curve with the chance diagonal.

    Args:
        fpr: false positive rates.
        tpr: true positive rates.
        auc: the area under the curve (shown in the legend; None shows n/a).
        threshold_point: ``(fpr, tpr)`` of the chosen operating point, marked if given.
        threshold: the threshold of that point, for its label.

    Returns:
        PNG bytes.
    """
    fig = Figure(figsize=(PANEL_SIZE[1] * 1.3, PANEL_SIZE[1] * 1.3), dpi=DPI)
    ax = fig.subplots()
    ax.plot(_array(fpr), _array(tpr), label=f"ROC (AUC = {_fmt(auc)})")
    _chance_line(ax, [0, 1], [0, 1], "chance")
    if threshold_point is not None:
        label = "chosen threshold" if threshold is None else f"threshold {threshold:.3g}"
        ax.plot(*threshold_point, "o", color="red", label=label)
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", title="ROC curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _to_png(fig)


def pr_png(precision: Values, recall: Values, ap: float | None, baseline_rate: float) -> bytes:
    """The precision-recall curve with the no-skill line (precision = positive rate).

    Args:
        precision: precision values.
        recall: recall values, same length.
        ap: average precision (PR-AUC), shown in the legend.
        baseline_rate: share of positives, the precision of a classifier without skill.

    Returns:
        PNG bytes.
    """
    fig = Figure(figsize=(PANEL_SIZE[1] * 1.3, PANEL_SIZE[1] * 1.3), dpi=DPI)
    ax = fig.subplots()
    ax.step(_array(recall), _array(precision), where="post", label=f"PR (AP = {_fmt(ap)})")
    _chance_line(ax, [0, 1], [baseline_rate, baseline_rate], f"no skill ({baseline_rate:.3g})")
    ax.set(xlabel="recall", ylabel="precision", title="Precision-recall curve")
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _to_png(fig)


def confusion_matrix_png(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> bytes:
    """The confusion matrix: counts in the cells, colour by row share (per-class recall).

    Args:
        matrix: counts, rows = true class, columns = predicted class.
        labels: the class names, in matrix order.

    Returns:
        PNG bytes.
    """
    counts = np.asarray(matrix, dtype=np.int64)
    rows = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    side = min(12.0, max(4.0, 0.5 * len(labels) + 2.0))
    fig = Figure(figsize=(side + 1.0, side), dpi=DPI)
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="share of the true class")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels=list(labels), rotation=45, ha="right")
    ax.set_yticks(ticks, labels=list(labels))
    ax.set(xlabel="predicted class", ylabel="true class", title="Confusion matrix")
    if len(labels) <= MAX_ANNOTATED_CLASSES:
        for (i, j), count in np.ndenumerate(counts):
            color = "white" if shares[i, j] > 0.5 else "black"
            ax.text(j, i, f"{count}", ha="center", va="center", color=color)
    return _to_png(fig)


def overlay_curves_png(
    curves: Mapping[str, Values],
    title: str,
    ylabel: str,
    log_y: bool = False,
    xlabel: str = "epoch",
) -> bytes:
    """Several runs' curves in one plot (e.g. the training loss of SGD, momentum and Adam).

    Args:
        curves: ``{run label: values per epoch}``.
        title: the plot's title.
        ylabel: what the values are.
        log_y: a logarithmic y axis (losses spanning decades).
        xlabel: what the x axis counts (counted from 1).

    Returns:
        PNG bytes.
    """
    fig = Figure(figsize=(PANEL_SIZE[0] * 1.3, PANEL_SIZE[1] * 1.2), dpi=DPI)
    ax = fig.subplots()
    for label, values in curves.items():
        ax.plot(_epochs(values), _array(values), label=label)
    if log_y:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3, which="both")
    if curves:
        ax.legend()
    return _to_png(fig)


def lr_curve_png(learning_rates: Values, title: str = "Learning-rate schedule", xlabel: str = "epoch") -> bytes:
    """The learning rate per epoch (or step): warm-up then decay, for instance.

    Args:
        learning_rates: the learning rate at each epoch or step.
        title: the plot's title.
        xlabel: what the x axis counts (counted from 1).

    Returns:
        PNG bytes.
    """
    return overlay_curves_png({"learning rate": learning_rates}, title, "learning rate", xlabel=xlabel)


def samples_png(
    X: NDArray[np.floating],
    y: NDArray[np.integer],
    shape: Sequence[int],
    class_names: Sequence[str],
    per_class: int = 2,
) -> bytes:
    """A grid of the first `per_class` samples of each class (at most 10 classes), drawn from
    their C x H x W rows: spectrograms (one channel, frequency up), images (three channels) or
    waveforms (1 x 1 x samples, drawn as curves)."""
    channels, height, width = (1, *shape) if len(shape) == 2 else tuple(shape)
    classes = list(range(min(len(class_names), 10)))
    fig = Figure(figsize=(1.8 * per_class + 0.6, 1.5 * len(classes) + 0.4), dpi=DPI)
    waveform = channels == 1 and height == 1 and width > 1
    spectrogram = channels == 1 and width > 2 * height and not waveform
    for row, c in enumerate(classes):
        picks = np.flatnonzero(y == c)[:per_class]
        for col in range(per_class):
            ax = fig.add_subplot(len(classes), per_class, row * per_class + col + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(str(class_names[c])[:14], fontsize=8)
            if col >= len(picks):
                continue
            sample = np.asarray(X[picks[col]], dtype=np.float64).reshape(channels, height, width)
            if waveform:
                ax.plot(sample[0, 0], linewidth=0.3, color="tab:blue")
                ax.set_xlim(0, width - 1)
            elif channels == 3:
                low, high = sample.min(), sample.max()
                ax.imshow(((sample - low) / max(high - low, 1e-12)).transpose(1, 2, 0), interpolation="nearest")
            else:
                ax.imshow(
                    sample[0],
                    origin="lower" if spectrogram else "upper",
                    aspect="auto",
                    cmap="magma" if spectrogram else "gray",
                    interpolation="nearest",
                )
    title = "waveforms by class" if waveform else "log-mel spectrograms by class" if spectrogram else "samples by class"
    fig.suptitle(title, fontsize=9)
    return _to_png(fig)
