"""Data sets by name, and the honest train/validation/test split.

A loader returns a `Dataset` of numpy arrays; `split_dataset` seals the test part before
anything is fitted. Uploaded data sets are loaded by the caller (the worker knows where they
live) and passed in through `load_dataset(..., resolve_upload=...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn import datasets as skd
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

from ml.data.shards import ShardedDataset
from ml.errors import DataError
from ml.spec import DataSpec
from ml.spec.base import Task


@dataclass
class Dataset:
    """Features, targets and what they mean."""

    X: np.ndarray
    y: np.ndarray
    task: Task
    feature_names: list[str]
    class_names: list[str] = field(default_factory=list)
    image_shape: tuple[int, ...] | None = None  # (channels, height, width) for image data

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


@dataclass
class Split:
    """Row indices of each part into the dataset (kept so predictions can be traced back)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def _classification(X: np.ndarray, y: np.ndarray, names: list[str] | None = None, **kw: Any) -> Dataset:
    y = np.asarray(y).astype(np.int64)
    classes = names or [str(c) for c in range(int(y.max()) + 1)]
    features = kw.pop("feature_names", None) or [f"x{i}" for i in range(X.shape[1])]
    return Dataset(X.astype(np.float32), y, "classification", list(features), list(classes), **kw)


def _sklearn_bundled(loader: Callable[..., Any]) -> Callable[..., Dataset]:
    def load(rng: np.random.Generator, **_: Any) -> Dataset:
        bunch = loader()
        names = [str(n) for n in getattr(bunch, "target_names", [])] or None
        if loader is skd.load_diabetes:
            return Dataset(
                bunch.data.astype(np.float32),
                bunch.target.astype(np.float32),
                "regression",
                list(bunch.feature_names),
            )
        image_shape = (1, 8, 8) if loader is skd.load_digits else None
        return _classification(
            bunch.data,
            bunch.target,
            names,
            feature_names=[str(f) for f in bunch.feature_names],
            image_shape=image_shape,
        )

    return load


def _moons(rng: np.random.Generator, n_samples: int = 1000, noise: float = 0.2) -> Dataset:
    X, y = skd.make_moons(n_samples=n_samples, noise=noise, random_state=_seed(rng))
    return _classification(X, y)


def _circles(rng: np.random.Generator, n_samples: int = 1000, noise: float = 0.1, factor: float = 0.5) -> Dataset:
    X, y = skd.make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=_seed(rng))
    return _classification(X, y)


def _spirals(
    rng: np.random.Generator, n_samples: int = 1000, noise: float = 0.2, n_classes: int = 2, turns: float = 1.5
) -> Dataset:
    per = n_samples // n_classes
    t = rng.uniform(0.25, 1.0, size=(n_classes, per))
    X_parts, y_parts = [], []
    for c in range(n_classes):
        angle = 2 * np.pi * turns * t[c] + 2 * np.pi * c / n_classes
        r = 5.0 * t[c]
        pts = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        X_parts.append(pts + rng.normal(scale=noise, size=pts.shape))
        y_parts.append(np.full(per, c))
    return _classification(np.concatenate(X_parts), np.concatenate(y_parts))


def _imbalanced(
    rng: np.random.Generator,
    n_samples: int = 5000,
    positive_fraction: float = 0.01,
    n_features: int = 10,
    n_informative: int = 4,
    class_sep: float = 1.0,
) -> Dataset:
    if not 0.0 < positive_fraction < 0.5:
        raise DataError("options.positive_fraction must be between 0 and 0.5")
    X, y = skd.make_classification(
        n_samples=n_samples,
        n_features=n_features,
        n_informative=n_informative,
        n_redundant=0,
        weights=[1 - positive_fraction],
        class_sep=class_sep,
        flip_y=0.0,
        random_state=_seed(rng),
    )
    return _classification(X, y, ["negative", "positive"])


def _regression(rng: np.random.Generator, n_samples: int = 1000, n_features: int = 10, noise: float = 10.0) -> Dataset:
    X, y = skd.make_regression(n_samples=n_samples, n_features=n_features, noise=noise, random_state=_seed(rng))
    return Dataset(X.astype(np.float32), y.astype(np.float32), "regression", [f"x{i}" for i in range(n_features)])


def _two_clouds(
    rng: np.random.Generator,
    n_samples: int = 1000,
    separated_along: str = "long_axis",
    angle: float = 30.0,
    spread: float = 3.0,
    width: float = 0.5,
) -> Dataset:
    """Two elongated Gaussian clouds (std `spread` along their long axis, `width` across), turned
    by `angle` degrees. ``long_axis``: the classes lie apart along the long axis, which is then
    the first principal component (PCA to 1 component keeps them apart); ``short_axis``: apart
    along the short axis only, which the first principal component discards."""
    if separated_along not in ("long_axis", "short_axis"):
        raise DataError("options.separated_along must be long_axis or short_axis")
    if not 0 < width < spread:
        raise DataError("options.width must be positive and smaller than options.spread")
    y = np.arange(n_samples) % 2
    sign = 2.0 * y - 1.0
    long = rng.normal(scale=spread, size=n_samples)
    short = rng.normal(scale=width, size=n_samples)
    if separated_along == "long_axis":
        long += sign * 2.0 * spread
    else:
        short += sign * 3.0 * width
    turn = np.radians(angle)
    x0 = long * np.cos(turn) - short * np.sin(turn)
    x1 = long * np.sin(turn) + short * np.cos(turn)
    return _classification(np.stack([x0, x1], axis=1), y, ["a", "b"], feature_names=["x", "y"])


def _ring(
    rng: np.random.Generator, n_samples: int = 1000, radius: float = 3.0, width: float = 0.3, blob: float = 0.7
) -> Dataset:
    """A ring (class ``ring``, radius ~ N(radius, width)) around a Gaussian blob (std `blob`), in
    columns x and y: no straight line separates them, a threshold on r = sqrt(x^2 + y^2) does."""
    y = np.arange(n_samples) % 2
    angle = rng.uniform(-np.pi, np.pi, size=n_samples)
    r = rng.normal(radius, width, size=n_samples)
    ring = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    center = rng.normal(scale=blob, size=(n_samples, 2))
    X = np.where(y[:, None] == 1, ring, center)
    return _classification(X, y, ["blob", "ring"], feature_names=["x", "y"])


def _noisy_features(
    rng: np.random.Generator,
    n_samples: int = 600,
    n_informative: int = 4,
    n_noise: int = 36,
    class_sep: float = 1.0,
) -> Dataset:
    """Two classes told apart by a few columns (informative_*) among pure noise (noise_*)."""
    X, y = skd.make_classification(
        n_samples=n_samples,
        n_features=n_informative + n_noise,
        n_informative=n_informative,
        n_redundant=0,
        n_repeated=0,
        class_sep=class_sep,
        flip_y=0.0,
        shuffle=False,
        random_state=_seed(rng),
    )
    names = [f"informative_{i}" for i in range(n_informative)] + [f"noise_{i}" for i in range(n_noise)]
    return _classification(X, y, feature_names=names)


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(0, 2**31 - 1))


# name -> loader(rng, **options). Adding a data set is one entry.
DATASETS: dict[str, Callable[..., Dataset]] = {
    "builtin/digits": _sklearn_bundled(skd.load_digits),
    "builtin/breast_cancer": _sklearn_bundled(skd.load_breast_cancer),
    "builtin/iris": _sklearn_bundled(skd.load_iris),
    "builtin/wine": _sklearn_bundled(skd.load_wine),
    "builtin/diabetes": _sklearn_bundled(skd.load_diabetes),
    "synthetic/moons": _moons,
    "synthetic/circles": _circles,
    "synthetic/spirals": _spirals,
    "synthetic/imbalanced": _imbalanced,
    "synthetic/regression": _regression,
    "synthetic/two_clouds": _two_clouds,
    "synthetic/ring": _ring,
    "synthetic/noisy_features": _noisy_features,
}


def load_dataset(
    spec: DataSpec, seed: int, resolve_upload: Callable[[str, DataSpec], Dataset | ShardedDataset] | None = None
) -> Dataset | ShardedDataset:
    """Load the data set a spec names.

    Args:
        spec: the data block of the experiment spec.
        seed: the experiment seed (synthetic generators are seeded from it).
        resolve_upload: loads ``dataset/<id>`` sources; required for those.

    Returns:
        The data set, with its task (classification or regression); a folder data set larger
        than the worker's memory budget comes back sharded (`ml.data.shards`).
    """
    if spec.source.startswith("dataset/"):
        if resolve_upload is None:
            raise DataError(f"{spec.source} is an uploaded data set and no loader was given for it")
        data = resolve_upload(spec.source.split("/", 1)[1], spec)
    else:
        loader = DATASETS.get(spec.source)
        if loader is None:
            raise DataError(f"unknown data source {spec.source!r}; known: {', '.join(DATASETS)}")
        try:
            data = loader(np.random.default_rng(seed), **spec.options)
        except TypeError as exc:
            raise DataError(f"bad options for {spec.source}: {exc}") from exc
    if spec.task is not None and spec.task != data.task:
        if isinstance(data, ShardedDataset):
            raise DataError(f"{spec.source} is streamed shard by shard, as a classification task only")
        if spec.task == "regression":
            data.task, data.class_names, data.y = "regression", [], data.y.astype(np.float32)
        else:
            raise DataError(f"{spec.source} has a continuous target; it cannot be a classification task")
    return data


def split_dataset(
    data: Dataset | ShardedDataset,
    test: float,
    validation: float,
    stratify: bool,
    seed: int,
    folds: int | None = None,
    fold: int | None = None,
) -> Split:
    """Split rows into train/validation/test, stratified by class when asked (classification).

    The test part is cut first (the same rows whatever the folds). The validation fraction is
    taken from what remains; with ``folds``/``fold``, fold number ``fold`` of a (stratified)
    K-fold over the remaining rows is the validation part instead.
    """
    idx = np.arange(len(data.y))
    strat = data.y if (stratify and data.task == "classification") else None
    try:
        rest, test_idx = train_test_split(idx, test_size=test, random_state=seed, stratify=strat)
        if folds is not None and fold is not None:
            splitter = StratifiedKFold if strat is not None else KFold
            cv = splitter(n_splits=folds, shuffle=True, random_state=seed)
            train_pos, val_pos = list(cv.split(rest, data.y[rest] if strat is not None else None))[fold]
            train_idx, val_idx = rest[train_pos], rest[val_pos]
        elif validation > 0:
            strat_rest = data.y[rest] if strat is not None else None
            train_idx, val_idx = train_test_split(
                rest, test_size=validation, random_state=seed + 1, stratify=strat_rest
            )
        else:
            train_idx, val_idx = rest, np.array([], dtype=np.int64)
    except ValueError as exc:
        hint = (
            " (a stratified split needs a row of every class in every part: larger fractions, more rows, "
            "or data.split.stratify: false)"
            if strat is not None
            else ""
        )
        raise DataError(f"cannot split the data: {exc}{hint}") from exc
    return Split(np.sort(train_idx), np.sort(val_idx), np.sort(test_idx))
