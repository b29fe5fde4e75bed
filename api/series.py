"""Metric histories as dashboards want them: one column of steps and one of values per series,
down-sampled to a number of points that keeps the curve's shape, encoded without a model per row."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from fastapi import Response

# One history answer never holds more points per series than this (the client asks for fewer).
MAX_POINTS = 100_000


def columns(rows: Iterable[tuple[int, str, str, float]]) -> list[dict[str, Any]]:
    """Rows in step order -> `[{split, name, steps, values}]`, sorted by split and name."""
    series: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
    for step, split, name, value in rows:
        steps_values = series.get((split, name))
        if steps_values is None:
            steps_values = series[(split, name)] = ([], [])
        steps_values[0].append(step)
        steps_values[1].append(value)
    return [
        {"split": split, "name": name, "steps": steps, "values": values}
        for (split, name), (steps, values) in sorted(series.items())
    ]


def downsample(steps: Sequence[int], values: Sequence[float], max_points: int) -> tuple[list[int], list[float]]:
    """At most `max_points` (>= 3) points that keep the curve's shape: the points before the last
    are cut into (max_points - 1) // 2 buckets of consecutive steps, each giving its minimum and
    its maximum (in step order, once when they are the same point); the last point is kept."""
    n = len(steps)
    if n <= max_points:
        return list(steps), list(values)
    buckets, body = max(1, (max_points - 1) // 2), n - 1
    keep: list[int] = []
    for b in range(buckets):
        lo, hi = b * body // buckets, (b + 1) * body // buckets
        if lo == hi:
            continue
        low = min(range(lo, hi), key=values.__getitem__)
        high = max(range(lo, hi), key=values.__getitem__)
        keep.extend((low, high) if low < high else (high, low) if high < low else (low,))
    keep.append(n - 1)
    return [steps[i] for i in keep], [values[i] for i in keep]


def json_response(content: Any) -> Response:
    """JSON bytes from orjson (NaN and infinities become null, as pydantic writes them)."""
    return Response(orjson.dumps(content), media_type="application/json")
