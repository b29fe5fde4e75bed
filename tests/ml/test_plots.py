"""Every plot function returns PNG bytes and leaves no pyplot state behind."""

from __future__ import annotations

import sys

from ml.plots import (
    confusion_matrix_png,
    learning_curves_png,
    lr_curve_png,
    overlay_curves_png,
    pr_png,
    roc_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_every_plot_is_a_png() -> None:
    images = [
        learning_curves_png(
            {
                "loss": {"train": [1.0, 0.5, 0.3], "validation": [1.0, 0.6, None]},
                "accuracy": {"train": [0.5, 0.7, 0.8]},
            },
            "curves",
            best_epoch=2,
        ),
        roc_png([0.0, 0.0, 0.5, 1.0], [0.0, 0.6, 1.0, 1.0], 0.8, threshold_point=(0.0, 0.6), threshold=0.7),
        pr_png([0.4, 0.5, 1.0], [1.0, 0.8, 0.0], None, baseline_rate=0.4),
        confusion_matrix_png([[4, 1], [0, 0]], ["negative", "positive"]),
        overlay_curves_png({"sgd": [1.0, 0.5, 0.2], "adam": [1.0, 0.1, 0.01]}, "optimizers", "loss", log_y=True),
        lr_curve_png([0.1, 0.5, 1.0, 0.5]),
    ]
    for image in images:
        assert isinstance(image, bytes)
        assert image.startswith(PNG_SIGNATURE)
        assert len(image) > 1000


def test_no_pyplot_global_state() -> None:
    learning_curves_png({}, "empty")
    overlay_curves_png({}, "empty", "loss")
    assert "matplotlib.pyplot" not in sys.modules or not sys.modules["matplotlib.pyplot"].get_fignums()
