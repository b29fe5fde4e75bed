"""Everything a spec names outside itself, wherever in its tree it is named.

A spec may name an uploaded data set (``data.source: dataset/<id>``) or another experiment's
weights (``init.from_experiment``) in a train spec, in a fan-out kind's `base`, in a compare
variant's `set`, in a search space's choices and in its enqueued points. The server resolves
every one of them for the submitting user (at submission and again in the worker), so this
module lists them all, with the path a person can find them at.

It also lists the fields only the server sets (a search trial's `trial`, a k-fold child's
`data.split.fold`, a bagging member's `data.sample`): a user's spec must not carry them.

Pydantic only: importing this never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ml.spec.search import CategoricalParam, set_path

# Paths (in a train or analytic spec) that only the server sets.
SERVER_ONLY = ("trial", "data.split.fold", "data.sample")


@dataclass(frozen=True)
class Reference:
    """One object a spec names: its kind, the value as written and where it is written."""

    kind: Literal["dataset", "experiment"]
    value: str
    path: str


@dataclass
class SpecReferences:
    """What `spec_references` found: the references and any server-only fields a user set."""

    references: list[Reference]
    server_only: list[str]

    def datasets(self) -> list[int]:
        """The distinct uploaded data sets named, in the order first named."""
        seen: dict[int, None] = {}
        for ref in self.references:
            if ref.kind == "dataset":
                seen.setdefault(int(ref.value), None)
        return list(seen)


def _get(tree: Any, path: str) -> Any:
    node = tree
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _scan(tree: Any, where: str, found: SpecReferences, server_fields: bool = True) -> None:
    """Collect the references (and server-only fields) of a train/analytic-shaped dict."""
    if not isinstance(tree, dict):
        return
    prefix = f"{where}." if where else ""
    source = _get(tree, "data.source")
    if isinstance(source, str) and source.startswith("dataset/"):
        found.references.append(Reference("dataset", source.split("/", 1)[1], f"{prefix}data.source"))
    origin = _get(tree, "init.from_experiment")
    if origin is not None:
        found.references.append(Reference("experiment", str(origin), f"{prefix}init.from_experiment"))
    if server_fields:
        found.server_only.extend(f"{prefix}{path}" for path in SERVER_ONLY if _get(tree, path) is not None)


def _scan_overlay(changes: dict[str, Any], where: str, found: SpecReferences) -> None:
    """The references a set of dotted-path changes (a variant, a search point) would make."""
    for path, value in changes.items():
        overlay: dict[str, Any] = {}
        try:
            set_path(overlay, path, value)
        except ValueError:
            continue
        _scan(overlay, f"{where}[{path}]", found)


def spec_references(spec: Any) -> SpecReferences:
    """Every data set and experiment a parsed spec names, and every server-only field it sets.

    Args:
        spec: a parsed spec (any kind, from `parse_spec`).

    Returns:
        The references with their paths (``variants.1.set[data.source]``...) and the paths of
        server-only fields present.
    """
    found = SpecReferences([], [])
    kind = getattr(spec, "kind", None)
    if kind in ("train", "analytic"):
        _scan(spec.model_dump(mode="json", exclude_defaults=True), "", found)
        return found
    base = getattr(spec, "base", None)
    if base is not None:
        _scan(base.model_dump(mode="json", exclude_defaults=True), "base", found)
    for i, variant in enumerate(getattr(spec, "variants", None) or []):
        _scan_overlay(variant.set, f"variants.{i}.set", found)
    for path, param in (getattr(spec, "space", None) or {}).items():
        if isinstance(param, CategoricalParam):
            for j, choice in enumerate(param.choices):
                _scan_overlay({path: choice}, f"space.choices.{j}", found)
        else:  # a numeric range over a reference would name every id in it
            _scan_overlay({path: param.low}, "space", found)
    for i, point in enumerate(getattr(spec, "enqueue", None) or []):
        _scan_overlay(point, f"enqueue.{i}", found)
    return found
