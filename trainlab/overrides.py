"""`--set path=value` overrides: change a spec without editing its file.

`train.optimizer.lr=0.01` sets a nested key (made if missing); `model.hidden=[64,64]` — values are
read as YAML, so numbers, lists, mappings, booleans and null come out typed; `preprocess.0.k=8`
indexes a list.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import yaml


class OverrideError(ValueError):
    """An override that cannot be applied, with the reason."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """`"a.b=1"` -> `(["a", "b"], 1)`."""
    path, sep, value = text.partition("=")
    keys = [k.strip() for k in path.split(".")]
    if not sep or not all(keys):
        raise OverrideError(f"{text!r}: expected path=value, e.g. train.optimizer.lr=0.01")
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError as exc:
        raise OverrideError(f"{text!r}: the value is not valid YAML ({exc.__class__.__name__})") from exc
    return keys, parsed


def _step_into(node: Any, key: str, path: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, key, path)]
    return node.setdefault(key, {})


def _index(node: list[Any], key: str, path: str) -> int:
    try:
        index = int(key)
        node[index]  # noqa: B018 (bounds check)
    except (ValueError, IndexError) as exc:
        raise OverrideError(f"{path}: {key!r} is not an index of a list of {len(node)}") from exc
    return index


def set_path(spec: dict[str, Any], keys: list[str], value: Any) -> None:
    """Set `spec[k0][k1]...` to value in place, making mappings along the way."""
    node: Any = spec
    for depth, key in enumerate(keys[:-1]):
        node = _step_into(node, key, ".".join(keys[: depth + 1]))
        if not isinstance(node, dict | list):
            raise OverrideError(f"{'.'.join(keys[: depth + 1])} is a {type(node).__name__}, not a mapping")
    last = keys[-1]
    if isinstance(node, list):
        node[_index(node, last, ".".join(keys))] = value
    else:
        node[last] = value


def apply_overrides(spec: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of spec with each `path=value` applied in order."""
    result = copy.deepcopy(spec)
    for text in overrides:
        keys, value = parse_override(text)
        set_path(result, keys, value)
    return result
