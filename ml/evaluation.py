"""Final evaluation of a trained model: test metrics, predictions file, plots, diagnosis."""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
from sklearn import metrics as skm

from ml.data import Dataset, Split
from ml.reporter import Reporter
from ml.spec import TrainExperimentSpec
from ml.train import History


def _predictions_csv(rows: np.ndarray, y_true: np.ndarray, output: np.ndarray, task: str) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    if task == "classification":
        k = output.shape[1]
        writer.writerow(["row", "true", "predicted", *[f"p{c}" for c in range(k)]])
        for r, t, p in zip(rows, y_true, output, strict=True):
            writer.writerow([int(r), int(t), int(p.argmax()), *[f"{v:.6g}" for v in p]])
    else:
        writer.writerow(["row", "true", "predicted"])
        for r, t, p in zip(rows, y_true, output, strict=True):
            writer.writerow([int(r), f"{float(t):.6g}", f"{float(p):.6g}"])
    return buf.getvalue().encode()


def evaluate_run(
    spec: TrainExperimentSpec,
    data: Dataset,
    split: Split,
    history: History,
    val_output: np.ndarray,
    test_output: np.ndarray,
    reporter: Reporter,
) -> dict[str, Any]:
    """Evaluate once on the sealed test split and build the summary's evaluation part."""
    y_test = data.y[split.test]
    if data.task == "classification":
        pred = test_output.argmax(axis=1)
        test = {"accuracy": float(skm.accuracy_score(y_test, pred))}
    else:
        test = {"rmse": float(np.sqrt(skm.mean_squared_error(y_test, test_output)))}
    reporter.save_artifact("predictions.csv", _predictions_csv(split.test, y_test, test_output, data.task), "text/csv")
    final = {split_name: {k: v[-1] for k, v in named.items()} for split_name, named in history.series.items()}
    return {"test": test, "final": final}
