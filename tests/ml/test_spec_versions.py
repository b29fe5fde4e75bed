"""Specs carry a version; stored specs of every release still parse (upgraded when needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ml.spec import SPEC_VERSION, SpecVersionError, parse_spec, upgrade_spec

FIXTURES = sorted((Path(__file__).parent / "spec_fixtures").glob("v*/*.json"))


def test_there_are_fixtures_of_every_release() -> None:
    versions = {p.parent.name for p in FIXTURES}
    assert {f"v{v}" for v in range(1, SPEC_VERSION + 1)} <= versions
    assert len(FIXTURES) >= 20


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_stored_spec_of_every_release_still_parses(path: Path) -> None:
    stored = json.loads(path.read_text())
    spec = parse_spec(stored)
    assert spec.spec_version == SPEC_VERSION and spec.name == stored["name"]
    again = parse_spec(spec.model_dump(mode="json"))  # what this release stores reads back the same
    assert again.model_dump(mode="json") == spec.model_dump(mode="json")


def rename_epochs(spec: dict[str, Any]) -> dict[str, Any]:
    spec.setdefault("train", {})["max_epochs"] = spec["train"].pop("epochs", 10)
    return spec


def scale_lr(spec: dict[str, Any]) -> dict[str, Any]:
    spec["train"]["lr_percent"] = 100 * spec["train"].pop("lr", 0.01)
    return spec


def test_upgrades_run_in_order_from_the_stored_version() -> None:
    steps = {1: rename_epochs, 2: scale_lr}
    stored = {"name": "old", "train": {"epochs": 7, "lr": 0.05}}  # no version: the first one
    upgraded = upgrade_spec(stored, steps, current=3)
    assert upgraded == {"name": "old", "train": {"max_epochs": 7, "lr_percent": 5.0}, "spec_version": 3}
    assert stored == {"name": "old", "train": {"epochs": 7, "lr": 0.05}}  # the stored dict is untouched
    from_two = upgrade_spec({"spec_version": 2, "name": "x", "train": {"max_epochs": 1, "lr": 0.1}}, steps, 3)
    assert from_two["train"] == {"max_epochs": 1, "lr_percent": 10.0}


def test_unreadable_versions_are_named() -> None:
    with pytest.raises(SpecVersionError, match="reads versions 1 to"):
        upgrade_spec({"spec_version": SPEC_VERSION + 1, "name": "future"})
    with pytest.raises(SpecVersionError, match="no upgrade registered from spec version 2"):
        upgrade_spec({"spec_version": 2}, {1: rename_epochs}, current=3)
    with pytest.raises(SpecVersionError):
        parse_spec({"spec_version": 0, "name": "x", "data": {"source": "builtin/iris"}})
