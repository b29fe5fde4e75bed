"""Final evaluation of a trained model, the course's way.

The decision threshold is chosen on the validation split only, then applied once to the sealed
test split. Every classification run is compared with the majority-class baseline, warned about
when accuracy misleads, and diagnosed (underfit / overfit / good) from its learning curves.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import numpy as np

from ml import plots
from ml.data.sources import Dataset, Split
from ml.evaluation.diagnosis import diagnose_fit
from ml.evaluation.metrics import (
    accuracy_warning,
    choose_threshold,
    evaluate_classification,
    evaluate_regression,
    majority_baseline,
    roc_pr_curves,
)
from ml.reporter import Reporter
from ml.spec import TrainExperimentSpec
from ml.spec.base import Task
from ml.training.loop import History


def predictions_csv(
    rows: np.ndarray, y_true: np.ndarray, output: np.ndarray, task: Task, threshold: float | None
) -> bytes:
    """One line per row: its index in the data set, the truth, the prediction and scores. Floats
    are written in their shortest exact form (`repr`): reading them back gives the same numbers,
    so every metric can be recomputed from the file exactly."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    if task == "classification":
        k = output.shape[1]
        writer.writerow(["row", "true", "predicted", *[f"p{c}" for c in range(k)]])
        predicted = _decide(output, threshold)
        for r, t, p, probs in zip(rows, y_true, predicted, output, strict=True):
            writer.writerow([int(r), int(t), int(p), *[repr(float(v)) for v in probs]])
    else:
        writer.writerow(["row", "true", "predicted"])
        for r, t, p in zip(rows, y_true, output, strict=True):
            writer.writerow([int(r), repr(float(t)), repr(float(p))])
    return buf.getvalue().encode()


def _decide(proba: np.ndarray, threshold: float | None) -> np.ndarray:
    if proba.shape[1] == 2 and threshold is not None:
        return (proba[:, 1] >= threshold).astype(np.int64)
    return proba.argmax(axis=1)


def duplicate_rows(X: np.ndarray, split: Split) -> dict[str, int]:
    """Exact duplicates across the parts (leakage): validation and test rows whose features also
    appear in the training part, and test rows that also appear in the validation part (which
    steered the threshold and early stopping)."""

    def keys(idx: np.ndarray) -> set[bytes]:
        return {np.ascontiguousarray(row).tobytes() for row in X[idx]}

    def count(idx: np.ndarray, seen: set[bytes]) -> int:
        return sum(np.ascontiguousarray(r).tobytes() in seen for r in X[idx])

    train, validation = keys(split.train), keys(split.validation)
    return {
        "validation_rows_in_train": count(split.validation, train),
        "test_rows_in_train": count(split.test, train),
        "test_rows_in_validation": count(split.test, validation),
    }


def _threshold(spec: TrainExperimentSpec, y_val: np.ndarray, val_output: np.ndarray) -> dict[str, Any] | None:
    """Binary tasks only: the fixed threshold, or the one chosen on the validation split."""
    if val_output.ndim != 2 or val_output.shape[1] != 2:
        return None
    choice = spec.evaluate.threshold
    if choice is None or isinstance(choice, float):
        return {"value": 0.5 if choice is None else choice, "method": "fixed", "chosen_on": None}
    if len(y_val) == 0:
        raise ValueError(f"evaluate.threshold: {choice} needs a validation split (data.split.validation > 0)")
    value = choose_threshold(y_val, val_output[:, 1], choice)
    return {"value": value, "method": choice, "chosen_on": "validation"}


def _curves(history: History) -> dict[str, dict[str, list[float]]]:
    """{metric: {split: values}} from {split: {metric: values}}, without the learning rate."""
    out: dict[str, dict[str, list[float]]] = {}
    for split_name, named in history.series.items():
        for name, values in named.items():
            if name != "lr":
                out.setdefault(name, {})[split_name] = values
    return out


def diagnose(
    history: History,
    task: Task,
    baseline: float | None,
    baseline_loss: float | None = None,
    reference: Callable[[], float | None] | None = None,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The bias-variance verdict from the learning curves; bias is judged against the loss of
    the best constant prediction when it is given."""
    train, val = history.series.get("train", {}), history.series.get("validation", {})
    metric = "accuracy" if task == "classification" else "rmse"
    return diagnose_fit(
        train.get("loss", []),
        val.get("loss", train.get("loss", [])),
        train_metric=train.get(metric),
        val_metric=val.get(metric),
        metric_name=metric,
        higher_is_better=task == "classification",
        baseline=baseline,
        baseline_loss=baseline_loss,
        baseline_loss_of="the training class frequencies" if task == "classification" else "the training mean",
        reference=reference,
        facts=facts,
    )


def run_facts(spec: TrainExperimentSpec, history: History) -> dict[str, Any]:
    """What the spec set that the diagnosis' advice can speak of."""
    reg, opt = spec.train.regularization, spec.train.optimizer
    l1, l2 = reg.penalty_coefficients
    stopping = spec.train.early_stopping
    return {
        "model": spec.model.type,
        "hidden": list(spec.model.hidden) if spec.model.type != "linear" else [],
        "regularization": {
            "l1": l1,
            "l2": l2,
            "dropout": spec.model.dropout,
            "input_dropout": reg.input_dropout,
            "max_norm": reg.max_norm.value if reg.max_norm else 0.0,
            "weight_decay": getattr(opt, "weight_decay", 0.0) or 0.0,
        },
        "lr": opt.initial_lr,
        "early_stopping": stopping is not None,
        "monitor": stopping.monitor if stopping else None,
        "patience": stopping.patience if stopping else None,
        "stopped_early": history.stopped_early,
        "best_epoch": history.best_epoch,
        "epochs_run": history.epochs_run,
        "balance": next((s.method for s in spec.preprocess if s.step == "balance"), None),  # type: ignore[attr-defined]
    }


def _classification(
    spec: TrainExperimentSpec,
    data: Dataset,
    split: Split,
    val_output: np.ndarray,
    test_output: np.ndarray | None,
    reporter: Reporter,
) -> dict[str, Any]:
    y_train, y_val = data.y[split.train], data.y[split.validation]
    threshold = _threshold(spec, y_val, val_output)
    t = threshold["value"] if threshold else None
    names, metrics, beta = data.class_names, list(spec.evaluate.metrics), spec.evaluate.beta
    if metrics and "confusion_matrix" not in metrics:  # always reported (and plotted)
        metrics.append("confusion_matrix")
    out: dict[str, Any] = {"threshold": threshold}
    if len(y_val):
        out["validation"] = evaluate_classification(y_val, val_output, metrics, t, names, beta)
    if test_output is None:  # a k-fold child: the test split stays sealed
        return out
    y_test = data.y[split.test]
    test = evaluate_classification(y_test, test_output, metrics, t, names, beta)
    test.setdefault("accuracy", evaluate_classification(y_test, test_output, ["accuracy"], t, names)["accuracy"])
    baseline = majority_baseline(y_train, y_test, names)
    out.update(test=test, baseline=baseline)
    warning = accuracy_warning(y_train, test["accuracy"], baseline["accuracy"], names)
    out["warnings"] = [warning] if warning else []
    if spec.evaluate.plots:
        _classification_plots(test, y_test, test_output, threshold, reporter)
    return out


def _classification_plots(
    test: dict[str, Any], y_test: np.ndarray, output: np.ndarray, threshold: dict[str, Any] | None, reporter: Reporter
) -> None:
    cm = test.get("confusion_matrix")
    if cm:
        reporter.save_artifact(
            "confusion_matrix.png", plots.confusion_matrix_png(cm["matrix"], cm["labels"]), "image/png"
        )
    if output.shape[1] != 2 or len(np.unique(y_test)) < 2:
        return
    curves = roc_pr_curves(y_test, output[:, 1])
    point = None
    if threshold is not None:
        predicted = output[:, 1] >= threshold["value"]
        tpr = float(predicted[y_test == 1].mean())
        fpr = float(predicted[y_test == 0].mean())
        point = (fpr, tpr)
    reporter.save_artifact(
        "roc.png",
        plots.roc_png(
            curves["fpr"], curves["tpr"], curves["roc_auc"], point, threshold["value"] if threshold else None
        ),
        "image/png",
    )
    reporter.save_artifact(
        "pr.png",
        plots.pr_png(curves["precision"], curves["recall"], curves["average_precision"], curves["positive_rate"]),
        "image/png",
    )


def evaluate_run(
    spec: TrainExperimentSpec,
    data: Dataset,
    split: Split,
    history: History,
    val_output: np.ndarray,
    test_output: np.ndarray,
    reporter: Reporter,
    seal_test: bool = False,
    baseline_loss: float | None = None,
    reference: Callable[[], float | None] | None = None,
) -> dict[str, Any]:
    """Evaluate once on the sealed test split and build the summary's evaluation part.

    Args:
        seal_test: a k-fold child: write test predictions for the parent but compute no test
            metric (the parent evaluates the test split once, over all folds).
        baseline_loss: the training loss of the best constant prediction on the rows and
            weights the model trained with (`diagnosis.constant_loss`), for the diagnosis.
        reference: a flexible reference model's validation loss, computed when the diagnosis
            needs it (`ml.evaluation.reference.reference_loss`).
    """
    task = data.task
    if task == "classification":
        out = _classification(spec, data, split, val_output, None if seal_test else test_output, reporter)
        threshold = out["threshold"]["value"] if out.get("threshold") else None
    else:
        threshold = None
        out = {}
        if len(split.validation):
            out["validation"] = evaluate_regression(data.y[split.validation], val_output, _regression_names(spec))
        if not seal_test:
            out["test"] = evaluate_regression(data.y[split.test], test_output, _regression_names(spec))
    reporter.save_artifact(
        "predictions.csv", predictions_csv(split.test, data.y[split.test], test_output, task, threshold), "text/csv"
    )
    if len(split.validation):  # the rows the threshold and early stopping were chosen on
        validation_csv = predictions_csv(split.validation, data.y[split.validation], val_output, task, threshold)
        reporter.save_artifact("validation_predictions.csv", validation_csv, "text/csv")
    baseline_acc = out.get("baseline", {}).get("accuracy") if task == "classification" else None
    out["diagnosis"] = diagnose(history, task, baseline_acc, baseline_loss, reference, run_facts(spec, history))
    out["final"] = {s: {k: v[-1] for k, v in named.items()} for s, named in history.series.items()}
    out["leakage"] = leak = duplicate_rows(data.X, split)
    if leak["test_rows_in_train"] or leak["validation_rows_in_train"] or leak["test_rows_in_validation"]:
        out.setdefault("warnings", []).append(
            f"{leak['test_rows_in_train']} test and {leak['validation_rows_in_train']} validation rows also "
            f"appear in the training part, and {leak['test_rows_in_validation']} test rows in the validation "
            "part: their scores are optimistic (duplicated rows leak). Add the deduplicate step (it drops "
            "them from validation and test)."
        )
    if out["diagnosis"].get("evidence", {}).get("reference_check") == "little_signal":
        reducing = [s.step for s in spec.preprocess if s.step in ("pca", "ica", "select")]
        where = (
            f"the features left after preprocessing ({', '.join(reducing)}) carry little information about the "
            "target: the step may have discarded it; compare with a run without it."
            if reducing
            else "the features carry little information about the target. Check the target column and the "
            "features before tuning the model."
        )
        out.setdefault("warnings", []).append(
            "A gradient-boosted reference model gains almost nothing over a constant prediction on these rows: " + where
        )
    kept_first = _kept_first_epoch(spec, history, data, split, val_output)
    if kept_first:
        out.setdefault("warnings", []).append(kept_first)
    if spec.evaluate.plots:
        reporter.save_artifact(
            "learning_curves.png",
            plots.learning_curves_png(_curves(history), f"{spec.name}: learning curves", history.best_epoch or None),
            "image/png",
        )
    return out


CHANCE_MARGIN = 0.2
"""A validation measure within 20 % of the way from chance to perfect counts as at chance."""


def _chance_measure(task: Task, y_val: np.ndarray, val_output: np.ndarray) -> tuple[str, float, float] | None:
    """(name, value, chance level) of a validation measure a constant prediction cannot fake."""
    if len(y_val) == 0:
        return None
    if task != "classification":
        return "R2", float(evaluate_regression(y_val, val_output, ["r2"])["r2"] or 0.0), 0.0
    k = val_output.shape[1]
    if k == 2 and len(np.unique(y_val)) == 2:
        return "ROC-AUC", float(evaluate_classification(y_val, val_output, ["roc_auc"], None)["roc_auc"]), 0.5
    value = evaluate_classification(y_val, val_output, ["balanced_accuracy"], None)["balanced_accuracy"]
    return "balanced accuracy", float(value), 1.0 / k


def _kept_first_epoch(
    spec: TrainExperimentSpec, history: History, data: Dataset, split: Split, val_output: np.ndarray
) -> str | None:
    """A warning when early stopping gave back the weights of epoch 1: the monitored value never
    improved on it, which usually means it measured something else than what training improved."""
    stopping = spec.train.early_stopping
    if stopping is None or not stopping.restore_best or history.best_epoch != 1 or history.epochs_run <= 1:
        return None
    text = (
        f"Early stopping kept the weights of epoch 1: {stopping.monitor} never improved on it in "
        f"{history.epochs_run} epochs."
    )
    measure = _chance_measure(data.task, data.y[split.validation], val_output)
    if measure is not None:
        name, value, chance = measure
        at_chance = value - chance <= CHANCE_MARGIN * (1.0 - chance)
        text += f" The model's validation {name} is {value:.3g}" + (
            f", at chance level ({chance:g}): it learned nothing usable." if at_chance else "."
        )
    return text + (
        " Monitor a validation metric that matches the goal (e.g. val_roc_auc), raise the patience, or "
        "lower the learning rate."
    )


def _regression_names(spec: TrainExperimentSpec) -> list[str]:
    return [m for m in spec.evaluate.metrics if m in ("rmse", "mae", "mse", "r2")]
