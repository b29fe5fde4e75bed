"""Spec versions: every stored spec says which version of the spec language it was written in,
and older ones are upgraded by registered transformations before they are validated, so a
release that renames a field does not break the experiments already queued or running (nor
old specs a user resubmits).

To change the spec language: bump `SPEC_VERSION`, register the step from the previous version
with `@upgrade(previous)`, and add the specs written by the previous release to
`tests/ml/spec_fixtures/v<previous>/` (they must still parse). Pydantic only: no torch.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

SPEC_VERSION = 1  # the version this code writes
Upgrade = Callable[[dict[str, Any]], dict[str, Any]]
UPGRADES: dict[int, Upgrade] = {}  # version N -> the step to version N + 1


class SpecVersionError(ValueError):
    """A spec from a newer trainlab, or a version no upgrade path leads from."""


def upgrade(from_version: int) -> Callable[[Upgrade], Upgrade]:
    """Register the transformation of a spec dict from `from_version` to the next version."""

    def register(step: Upgrade) -> Upgrade:
        if from_version in UPGRADES:
            raise ValueError(f"an upgrade from spec version {from_version} is already registered")
        UPGRADES[from_version] = step
        return step

    return register


def upgrade_spec(
    document: dict[str, Any], upgrades: dict[int, Upgrade] | None = None, current: int = SPEC_VERSION
) -> dict[str, Any]:
    """The spec dict at `current`, upgraded step by step from the version it says (a spec
    without `spec_version` is of the first version, 1). Fan-out kinds' `base` specs follow their
    parent's version.

    Raises:
        SpecVersionError: a version above `current` or below 1, or a missing step.
    """
    steps = UPGRADES if upgrades is None else upgrades
    version = document.get("spec_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= current:
        raise SpecVersionError(
            f"spec_version {version!r}: this trainlab reads versions 1 to {current} (a newer trainlab wrote it?)"
        )
    if version == current:
        return document
    upgraded = copy.deepcopy(document)
    while version < current:
        if version not in steps:
            raise SpecVersionError(f"no upgrade registered from spec version {version}")
        upgraded = steps[version](upgraded)
        version += 1
        upgraded["spec_version"] = version
    return upgraded
