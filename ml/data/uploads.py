"""Uploaded data sets: read and check a CSV or NPZ file as it is stored, and load it back.

Every problem is a `DatasetError` that names the line or the column at fault and says what kind
of problem it is, so the host can answer with something a person can fix. Numpy only (no torch,
no scikit-learn): the API process checks uploads with it and stays light.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ml.errors import DataError
from ml.spec.base import Task

Problem = Literal["malformed", "too_large", "unusable"]
MAX_CLASSES_FOR_CLASSIFICATION = 50
MAX_COLUMNS = 10_000
MAX_CELLS = 50_000_000  # values of one CSV (8 bytes each once parsed)
BLOCK_BYTES = 16 * 1024 * 1024  # NPZ values checked a block at a time


class DatasetError(DataError):
    """A malformed or unusable upload. `problem` says which kind, for the host to answer with
    (the API: 400 malformed, 413 too large, 422 unusable for learning)."""

    def __init__(self, message: str, problem: Problem = "malformed") -> None:
        super().__init__(message)
        self.problem = problem


@dataclass
class Table:
    """A parsed CSV: numeric columns as floats (nan = missing), categorical ones as strings."""

    columns: list[str]
    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    rows: int = 0


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on an NPZ (a zip archive) checked before anything is inflated."""

    max_expanded_bytes: int = 1024**3
    max_ratio: float = 100.0  # inflated / compressed size of one member (zip bombs reach ~1000)
    max_members: int = 16


def parse_csv(raw: bytes, allow_missing: bool = False) -> Table:
    """Parse a CSV with a header row. A column whose every value is a number is numeric; one
    with no number at all is categorical; a mix is an error naming the first bad line.

    Numbers go straight into one float array (8 bytes a cell); only text cells are kept as
    strings, so a wide numeric table costs about its size in floats, not a Python string per cell.
    """
    if b"\x00" in raw[:4096]:
        raise DatasetError("not a CSV: the file looks binary")
    try:  # decoded as it is read: the text is never held whole beside the bytes
        text = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
        return _parse_csv_text(csv.reader(text), allow_missing)
    except UnicodeDecodeError as exc:
        raise DatasetError(f"not a CSV: the file is not UTF-8 text ({exc.reason})") from exc


def _parse_csv_text(reader: Any, allow_missing: bool) -> Table:
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DatasetError("not a CSV: the first line must be a header with the column names")
    columns = [h.strip() for h in header]
    if len(columns) > MAX_COLUMNS:
        raise DatasetError(f"too many columns ({len(columns)} > {MAX_COLUMNS})", "too_large")
    if len(set(columns)) != len(columns) or "" in columns:
        raise DatasetError("the header has empty or repeated column names")
    values, texts, lines = _read_cells(reader, len(columns))
    table = Table(columns=columns, rows=len(values))
    for j, name in enumerate(columns):
        _parse_column(table, name, values[:, j], texts.get(j, {}), lines, allow_missing)
    return table


def _read_cells(reader: Any, width: int) -> tuple[np.ndarray, dict[int, dict[int, str]], list[int]]:
    """All data rows: numbers in a float array (nan where a cell is empty or text), the text
    cells by column and row, and each row's line number."""
    values = np.empty((1024, width), dtype=np.float64)
    texts: dict[int, dict[int, str]] = {}
    lines: list[int] = []
    for line_no, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != width:
            raise DatasetError(f"line {line_no}: {len(row)} values, but the header has {width} columns")
        i = len(lines)
        if i == len(values):
            if (i * 2) * width > MAX_CELLS:
                raise DatasetError(f"too many values (more than {MAX_CELLS} cells)", "too_large")
            values = np.resize(values, (i * 2, width))
        lines.append(line_no)
        cells = [c.strip() for c in row]
        try:
            values[i] = cells
        except ValueError:  # empty or text cells in this row: one by one
            for j, cell in enumerate(cells):
                number = _number(cell) if cell else None
                values[i, j] = np.nan if number is None else number
                if cell and number is None:
                    texts.setdefault(j, {})[i] = cell
    if not lines:
        raise DatasetError("the CSV has a header but no data rows")
    return values[: len(lines)], texts, lines


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _parse_column(
    table: Table, name: str, numbers: np.ndarray, texts: dict[int, str], lines: list[int], allow_missing: bool
) -> None:
    empty = np.isnan(numbers)
    if texts:
        empty[list(texts)] = False
    missing = int(empty.sum())
    if missing and not allow_missing:
        first = lines[int(np.argmax(empty))]
        raise DatasetError(
            f"column {name!r}: missing value on line {first} ({missing} in all); upload with "
            "allow_missing=true and add an {step: impute} preprocessing step"
        )
    present = len(numbers) - missing
    if texts and len(texts) < present:
        bad = min(texts)
        raise DatasetError(
            f"line {lines[bad]}, column {name!r}: {texts[bad]!r} is not a number (the column is numeric)"
        )
    if texts:
        table.categorical[name] = [texts.get(i, "") for i in range(len(numbers))]
    else:
        table.numeric[name] = numbers.copy()


def _check_archive(raw: bytes, limits: ArchiveLimits) -> zipfile.ZipFile:
    """Open an NPZ's zip directory and refuse it before inflating anything if it would expand
    past the limits (a zip bomb) or holds too many members."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise DatasetError(f"not an NPZ file: {exc}") from exc
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise DatasetError(f"the NPZ holds {len(infos)} arrays; at most {limits.max_members}", "too_large")
    total = sum(i.file_size for i in infos)
    if total > limits.max_expanded_bytes:
        raise DatasetError(f"the NPZ inflates to {total} bytes; the limit is {limits.max_expanded_bytes}", "too_large")
    for info in infos:
        if info.file_size > 1024**2 and info.file_size > limits.max_ratio * max(1, info.compress_size):
            ratio = info.file_size / max(1, info.compress_size)
            raise DatasetError(
                f"{info.filename}: compressed {ratio:.0f}:1, more than the allowed {limits.max_ratio:g}:1 "
                "(a data set is not that repetitive; a zip bomb is)",
                "too_large",
            )
    return archive


def _array_header(archive: zipfile.ZipFile, name: str) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset of one .npy member, checked against the member's size (a
    forged header must not make numpy allocate what the file does not hold)."""
    info = archive.getinfo(f"{name}.npy")
    with archive.open(info) as member:
        try:
            major, _ = np.lib.format.read_magic(member)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(member)
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise DatasetError(f"{name}.npy is not a numpy array: {exc}") from exc
        offset = member.tell()
    if dtype.hasobject:
        raise DatasetError(f"the NPZ arrays must be numeric (no pickled objects): {name} holds objects")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected != info.file_size - offset:
        raise DatasetError(
            f"{name}.npy: its header says shape {tuple(shape)} ({expected} bytes) "
            f"but it holds {info.file_size - offset} bytes"
        )
    return tuple(shape), dtype, offset


def parse_npz(raw: bytes, limits: ArchiveLimits | None = None) -> dict[str, np.ndarray]:
    """An NPZ with arrays X (rows first; images as N x H x W or N x C x H x W) and y, checked
    within `limits` before it is inflated."""
    archive = _check_archive(raw, limits or ArchiveLimits())
    names = {n.removesuffix(".npy") for n in archive.namelist()}
    missing = {"X", "y"} - names
    if missing:
        raise DatasetError(f"the NPZ needs arrays X and y; missing: {', '.join(sorted(missing))}")
    for name in ("X", "y"):
        _array_header(archive, name)
    try:
        arrays = np.load(io.BytesIO(raw), allow_pickle=False)
        X, y = arrays["X"], arrays["y"]
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"not an NPZ file: {exc}") from exc
    _check_arrays(X.shape, X.dtype, y)
    if not np.isfinite(X).all():
        raise DatasetError("X has missing or infinite values")
    return {"X": X, "y": y}


def _check_arrays(x_shape: tuple[int, ...], x_dtype: np.dtype, y: np.ndarray) -> None:
    if x_dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise DatasetError(f"X and y must be numeric arrays (got {x_dtype} and {y.dtype})")
    if len(x_shape) < 2 or y.ndim != 1 or x_shape[0] != len(y):
        raise DatasetError(f"X must have rows first and y one value per row (X {x_shape}, y {y.shape})")


def inspect_npz(raw: bytes, limits: ArchiveLimits) -> tuple[tuple[int, ...], np.ndarray]:
    """X's shape and y, checked as `parse_npz` does but without holding X: its values are
    checked for finiteness a block at a time, so the API's memory stays bounded whatever X's size."""
    archive = _check_archive(raw, limits)
    if {"X.npy", "y.npy"} - set(archive.namelist()):
        missing = sorted({"X", "y"} - {n.removesuffix(".npy") for n in archive.namelist()})
        raise DatasetError(f"the NPZ needs arrays X and y; missing: {', '.join(missing)}")
    shape, dtype, offset = _array_header(archive, "X")
    _array_header(archive, "y")
    try:
        y = np.load(io.BytesIO(archive.read("y.npy")), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DatasetError(f"y.npy is not a numpy array: {exc}") from exc
    _check_arrays(shape, dtype, y)
    if dtype.kind == "f":
        block = max(1, BLOCK_BYTES // dtype.itemsize) * dtype.itemsize
        with archive.open("X.npy") as member:
            member.read(offset)
            while chunk := member.read(block):
                if not np.isfinite(np.frombuffer(chunk, dtype=dtype)).all():
                    raise DatasetError("X has missing or infinite values")
    return shape, y


def class_counts(y: np.ndarray) -> dict[str, int] | None:
    """Counts per class when the target looks like classes (few integer values), else None."""
    finite = y[np.isfinite(y)] if y.dtype.kind == "f" else y
    values, counts = np.unique(finite, return_counts=True)
    if len(values) > MAX_CLASSES_FOR_CLASSIFICATION or not np.all(np.equal(np.mod(values, 1), 0)):
        return None
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def describe(
    raw: bytes, fmt: str, target: str | None, allow_missing: bool, limits: ArchiveLimits | None = None
) -> dict[str, Any]:
    """Check an upload and describe it (shape, columns, class counts). Raises DatasetError."""
    if fmt == "npz":
        shape, y = inspect_npz(raw, limits or ArchiveLimits())
        counts = class_counts(y)
        _check_classes(counts)
        return {"format": "npz", "rows": int(len(y)), "shape": list(shape), "class_counts": counts}
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
        raise DatasetError(f"target column {target!r} does not exist; columns: {', '.join(table.columns)}", "unusable")
    result: dict[str, int] | None
    if target in table.categorical:
        names, counts = np.unique(table.categorical[target], return_counts=True)
        result = {str(n): int(c) for n, c in zip(names, counts, strict=True)}
    else:
        if np.isnan(table.numeric[target]).any():
            raise DatasetError(f"target column {target!r} has missing values", "unusable")
        result = class_counts(table.numeric[target])
    _check_classes(result)
    return result


def _check_classes(counts: dict[str, int] | None) -> None:
    if counts is not None and len(counts) < 2:
        only = next(iter(counts), "?")
        raise DatasetError(f"the target has one class only ({only!r}): nothing to learn", "unusable")


@dataclass
class LoadedTable:
    """Arrays ready for training (the worker wraps them into an `ml.data.sources.Dataset`)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    class_names: list[str]
    task: Task
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
        raise DatasetError("this CSV data set needs data.target: the name of the column to predict", "unusable")
    _target_counts(table, target)
    features, names = _features(table, target, one_hot)
    y, class_names, task = _target(table, target)
    return LoadedTable(features, y, names, class_names, task)


def _features(table: Table, target: str, one_hot: bool) -> tuple[np.ndarray, list[str]]:
    blocks, names = [], []
    categorical = [c for c in table.categorical if c != target]
    if categorical and not one_hot:
        raise DatasetError(
            f"columns {', '.join(categorical)} are categorical: set data.one_hot: true to one-hot encode them",
            "unusable",
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
        raise DatasetError("no feature columns besides the target", "unusable")
    return np.hstack(blocks).astype(np.float32), names


def _target(table: Table, target: str) -> tuple[np.ndarray, list[str], Task]:
    if target in table.categorical:
        labels = sorted(set(table.categorical[target]))
        index = {label: i for i, label in enumerate(labels)}
        return np.array([index[v] for v in table.categorical[target]], dtype=np.int64), labels, "classification"
    values = table.numeric[target]
    counts = class_counts(values)
    if counts is None:
        return values.astype(np.float32), [], "regression"
    codes = sorted(int(k) for k in counts)
    return np.searchsorted(np.array(codes), values.astype(np.int64)), [str(v) for v in codes], "classification"
