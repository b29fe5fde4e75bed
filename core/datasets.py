"""Uploaded data sets: read and check a CSV or NPZ file as it is stored, and load it back.

Every problem is a `DatasetError` that names the line or the column at fault, so the API can
answer 400/422 with something a person can fix. Numpy only: the API process stays light.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAX_CLASSES_FOR_CLASSIFICATION = 50
MAX_COLUMNS = 10_000


class DatasetError(ValueError):
    """A malformed or unusable upload; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Table:
    """A parsed CSV: numeric columns as floats (nan = missing), categorical ones as strings."""

    columns: list[str]
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def parse_csv(raw: bytes, allow_missing: bool = False) -> Table:
    """Parse a CSV with a header row. A column whose every value is a number is numeric; one
    with no number at all is categorical; a mix is an error naming the first bad line."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"not a CSV: the file is not UTF-8 text (byte {exc.start})") from exc
    if "\x00" in text[:4096]:
        raise DatasetError("not a CSV: the file looks binary")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DatasetError("not a CSV: the first line must be a header with the column names")
    columns = [h.strip() for h in header]
    if len(columns) > MAX_COLUMNS:
        raise DatasetError(f"too many columns ({len(columns)} > {MAX_COLUMNS})", 413)
    if len(set(columns)) != len(columns) or "" in columns:
        raise DatasetError("the header has empty or repeated column names")
    cells: list[list[str]] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(columns):
            raise DatasetError(f"line {line_no}: {len(row)} values, but the header has {len(columns)} columns")
        cells.append([c.strip() for c in row])
    if not cells:
        raise DatasetError("the CSV has a header but no data rows")
    table = Table(columns=columns, rows=len(cells))
    for j, name in enumerate(columns):
        _parse_column(table, name, [r[j] for r in cells], allow_missing)
    return table


def _parse_column(table: Table, name: str, values: list[str], allow_missing: bool) -> None:
    numbers = [_number(v) if v else None for v in values]
    present = [i for i, v in enumerate(values) if v]
    missing = len(values) - len(present)
    if missing and not allow_missing:
        first = values.index("") + 2
        raise DatasetError(
            f"column {name!r}: missing value on line {first} ({missing} in all); upload with "
            "allow_missing=true and add an {step: impute} preprocessing step"
        )
    numeric = [i for i in present if numbers[i] is not None]
    if numeric and len(numeric) < len(present):
        bad = next(i for i in present if numbers[i] is None)
        raise DatasetError(f"line {bad + 2}, column {name!r}: {values[bad]!r} is not a number (the column is numeric)")
    if numeric or not present:
        table.numeric[name] = np.array([np.nan if n is None else n for n in numbers], dtype=np.float64)
    else:
        table.categorical[name] = values


def parse_npz(raw: bytes) -> dict[str, np.ndarray]:
    """An NPZ with arrays X (rows first; images as N x H x W or N x C x H x W) and y."""
    try:
        archive = np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"not an NPZ file: {exc}") from exc
    missing = {"X", "y"} - set(archive.files)
    if missing:
        raise DatasetError(f"the NPZ needs arrays X and y; missing: {', '.join(sorted(missing))}")
    try:
        X, y = archive["X"], archive["y"]
    except ValueError as exc:  # object arrays need pickle: refused
        raise DatasetError(f"the NPZ arrays must be numeric (no pickled objects): {exc}") from exc
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DatasetError(f"X and y must be numeric arrays (got {X.dtype} and {y.dtype})")
    if X.ndim < 2 or y.ndim != 1 or len(X) != len(y):
        raise DatasetError(f"X must have rows first and y one value per row (X {X.shape}, y {y.shape})")
    if not np.isfinite(X).all():
        raise DatasetError("X has missing or infinite values")
    return {"X": X, "y": y}


def class_counts(y: np.ndarray) -> dict[str, int] | None:
    """Counts per class when the target looks like classes (few integer values), else None."""
    finite = y[np.isfinite(y)] if y.dtype.kind == "f" else y
    values, counts = np.unique(finite, return_counts=True)
    if len(values) > MAX_CLASSES_FOR_CLASSIFICATION or not np.all(np.equal(np.mod(values, 1), 0)):
        return None
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def describe(raw: bytes, fmt: str, target: str | None, allow_missing: bool) -> dict[str, Any]:
    """Check an upload and describe it (shape, columns, class counts). Raises DatasetError."""
    if fmt == "npz":
        arrays = parse_npz(raw)
        counts = class_counts(arrays["y"])
        _check_classes(counts)
        return {
            "format": "npz",
            "rows": int(len(arrays["y"])),
            "shape": list(arrays["X"].shape),
            "class_counts": counts,
        }
    table = parse_csv(raw, allow_missing)
    info: dict[str, Any] = {
        "format": "csv",
        "rows": table.rows,
        "columns": table.columns,
        "categorical": sorted(table.categorical),
        "missing": {n: int(np.isnan(v).sum()) for n, v in table.numeric.items() if np.isnan(v).any()},
    }
    if target is not None:
        info["target"] = target
        info["class_counts"] = _target_counts(table, target)
    return info


def _target_counts(table: Table, target: str) -> dict[str, int] | None:
    if target not in table.columns:
        raise DatasetError(f"target column {target!r} does not exist; columns: {', '.join(table.columns)}", 422)
    if target in table.categorical:
        names, counts = np.unique(table.categorical[target], return_counts=True)
        result = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
    else:
        if np.isnan(table.numeric[target]).any():
            raise DatasetError(f"target column {target!r} has missing values", 422)
        result = class_counts(table.numeric[target])
    _check_classes(result)
    return result


def _check_classes(counts: dict[str, int] | None) -> None:
    if counts is not None and len(counts) < 2:
        only = next(iter(counts), "?")
        raise DatasetError(f"the target has one class only ({only!r}): nothing to learn", 422)


@dataclass
class LoadedTable:
    """Arrays ready for training (the worker wraps them into an `ml.data.Dataset`)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    task: str
    image_shape: tuple[int, ...] | None = None


def load_upload(raw: bytes, fmt: str, target: str | None, one_hot: bool) -> LoadedTable:
    """Turn a stored upload into features and targets. Raises DatasetError."""
    if fmt == "npz":
        arrays = parse_npz(raw)
        X, y = arrays["X"], arrays["y"]
        image_shape = (1, *X.shape[1:]) if X.ndim == 3 else tuple(X.shape[1:]) if X.ndim == 4 else None
        counts = class_counts(y)
        flat = X.reshape(len(X), -1).astype(np.float32)
        names = [f"x{i}" for i in range(flat.shape[1])]
        if counts is None:
            return LoadedTable(flat, y.astype(np.float32), names, [], "regression", image_shape)
        labels = sorted(int(k) for k in counts)
        mapped = np.searchsorted(np.array(labels), y.astype(np.int64))
        return LoadedTable(flat, mapped, names, [str(v) for v in labels], "classification", image_shape)
    table = parse_csv(raw, allow_missing=True)
    if target is None:
        raise DatasetError("this CSV data set needs data.target: the name of the column to predict", 422)
    _target_counts(table, target)
    features, names = _features(table, target, one_hot)
    y, class_names, task = _target(table, target)
    return LoadedTable(features, y, names, class_names, task)


def _features(table: Table, target: str, one_hot: bool) -> tuple[np.ndarray, list[str]]:
    blocks, names = [], []
    categorical = [c for c in table.categorical if c != target]
    if categorical and not one_hot:
        raise DatasetError(
            f"columns {', '.join(categorical)} are categorical: set data.one_hot: true to one-hot encode them", 422
        )
    for column in table.columns:
        if column == target:
            continue
        if column in table.numeric:
            blocks.append(table.numeric[column][:, None])
            names.append(column)
        else:
            values = np.array(table.categorical[column])
            for level in sorted(set(values)):
                blocks.append((values == level).astype(np.float64)[:, None])
                names.append(f"{column}={level}")
    if not blocks:
        raise DatasetError("no feature columns besides the target", 422)
    return np.hstack(blocks).astype(np.float32), names


def _target(table: Table, target: str) -> tuple[np.ndarray, list[str], str]:
    if target in table.categorical:
        labels = sorted(set(table.categorical[target]))
        index = {label: i for i, label in enumerate(labels)}
        return np.array([index[v] for v in table.categorical[target]], dtype=np.int64), labels, "classification"
    values = table.numeric[target]
    counts = class_counts(values)
    if counts is None:
        return values.astype(np.float32), [], "regression"
    labels = sorted(int(k) for k in counts)
    return np.searchsorted(np.array(labels), values.astype(np.int64)), [str(v) for v in labels], "classification"
