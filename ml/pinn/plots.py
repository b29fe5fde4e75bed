"""Heat maps of a PINN run: time left to right, x top to bottom, cold blue to hot white.

Uses matplotlib's object API with the Agg canvas (no pyplot global state), so it is safe in a
worker process without a display.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LinearSegmentedColormap
from matplotlib.figure import Figure

COLD_HOT = LinearSegmentedColormap.from_list(
    "cold_hot", ["#03051a", "#08306b", "#2171b5", "#6baed6", "#c6dbef", "#ffffff"]
)


def _draw(ax, fig, field: np.ndarray, extent, title: str, label: str) -> None:
    image = ax.imshow(field, extent=extent, origin="upper", aspect="auto", cmap=COLD_HOT, interpolation="nearest")
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=label)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def heatmap_png(field: np.ndarray, x: np.ndarray, t: np.ndarray, title: str, label: str = "u") -> bytes:
    """One field of shape (len(x), len(t)) as a PNG."""
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    # origin="upper": row 0 (x_min) at the top, so x grows downwards; t grows to the right.
    _draw(ax, fig, field, (t[0], t[-1], x[-1], x[0]), title, label)
    return _png(fig)


def heatmaps_png(pinn: np.ndarray, exact: np.ndarray, x: np.ndarray, t: np.ndarray, rel_l2: float) -> bytes:
    """The network, the exact solution and their absolute difference side by side."""
    fig = Figure(figsize=(16, 4.2), layout="constrained")
    extent = (t[0], t[-1], x[-1], x[0])
    fields = [
        (pinn, "PINN u(x, t)", "u"),
        (exact, "exact u(x, t)", "u"),
        (np.abs(pinn - exact), f"|PINN - exact| (relative L2 {rel_l2:.2e})", "|error|"),
    ]
    for i, (field, title, label) in enumerate(fields):
        _draw(fig.add_subplot(1, 3, i + 1), fig, field, extent, title, label)
    return _png(fig)
