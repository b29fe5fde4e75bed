"""Folder data sets larger than the memory budget: decoded member by member into fixed-size
shards, read back shard by shard.

`write_shards` decodes an archive (`ml.data.perceptual`'s decoding and features, computed in the
same batches, so a row is the same as in memory) into ``shard-00000.npy``, ``shard-00001.npy``...
of `shard_rows` float32 rows each, plus ``labels.npy`` (the class of every row), ``keys.npy``
(a 16-byte digest of every row: exact duplicates across splits are found without the rows) and
``meta.json`` (written last: a set without it is incomplete). At most one shard and one batch of
clips are in memory while it writes.

`ShardedDataset` is what a run gets instead of a `Dataset`: labels in memory, features read one
shard at a time through `read` (from a local folder or the host's artifact store). Splits need
the labels only; `groups` tells which shards hold a set of rows. The host decides when to stream
with `should_stream`, from `in_memory_bytes` and the worker's budget.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ml.data.folders import FolderLimits, read_members
from ml.data.uploads import DatasetError
from ml.errors import DataError
from ml.spec import AudioSpec, ImageSpec
from ml.spec.base import Task

SHARD_VERSION = 1  # bump when the layout changes: old shard sets are then rebuilt
META = "meta.json"
LABELS = "labels.npy"
KEYS = "keys.npy"
KEY_BYTES = 16
SHARDS_PER_BUDGET = 8  # a shard is at most this fraction of the budget: a few are in memory at once
DEFAULT_SHARD_BYTES = 64 * 1024**2  # without a budget
AUDIO_ROW_MULTIPLE = 64  # audio shards hold whole feature batches (the rows are those decoded in memory)
IMAGE_ROW_MULTIPLE = 8
# A run in memory holds about this many copies of the decoded features at its peak: the data set,
# the training rows, their preprocessed copy (standardize) and their tensor.
IN_MEMORY_COPIES = 4


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.npy"


# --- sizes -------------------------------------------------------------------------------------


def resampled_length(frames: int, rate: int, sample_rate: int) -> int:
    """How many samples a clip of `frames` at `rate` has once resampled to `sample_rate` (as
    `ml.data.perceptual.decode_audio` resamples: scipy's polyphase filter)."""
    if rate == sample_rate:
        return frames
    ratio = Fraction(sample_rate, rate).limit_denominator(1000)
    return math.ceil(frames * ratio.numerator / ratio.denominator)


def clip_length(spec: AudioSpec, shortest_seconds: float) -> int:
    """Samples per clip after cutting or padding (`load_folder_dataset`'s rule)."""
    from ml.data.perceptual import DEFAULT_MAX_CLIP_SECONDS

    seconds = spec.clip_seconds if spec.clip_seconds is not None else min(shortest_seconds, DEFAULT_MAX_CLIP_SECONDS)
    return max(1 if spec.features == "waveform" else spec.n_fft, int(round(seconds * spec.sample_rate)))


def row_shape(kind: str, settings: AudioSpec | ImageSpec, shortest_seconds: float | None = None) -> tuple[int, ...]:
    """The C x H x W shape of one decoded sample."""
    if kind == "audio":
        assert isinstance(settings, AudioSpec)
        if settings.features == "waveform":
            return (1, 1, clip_length(settings, shortest_seconds or 0.0))
        frames = clip_length(settings, shortest_seconds or 0.0) // settings.hop_length + 1  # torch.stft, center=True
        bands = settings.n_mfcc if settings.features == "mfcc" else settings.n_mels
        return (1, bands, frames)
    assert isinstance(settings, ImageSpec)
    return (3 if settings.color == "rgb" else 1, *settings.size)


def feature_bytes(kind: str, settings: AudioSpec | ImageSpec, files: int, shortest_seconds: float | None) -> int:
    """Bytes of the decoded features of `files` samples (float32)."""
    return 4 * files * math.prod(row_shape(kind, settings, shortest_seconds))


def in_memory_bytes(kind: str, settings: AudioSpec | ImageSpec, files: int, shortest_seconds: float | None) -> int:
    """About what a run holds at its peak when it decodes the archive into memory: the features
    `IN_MEMORY_COPIES` times, and for audio every clip's samples while they are decoded."""
    total = IN_MEMORY_COPIES * feature_bytes(kind, settings, files, shortest_seconds)
    if kind == "audio":
        assert isinstance(settings, AudioSpec)
        total += 2 * 4 * files * clip_length(settings, shortest_seconds or 0.0)  # the clips and their stack
    return total


def megabytes(n: float) -> str:
    return f"{n / 1024**2:.1f} MB"


def should_stream(choice: bool | str, needed_bytes: int, budget_bytes: int | None) -> bool:
    """Whether a folder data set is streamed: ``data.stream`` true, or ``auto`` and a run in
    memory would need more than the worker's budget.

    Raises:
        DataError: ``data.stream: false`` while the run in memory would exceed the budget.
    """
    over = budget_bytes is not None and needed_bytes > budget_bytes
    if choice is True:
        return True
    if choice is False and over:
        raise DataError(
            f"data.stream is false, but decoding this data set into memory needs about {megabytes(needed_bytes)}, "
            f"more than the worker's data memory budget of {megabytes(budget_bytes or 0)} "
            "(TRAINLAB_WORKER_DATA_MEMORY_MB); use data.stream: auto to stream it shard by shard"
        )
    return choice == "auto" and over


def shard_rows_for(row_bytes: int, budget_bytes: int | None, multiple: int = IMAGE_ROW_MULTIPLE) -> int:
    """Rows per shard: a multiple of `multiple` rows of at most 1/8 of the budget (at least `multiple`)."""
    target = DEFAULT_SHARD_BYTES if budget_bytes is None else budget_bytes // SHARDS_PER_BUDGET
    return max(multiple, target // max(row_bytes, 1) // multiple * multiple)


# --- writing -----------------------------------------------------------------------------------


class _ShardWriter:
    """Rows in, `shard_rows`-row files out; keeps one shard in memory."""

    def __init__(self, directory: Path, shard_rows: int, width: int, on_file: Callable[[Path], None]) -> None:
        self.directory, self.shard_rows, self.on_file = directory, shard_rows, on_file
        self.buffer = np.empty((shard_rows, width), dtype=np.float32)
        self.filled, self.shards, self.rows = 0, 0, 0
        self.keys: list[bytes] = []

    def add(self, rows: np.ndarray) -> None:
        rows = rows.reshape(len(rows), -1)
        if rows.shape[1] != self.buffer.shape[1]:
            raise DatasetError(
                f"a sample decoded to {rows.shape[1]} values, the others to {self.buffer.shape[1]}", "unusable"
            )
        for row in rows:
            self.keys.append(hashlib.blake2b(row.tobytes(), digest_size=KEY_BYTES).digest())
        offset = 0
        while offset < len(rows):
            take = min(len(rows) - offset, self.shard_rows - self.filled)
            self.buffer[self.filled : self.filled + take] = rows[offset : offset + take]
            self.filled, offset = self.filled + take, offset + take
            if self.filled == self.shard_rows:
                self.flush()

    def flush(self) -> None:
        if self.filled == 0:
            return
        path = self.directory / shard_name(self.shards)
        np.save(path, self.buffer[: self.filled])
        self.on_file(path)
        self.rows += self.filled
        self.shards, self.filled = self.shards + 1, 0


def _shortest_seconds(path: str | Path, spec: AudioSpec, limits: FolderLimits | None) -> float:
    """The shortest clip's length once resampled (a first pass reading the headers only)."""
    from ml.data.folders import audio_info

    shortest = math.inf
    for _, name, data in read_members(path, limits):
        info = audio_info(data, name)
        frames = int(round(info["seconds"] * info["sample_rate"]))
        shortest = min(shortest, resampled_length(frames, info["sample_rate"], spec.sample_rate) / spec.sample_rate)
    if not math.isfinite(shortest):
        raise DatasetError("the archive holds no audio clips", "unusable")
    return shortest


def write_shards(
    path: str | Path,
    kind: str,
    directory: str | Path,
    *,
    audio: AudioSpec | None = None,
    image: ImageSpec | None = None,
    budget_bytes: int | None = None,
    limits: FolderLimits | None = None,
    on_file: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Decode a folder archive into shards in `directory`, member by member.

    Args:
        path: the archive on disk.
        kind: ``audio`` or ``image``.
        directory: where the files go (created).
        audio, image: the decoding settings of the kind.
        budget_bytes: the worker's data memory budget (sizes the shards).
        limits: the archive's bounds.
        on_file: called with each file once written (a host copies it to its store; it may
            delete it then).

    Returns:
        The set's description (``meta.json``).
    """
    from ml.data.perceptual import (
        FEATURE_BATCH,
        audio_features,
        decode_audio,
        decode_image,
        fix_length,
        waveform_features,
    )

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    on_file = on_file or (lambda _: None)
    labels: list[str] = []
    if kind == "audio":
        spec = audio or AudioSpec()
        shortest = None if spec.clip_seconds is not None else _shortest_seconds(path, spec, limits)
        shape = row_shape(kind, spec, shortest)
        length = clip_length(spec, shortest or 0.0)
        rows = shard_rows_for(4 * math.prod(shape), budget_bytes, AUDIO_ROW_MULTIPLE)
        writer = _ShardWriter(out, rows, math.prod(shape), on_file)
        pending: list[np.ndarray] = []

        def features(clips: list[np.ndarray]) -> np.ndarray:
            fixed = np.stack(clips).astype(np.float32)
            return waveform_features(fixed) if spec.features == "waveform" else audio_features(fixed, spec)

        for label, name, data in read_members(path, limits):
            pending.append(fix_length(decode_audio(data, name, spec.sample_rate), length, spec.crop))
            labels.append(label)
            if len(pending) == FEATURE_BATCH:  # the batches of the in-memory decoding: the same rows
                writer.add(features(pending))
                pending = []
        if pending:
            writer.add(features(pending))
    elif kind == "image":
        ispec = image or ImageSpec()
        shape = row_shape(kind, ispec)
        writer = _ShardWriter(out, shard_rows_for(4 * math.prod(shape), budget_bytes), math.prod(shape), on_file)
        for label, name, data in read_members(path, limits):
            writer.add(decode_image(data, name, ispec)[None])
            labels.append(label)
    else:
        raise DatasetError(f"unknown folder data set kind {kind!r}", "unusable")
    writer.flush()
    if not labels:
        raise DatasetError(f"the archive holds no {'audio clips' if kind == 'audio' else 'images'}", "unusable")
    classes = sorted(set(labels))
    y = np.searchsorted(np.asarray(classes), np.asarray(labels)).astype(np.int64)
    for name, array in ((LABELS, y), (KEYS, np.frombuffer(b"".join(writer.keys), dtype=np.uint8))):
        np.save(out / name, array.reshape(len(y), -1) if name == KEYS else array)
        on_file(out / name)
    meta = {
        "version": SHARD_VERSION,
        "kind": kind,
        "rows": int(len(y)),
        "shard_rows": writer.shard_rows,
        "shards": writer.shards,
        "row_shape": list(shape),
        "classes": classes,
    }
    (out / META).write_text(json.dumps(meta))
    on_file(out / META)
    return meta


# --- reading -----------------------------------------------------------------------------------


@dataclass
class ShardedDataset:
    """A classification data set whose features stay in shards; labels and row digests in memory.

    Rows are numbered 0..len(y)-1 as a `Dataset`'s are; `index` maps them to the rows of the
    shards (a subset of the classes keeps some of them). `read(name)` returns a file of the set
    as an array (``shard-00003.npy``...).
    """

    y: np.ndarray
    class_names: list[str]
    image_shape: tuple[int, ...]
    shard_rows: int
    shards: int
    read: Callable[[str], np.ndarray]
    stored_rows: int  # rows of all the shards (a subset of the classes keeps some of them)
    row_keys: np.ndarray  # (rows, 16) uint8: a digest of each row's features
    index: np.ndarray  # row -> row of the shards
    budget_bytes: int | None = None
    on_damaged: Callable[[], None] | None = None  # the host discards the set (the next run decodes again)
    task: Task = "classification"
    _feature_names: list[str] = field(default_factory=list, repr=False)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_features(self) -> int:
        return math.prod(self.image_shape)

    @property
    def feature_names(self) -> list[str]:
        if not self._feature_names:
            self._feature_names = [f"f{i}" for i in range(self.n_features)]
        return self._feature_names

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded features of its rows."""
        return 4 * len(self.y) * self.n_features

    def describe_budget(self) -> str:
        budget = "no budget" if self.budget_bytes is None else f"the worker's budget of {megabytes(self.budget_bytes)}"
        return f"{megabytes(self.nbytes)} of decoded features, streamed shard by shard ({budget})"

    def shard_length(self, number: int) -> int:
        """Rows of shard `number`: `shard_rows`, the last one the remainder."""
        return min(self.shard_rows, self.stored_rows - number * self.shard_rows)

    def shard(self, number: int) -> np.ndarray:
        """The features of one shard, (rows, features) float32.

        Raises:
            DatasetError: the file is not the shard the set's description says (its width, type or
                number of rows: a shard of another writer's set would pair rows with wrong labels).
        """
        array = self.read(shard_name(number))
        expected = (self.shard_length(number), self.n_features)
        if array.ndim != 2 or array.shape != expected or array.dtype != np.float32:
            if self.on_damaged is not None:
                self.on_damaged()
            then = "the next run decodes them again" if self.on_damaged else "write them again"
            raise DatasetError(
                f"{shard_name(number)} of the data set's shards holds {array.shape} {array.dtype} values, not "
                f"{expected[0]} rows of {expected[1]} float32 (shard {number} of {self.shards}, {self.shard_rows} "
                f"rows each): the shards are damaged; {then}",
                "malformed",
            )
        return array

    def groups(self, rows: np.ndarray) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(shard, positions inside the shard, positions in `rows`) for each shard holding some of
        `rows`, shards in increasing order, the rows of a shard in the order `rows` gives them."""
        rows = np.asarray(rows, dtype=np.int64)
        physical = self.index[rows]
        shard_of = physical // self.shard_rows
        order = np.argsort(shard_of, kind="stable")
        out = []
        bounds = np.flatnonzero(np.diff(shard_of[order])) + 1
        for chunk in np.split(order, bounds) if len(order) else []:
            number = int(shard_of[chunk[0]])
            out.append((number, physical[chunk] - number * self.shard_rows, chunk))
        return out

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """The features of a few rows, in the order given (reads each shard holding one)."""
        out = np.empty((len(rows), self.n_features), dtype=np.float32)
        for number, inside, positions in self.groups(rows):
            out[positions] = self.shard(number)[inside]
        return out

    def select(self, keep: np.ndarray, y: np.ndarray, class_names: list[str]) -> ShardedDataset:
        """The rows of the boolean mask `keep`, relabelled `y`."""
        return replace(self, y=y, class_names=class_names, row_keys=self.row_keys[keep], index=self.index[keep])


def open_shards(
    meta: dict[str, Any],
    read: Callable[[str], np.ndarray],
    budget_bytes: int | None = None,
    on_damaged: Callable[[], None] | None = None,
) -> ShardedDataset:
    """The shard set `write_shards` described by `meta`, its files read through `read`;
    `on_damaged` is called when a shard read later does not match it.

    Raises:
        DatasetError: the set is from another version or its files do not match it.
    """
    if meta.get("version") != SHARD_VERSION:
        raise DatasetError("the shards were written by another version; they are rebuilt", "malformed")
    y, keys = read(LABELS), read(KEYS)
    rows, shard_rows, shards = int(meta["rows"]), int(meta["shard_rows"]), int(meta["shards"])
    if y.shape != (rows,) or keys.shape != (rows, KEY_BYTES):
        raise DatasetError("the shards' labels do not match their description; they are rebuilt", "malformed")
    if shard_rows < 1 or shards != -(-rows // shard_rows):
        raise DatasetError(
            f"{shards} shards of {shard_rows} rows do not hold {rows} rows; they are rebuilt", "malformed"
        )
    return ShardedDataset(
        y=y.astype(np.int64),
        class_names=[str(c) for c in meta["classes"]],
        image_shape=tuple(int(d) for d in meta["row_shape"]),
        shard_rows=shard_rows,
        shards=shards,
        read=read,
        stored_rows=rows,
        row_keys=keys,
        index=np.arange(rows, dtype=np.int64),
        budget_bytes=budget_bytes,
        on_damaged=on_damaged,
    )


def local_reader(directory: str | Path) -> Callable[[str], np.ndarray]:
    """Reads the files of a shard set in a local folder."""
    root = Path(directory)

    def read(name: str) -> np.ndarray:
        return np.load(root / name, allow_pickle=False)

    return read


def load_sharded(directory: str | Path, budget_bytes: int | None = None) -> ShardedDataset:
    """A shard set written to a local folder by `write_shards`."""
    root = Path(directory)
    return open_shards(json.loads((root / META).read_text()), local_reader(root), budget_bytes)
