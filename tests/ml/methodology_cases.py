"""Data sets whose right diagnosis is known by construction, for the methodology tests and
`benchmarks/methodology.py`.

Each generator writes a CSV (noise, nuisance columns, label noise, class imbalance) that goes
through the same upload parser as a user's file, so the runs see what a server run sees. None
is tuned to make a verdict come out: the expected verdict follows from how the data is made
(a ring cannot be separated by a straight line; 300 rows cannot fill a network with 100k
weights; a logistic truth is fitted by a logistic model).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.data.sources import Dataset
from ml.data.uploads import load_upload

TARGET = "label"


def _csv(columns: dict[str, np.ndarray]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf)
    names = list(columns)
    writer.writerow(names)
    for row in zip(*(columns[n] for n in names), strict=True):
        writer.writerow([repr(float(v)) if isinstance(v, float | np.floating) else v for v in row])
    return buf.getvalue().encode()


def _nuisance(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Columns a real table carries that say nothing about the target."""
    return {
        "room": rng.integers(100, 500, size=n).astype(float),
        "weekday": rng.integers(0, 7, size=n).astype(float),
        "lab_noise": rng.normal(50.0, 12.0, size=n),
    }


def clinic(seed: int, n: int = 3000, prevalence: float = 0.05, duplicated: float = 0.0) -> bytes:
    """Patients, `prevalence` of them ill. Illness follows a logistic model of four measurements
    (so the truth is near-linear and noisy: no model reaches a perfect score), plus three nuisance
    columns. `duplicated`: that fraction of rows appears a second time (a re-exported record)."""
    rng = np.random.default_rng(seed)
    age = rng.normal(55, 15, n)
    bmi = rng.normal(27, 4.5, n)
    pressure = rng.normal(130, 18, n)
    glucose = rng.lognormal(np.log(100), 0.2, n)
    z = 0.05 * (age - 55) + 0.12 * (bmi - 27) + 0.03 * (pressure - 130) + 0.025 * (glucose - 100)
    # The intercept that gives the wanted prevalence, found on this draw.
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 / (1 + np.exp(-(z + mid)))).mean() < prevalence else (lo, mid)
    ill = rng.random(n) < 1 / (1 + np.exp(-(z + lo)))
    columns = {"age": age, "bmi": bmi, "pressure": pressure, "glucose": glucose, **_nuisance(rng, n)}
    columns[TARGET] = np.where(ill, "ill", "healthy")
    if duplicated:
        again = rng.choice(n, size=int(duplicated * n), replace=False)
        columns = {k: np.concatenate([v, v[again]]) for k, v in columns.items()}
    return _csv(columns)


def no_signal(seed: int, n: int = 1500) -> bytes:
    """Measurements and a label drawn independently: nothing to learn."""
    rng = np.random.default_rng(seed)
    columns = {f"m{i}": rng.normal(size=n) for i in range(5)} | _nuisance(rng, n)
    columns[TARGET] = np.where(rng.random(n) < 0.3, "yes", "no")
    return _csv(columns)


def ring(seed: int, n: int = 1200) -> bytes:
    """A noisy ring around a blob in (x, y), with nuisance columns: no straight line separates
    the classes; a network with a hidden layer (or r = sqrt(x^2 + y^2)) does."""
    rng = np.random.default_rng(seed)
    inner = rng.random(n) < 0.5
    angle = rng.uniform(-np.pi, np.pi, n)
    r = np.where(inner, np.abs(rng.normal(0, 1.0, n)), rng.normal(3.0, 0.4, n))
    columns = {"x": r * np.cos(angle), "y": r * np.sin(angle), **_nuisance(rng, n)}
    columns[TARGET] = np.where(inner, "blob", "ring")
    return _csv(columns)


def few_rows(seed: int, n: int = 300, informative: int = 5, noise: int = 25) -> bytes:
    """Few rows, many columns, a noisy target: a big network memorises the training rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, informative + noise))
    logits = X[:, :informative] @ rng.normal(size=informative)
    label = (logits + rng.normal(scale=1.5, size=n)) > 0
    columns = {f"c{i}": X[:, i] for i in range(X.shape[1])}
    columns[TARGET] = np.where(label, "yes", "no")
    return _csv(columns)


def multiclass(seed: int, n: int = 2000, shares: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)) -> bytes:
    """Classes as overlapping Gaussian clouds in five measured columns, plus nuisance columns;
    `shares` sets the class mix."""
    rng = np.random.default_rng(seed)
    k = len(shares)
    labels = rng.choice(k, size=n, p=np.asarray(shares) / sum(shares))
    centers = rng.normal(scale=1.6, size=(k, 5))
    X = centers[labels] + rng.normal(size=(n, 5))
    columns = {f"m{i}": X[:, i] for i in range(5)} | _nuisance(rng, n)
    columns[TARGET] = np.array([f"class_{c}" for c in labels])
    return _csv(columns)


def regression(seed: int, n: int = 2000, skewed: bool = False) -> bytes:
    """A smooth target of four columns plus noise and nuisance columns; `skewed`: the target is
    log-normal (most values small, a long tail of large ones)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    signal = 1.5 * X[:, 0] - X[:, 1] + 0.8 * np.sin(2 * X[:, 2]) + 0.5 * X[:, 3] * X[:, 0]
    value = signal + rng.normal(scale=0.5, size=n)
    target = np.exp(0.5 * value) if skewed else 10 * value + 50
    columns = {f"f{i}": X[:, i] for i in range(4)} | _nuisance(rng, n)
    columns[TARGET] = target
    return _csv(columns)


def waves(seed: int, n: int = 2000) -> bytes:
    """y = sin(2 x0) + cos(2 x1) + noise on x in [-3, 3]^2, plus nuisance columns: a straight
    plane explains almost none of it, a small network most of it."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 2))
    value = np.sin(2 * X[:, 0]) + np.cos(2 * X[:, 1]) + rng.normal(scale=0.3, size=n)
    columns = {"x0": X[:, 0], "x1": X[:, 1]} | _nuisance(rng, n)
    columns[TARGET] = value
    return _csv(columns)


def load(raw: bytes) -> Dataset:
    """The CSV as the worker loads an upload (target `label`, categorical columns one-hot)."""
    table = load_upload(raw, "csv", TARGET, one_hot=True)
    return Dataset(table.X, table.y, table.task, table.feature_names, table.class_names, table.image_shape)


@dataclass
class Case:
    """A run whose right verdict is known; `check` adds case-specific assertions (returns
    a list of what is wrong, empty when right)."""

    name: str
    data: Callable[[int], bytes]
    spec: dict[str, Any]
    verdicts: tuple[str, ...]
    why: str
    check: Callable[[dict[str, Any]], list[str]] = field(default=lambda summary: [])


CLASSIFICATION_METRICS = ["accuracy", "balanced_accuracy", "roc_auc", "pr_auc", "f1"]


def spec(
    model: dict[str, Any],
    epochs: int = 60,
    preprocess: list[dict[str, Any]] | None = None,
    metrics: list[str] | None = CLASSIFICATION_METRICS,
    **train: Any,
) -> dict[str, Any]:
    """A train spec on the uploaded CSV; `metrics` None: the task's default metrics."""
    return {
        "kind": "train",
        "name": "methodology",
        "data": {"source": "dataset/1", "target": TARGET, "one_hot": True, "split": {"test": 0.2, "validation": 0.2}},
        "preprocess": preprocess if preprocess is not None else [{"step": "standardize"}],
        "model": model,
        "train": {"epochs": epochs, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.003}} | train,
    } | ({"evaluate": {"metrics": metrics}} if metrics else {})


def _advice_mentions(*words: str) -> Callable[[dict[str, Any]], list[str]]:
    def check(summary: dict[str, Any]) -> list[str]:
        advice = " ".join(summary["diagnosis"]["advice"]).lower()
        return [f"advice does not mention {w!r}" for w in words if w.lower() not in advice]

    return check


def _no_accuracy_warning_missing(summary: dict[str, Any]) -> list[str]:
    warnings = " ".join(summary.get("warnings", []))
    return [] if "accuracy" in warnings.lower() else ["no warning that accuracy misleads on 5 % positives"]


def _both(*checks: Callable[[dict[str, Any]], list[str]]) -> Callable[[dict[str, Any]], list[str]]:
    return lambda summary: [p for c in checks for p in c(summary)]


def _test_roc_auc_above(floor: float) -> Callable[[dict[str, Any]], list[str]]:
    def check(summary: dict[str, Any]) -> list[str]:
        auc = summary["test"]["roc_auc"]
        return [] if auc >= floor else [f"test ROC-AUC {auc:.3f} below {floor}"]

    return check


def _says_no_signal(summary: dict[str, Any]) -> list[str]:
    problems = []
    if "little information" not in summary["diagnosis"]["explanation"]:
        problems.append("the explanation does not say the features carry little information")
    kept_first = [w for w in summary.get("warnings", []) if "kept the weights of epoch 1" in w]
    if summary["best_epoch"] == 1 and not (kept_first and "at chance" in kept_first[0]):
        problems.append("epoch 1 kept at chance level without a warning saying so")
    return problems


def _not_stopped_at_first_epoch(summary: dict[str, Any]) -> list[str]:
    return [] if summary["best_epoch"] > 1 else ["early stopping kept the weights of epoch 1"]


CASES: list[Case] = [
    Case(
        "imbalanced near-linear, linear model",
        clinic,
        spec({"type": "linear"}),
        ("good",),
        "the truth is logistic: a logistic model is the right capacity, 5 % positives or not",
        _both(_no_accuracy_warning_missing, _test_roc_auc_above(0.7)),
    ),
    Case(
        "imbalanced near-linear, MLP 32-16",
        clinic,
        spec({"type": "mlp", "hidden": [32, 16]}, epochs=40),
        ("good", "overfit"),
        "more capacity than needed may overfit, but it cannot underfit",
    ),
    Case(
        "imbalanced, random under-sampling + early stopping",
        clinic,
        spec(
            {"type": "mlp", "hidden": [32]},
            epochs=80,
            preprocess=[{"step": "standardize"}, {"step": "balance", "method": "random_under"}],
            early_stopping={"patience": 10},
            optimizer={"name": "adam", "lr": 0.001},
            batch_size=16,
        ),
        ("good", "overfit"),
        "the validation loss is weighted like the balanced training loss, so it falls as the model learns",
        _both(_test_roc_auc_above(0.7), _not_stopped_at_first_epoch),
    ),
    Case(
        "imbalanced, class weights + early stopping on ROC-AUC",
        clinic,
        spec(
            {"type": "mlp", "hidden": [32]},
            epochs=80,
            preprocess=[{"step": "standardize"}, {"step": "balance", "method": "class_weight"}],
            early_stopping={"patience": 10, "monitor": "val_roc_auc"},
        ),
        ("good", "overfit"),
        "a rank metric is insensitive to the class mix",
        _test_roc_auc_above(0.7),
    ),
    Case(
        "labels independent of the features, MLP 64 + early stopping",
        no_signal,
        spec({"type": "mlp", "hidden": [64]}, epochs=60, early_stopping={"patience": 8}),
        ("good", "overfit"),
        "nothing to learn is not a lack of capacity: a reference model finds nothing either",
        _says_no_signal,
    ),
    Case(
        "ring, linear model",
        ring,
        spec({"type": "linear"}, epochs=40),
        ("underfit",),
        "no straight line separates a ring from its centre",
        _advice_mentions("linear", "hidden layer"),
    ),
    Case(
        "ring, linear model with L2",
        ring,
        spec({"type": "linear"}, epochs=40, regularization={"l2": 0.01}),
        ("underfit",),
        "as above; the advice names the L2 that is set",
        _advice_mentions("linear", "l2"),
    ),
    Case(
        "300 rows, MLP 512-512-512",
        few_rows,
        spec({"type": "mlp", "hidden": [512, 512, 512]}, epochs=150),
        ("overfit",),
        "800k weights on 180 training rows with a noisy target memorise them",
    ),
    Case(
        "balanced multiclass, MLP 64",
        multiclass,
        spec({"type": "mlp", "hidden": [64]}, epochs=40),
        ("good", "overfit"),
        "overlapping clouds: a small network finds the Bayes boundary's shape",
    ),
    Case(
        "imbalanced multiclass (70/20/7/3), linear",
        lambda seed: multiclass(seed, shares=(0.70, 0.20, 0.07, 0.03)),
        spec({"type": "linear"}, epochs=60),
        ("good",),
        "Gaussian clouds with a shared covariance are linearly separable as far as they can be",
    ),
    Case(
        "regression, MLP 64-64",
        regression,
        spec({"type": "mlp", "hidden": [64, 64]}, epochs=60, metrics=None),
        ("good", "overfit"),
        "a smooth target that a small network represents",
    ),
    Case(
        "skewed regression (log-normal target), MLP 64-64",
        lambda seed: regression(seed, skewed=True),
        spec({"type": "mlp", "hidden": [64, 64]}, epochs=60, metrics=None),
        ("good", "overfit"),
        "a long-tailed target: judged against the variance, not the raw scale",
    ),
    Case(
        "waves regression, linear model",
        waves,
        spec({"type": "linear"}, epochs=60, metrics=None),
        ("underfit",),
        "sin(2 x0) + cos(2 x1) is out of a plane's reach",
        _advice_mentions("linear"),
    ),
    Case(
        "waves regression, MLP 128-128",
        waves,
        spec({"type": "mlp", "hidden": [128, 128]}, epochs=150, metrics=None),
        ("good", "overfit"),
        "the same waves are within a small network's reach",
    ),
]
"""The cases, in the order the benchmark prints them."""
