"""`compare` experiments: variants of one spec as parallel children, their learning curves
overlaid in one plot and ranked — the course's optimizer and learning-rate figures, from real
runs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ml import plots
from ml.errors import MLError
from ml.fanout.base import ChildData, ChildPlan, ChildResult, Planner, series
from ml.reporter import Reporter


class ComparePlanner(Planner):
    def initial(self, spec: Any) -> list[ChildPlan]:
        return [
            ChildPlan(f"{spec.name} [{v.label}]", spec.variant_spec(v), {"label": v.label, "set": v.set})
            for v in spec.variants
        ]

    def summarize(
        self, spec: Any, children: Sequence[ChildResult], data: ChildData, reporter: Reporter
    ) -> dict[str, Any]:
        labels = [v.label for v in spec.variants]
        split, name = spec.rank_by.split(".")
        rows: list[dict[str, Any]] = []
        curves: dict[str, dict[str, Any]] = {"train loss": {}, "validation loss": {}, "learning rate": {}}
        for label, child in zip(labels, children, strict=False):
            metrics = data.metrics(child.id)
            train_loss, val_loss = series(metrics, "train", "loss"), series(metrics, "validation", "loss")
            curves["train loss"][label] = train_loss
            curves["validation loss"][label] = val_loss
            curves["learning rate"][label] = series(metrics, "train", "lr")
            ranked = series(metrics, split, name)
            summary = child.summary or {}
            rows.append(
                {
                    "label": label,
                    "experiment": child.id,
                    "status": child.status,
                    spec.rank_by: ranked[-1] if ranked else None,
                    "best_validation_loss": min(val_loss) if val_loss else None,
                    "final_train_loss": train_loss[-1] if train_loss else None,
                    "gap": (val_loss[-1] - train_loss[-1]) if val_loss and train_loss else None,
                    "test": {k: v for k, v in (summary.get("test") or {}).items() if isinstance(v, int | float)},
                    "verdict": (summary.get("diagnosis") or {}).get("verdict"),
                    "seconds": child.seconds,
                    "error": child.error,
                }
            )
        if not any(r["status"] == "succeeded" for r in rows):
            raise MLError("no variant succeeded: " + "; ".join(f"{r['label']}: {r['error']}" for r in rows))
        reverse = name == "accuracy"

        def key(row: dict[str, Any]) -> float:
            value = row[spec.rank_by]
            if value is None or not math.isfinite(value):
                return math.inf
            return -value if reverse else value

        rows.sort(key=key)
        for rank, row in enumerate(rows, start=1):
            row["rank"] = rank
        for title, by_label in curves.items():
            if any(by_label.values()):
                filename = title.replace(" ", "_") + ".png"
                png = plots.overlay_curves_png(by_label, f"{spec.name}: {title}", title, log_y=title.endswith("loss"))
                reporter.save_artifact(filename, png, "image/png")
        return {"ranking": rows, "rank_by": spec.rank_by, "best": rows[0]["label"]}
