"""Hostile files and bodies, made honestly (valid containers around lying or explosive content),
and a measure of the memory they cost; shared by the hostile-input tests and
`benchmarks/hostile.py`."""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from collections.abc import Callable
from typing import TypeVar

import numpy as np

T = TypeVar("T")


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """A compressed NPZ of these arrays (zeros compress about 1000:1: a zip bomb)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def forged_npz(claimed_rows: int = 10**12) -> bytes:
    """A zip with valid checksums whose X.npy header claims `claimed_rows` rows but holds 10."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        header = np.lib.format.header_data_from_array_1_0(np.zeros((10, 3)))
        header["shape"] = (claimed_rows, 3)
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, header)
        archive.writestr("X.npy", head.getvalue() + np.zeros((10, 3)).tobytes())
        y = io.BytesIO()
        np.lib.format.write_array(y, np.arange(10) % 2)
        archive.writestr("y.npy", y.getvalue())
    return buffer.getvalue()


def wide_csv(columns: int, rows: int, seed: int = 0) -> bytes:
    """A numeric CSV with a header: many columns of Gaussian noise."""
    text = io.StringIO()
    text.write(",".join(f"c{i}" for i in range(columns)) + "\n")
    np.savetxt(text, np.random.default_rng(seed).normal(size=(rows, columns)), delimiter=",", fmt="%.6g")
    return text.getvalue().encode()


def yaml_alias_bomb(levels: int = 10, fan: int = 9) -> str:
    """Under 1 KB of YAML whose aliases expand to fan**levels values inside `data.options`."""
    lines = [f"a0: &a0 [{', '.join(['x'] * fan)}]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fan)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nname: bomb\ndata:\n  source: builtin/iris\n  options: {{n: *a{levels - 1}}}\n"


def with_peak_memory(call: Callable[[], T]) -> tuple[T, int]:
    """`call()`'s result and the peak bytes Python allocated meanwhile (every thread: the
    in-process API too)."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
