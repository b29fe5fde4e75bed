"""What to measure on the sealed test split, and how to choose a binary decision threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ml.spec.base import StrictModel

MetricName = Literal[
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "specificity",
    "f1",
    "fbeta",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "confusion_matrix",
    "iou",
    "rmse",
    "mae",
    "mse",
    "r2",
]


class EvaluateSpec(StrictModel):
    """Final test metrics (the task's default set when empty)."""

    metrics: list[MetricName] = Field(default_factory=list, max_length=32)
    threshold: float | Literal["youden", "max_f1"] | None = Field(
        default=None,
        description="Binary tasks: a fixed threshold in (0, 1), or chosen on the validation split "
        "(youden: max TPR-FPR on the ROC; max_f1) and then applied once to the test split. Default 0.5.",
    )
    beta: float = Field(default=2.0, gt=0.0, le=100.0, description="The beta of the F-beta score.")
    plots: bool = Field(default=True, description="Save learning-curve, ROC, PR and confusion-matrix PNGs.")

    def model_post_init(self, __context: object) -> None:
        if isinstance(self.threshold, float) and not 0.0 < self.threshold < 1.0:
            raise ValueError("evaluate.threshold must be between 0 and 1 (exclusive), 'youden' or 'max_f1'")
