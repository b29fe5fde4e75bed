"""Which rows a run sees, beyond the split: a subset of the classes (transfer learning between
class groups), a few-shot cap on the training rows, and an ensemble member's sample of them.

Validation and test rows are never sampled here: every member of an ensemble, and a few-shot
run and its full-data comparison, are scored on the same rows.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.neighbors import NearestNeighbors

from ml.data.shards import ShardedDataset
from ml.data.sources import Dataset, Split
from ml.errors import DataError
from ml.spec import DataSpec


def select_classes(data: Dataset | ShardedDataset, classes: list[int] | None) -> Dataset | ShardedDataset:
    """Keep the rows of `classes` only, relabelled 0..k-1 in the order given.

    Args:
        data: a classification data set.
        classes: original class numbers (None: keep everything).

    Returns:
        The filtered data set (`class_names` follow the new labels).

    Raises:
        DataError: regression data, or a class the data set does not have.
    """
    if classes is None:
        return data
    if data.task != "classification":
        raise DataError("data.classes applies to classification data only")
    unknown = [c for c in classes if c >= data.n_classes]
    if unknown:
        raise DataError(f"data.classes {unknown} not in the data set, which has classes 0..{data.n_classes - 1}")
    keep = np.isin(data.y, classes)
    relabel = np.full(data.n_classes, -1, dtype=np.int64)
    relabel[classes] = np.arange(len(classes))
    if isinstance(data, ShardedDataset):
        return data.select(keep, relabel[data.y[keep]], [data.class_names[c] for c in classes])
    return Dataset(
        data.X[keep],
        relabel[data.y[keep]],
        data.task,
        data.feature_names,
        [data.class_names[c] for c in classes],
        data.image_shape,
    )


def resample_training_rows(train: np.ndarray, y: np.ndarray, method: str, index: int, of: int, seed: int) -> np.ndarray:
    """Member `index` of `of`'s training rows: a bootstrap sample or a disjoint share.

    Args:
        train: the training part's row indices.
        y: every row's target (disjoint shares keep class proportions when they can).
        method: ``bootstrap`` (as many rows as `train`, drawn with replacement, seeded by
            (seed, index)) or ``disjoint`` (the index-th of `of` stratified folds of `train`).
        index: the member's number, 0-based.
        of: how many members there are.
        seed: the ensemble's seed.

    Returns:
        Sorted row indices (with repeats for a bootstrap sample).
    """
    if method == "bootstrap":
        rng = np.random.default_rng([seed, index])
        return np.sort(rng.choice(train, size=len(train), replace=True))
    if len(train) < of:
        raise DataError(f"cannot share {len(train)} training rows among {of} members")
    labels = y[train]
    counts = np.unique(labels, return_counts=True)[1] if labels.dtype.kind in "iu" else np.array([0])
    splitter = StratifiedKFold if counts.min() >= of else KFold
    folds = splitter(n_splits=of, shuffle=True, random_state=seed).split(train, labels)
    return np.sort(train[list(folds)[index][1]])


def training_rows(split: Split, data: Dataset | ShardedDataset, spec: DataSpec, seed: int) -> Split:
    """The split with its training part capped (`max_train_samples`) and resampled (`sample`).

    Args:
        split: the honest train/validation/test split.
        data: the data set the split indexes.
        spec: the data block (max_train_samples, sample).
        seed: the experiment's seed.

    Returns:
        A split with the same validation and test rows.
    """
    train = split.train
    n = spec.max_train_samples
    if n is not None and n < len(train):
        strat = data.y[train] if data.task == "classification" else None
        try:
            train, _ = train_test_split(train, train_size=n, random_state=seed + 2, stratify=strat)
        except ValueError:  # fewer rows than classes: an unstratified draw
            train, _ = train_test_split(train, train_size=n, random_state=seed + 2)
        train = np.sort(train)
    if spec.sample is not None:
        s = spec.sample
        train = resample_training_rows(train, data.y, s.method, s.index, s.of, s.seed)
    return Split(train, split.validation, split.test)


def _standardized(X: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """X in the standardized units of `fit_rows` (missing values at the column mean)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nanmean(X[fit_rows], axis=0) if len(fit_rows) else np.zeros(X.shape[1])
        std = np.nanstd(X[fit_rows], axis=0) if len(fit_rows) else np.ones(X.shape[1])
    std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    return np.nan_to_num((X - np.nan_to_num(mean)) / std)


def _near(
    Z: np.ndarray, y: np.ndarray | None, query: np.ndarray, reference: np.ndarray, tolerance: float
) -> np.ndarray:
    """A mask over `query`: rows within `tolerance` of some `reference` row (of the same label
    when `y` is given)."""
    if len(query) == 0 or len(reference) == 0:
        return np.zeros(len(query), dtype=bool)
    found = NearestNeighbors(radius=tolerance).fit(Z[reference]).radius_neighbors(Z[query], return_distance=False)
    if y is None:
        return np.array([len(f) > 0 for f in found], dtype=bool)
    return np.array([bool(np.any(y[reference[f]] == y[q])) for q, f in zip(query, found, strict=True)], dtype=bool)


def drop_cross_split_duplicates(
    data: Dataset, split: Split, tolerance: float, same_label: bool
) -> tuple[Split, dict[str, int]]:
    """Drop the validation rows that (nearly) duplicate a training row, and the test rows that
    duplicate any row outside the test split (training or validation).

    Distances are Euclidean in the training rows' standardized units, as in the `deduplicate`
    step. The test side is measured against every non-test row, not the run's own training
    part, so that all folds of a k-fold and all members of an ensemble keep the same test rows.

    Returns:
        The split without those rows, and how many were dropped from each part.
    """
    Z = _standardized(data.X, split.train)
    labels = data.y if (same_label and data.task == "classification") else None
    outside_test = np.setdiff1d(np.arange(len(data.y)), split.test)
    drop_val = _near(Z, labels, split.validation, split.train, tolerance)
    drop_test = _near(Z, labels, split.test, outside_test, tolerance)
    kept = Split(split.train, split.validation[~drop_val], split.test[~drop_test])
    return kept, {"validation_removed": int(drop_val.sum()), "test_removed": int(drop_test.sum())}
