"""What the API stores is what the worker reads: every example survives parse -> JSON dump ->
parse unchanged (a stored spec lists every field, defaults included)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ml.spec import parse_spec

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_stored_spec_reads_back_the_same(path: Path) -> None:
    stored = parse_spec(yaml.safe_load(path.read_text())).model_dump(mode="json")
    again = parse_spec(stored).model_dump(mode="json")
    assert again == stored
