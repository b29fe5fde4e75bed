"""`--set path=value` overrides and where the client finds its server and token (no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainlab.config import DEFAULT_URL, resolve_connection, write_config
from trainlab.overrides import OverrideError, apply_overrides

SPEC: dict[str, Any] = {"name": "x", "model": {"hidden": [64]}, "preprocess": [{"step": "select", "k": 4}]}


def test_values_are_read_as_yaml_and_paths_are_made() -> None:
    out = apply_overrides(
        SPEC,
        [
            "train.optimizer.lr=0.01",
            "model.hidden=[64, 64]",
            "train.optimizer={name: sgd, momentum: 0.9}",
            "preprocess.0.k=8",
            "model.dropout=null",
            "name=with = sign",
            "data.split.stratify=false",
        ],
    )
    assert out["train"]["optimizer"] == {"name": "sgd", "momentum": 0.9}
    assert out["model"] == {"hidden": [64, 64], "dropout": None}
    assert out["preprocess"][0] == {"step": "select", "k": 8}
    assert out["name"] == "with = sign" and out["data"]["split"]["stratify"] is False
    assert SPEC["model"]["hidden"] == [64]  # the original is left alone


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("no-equals", "path=value"),
        ("model..hidden=1", "path=value"),
        ("model.hidden=[1,", "not valid YAML"),
        ("preprocess.3.k=1", "not an index"),
        ("name.first=1", "not a mapping"),
    ],
)
def test_bad_overrides_say_why(override: str, message: str) -> None:
    with pytest.raises(OverrideError, match=message):
        apply_overrides(SPEC, [override])


def test_flags_beat_the_environment_which_beats_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "trainlab" / "config.json"
    monkeypatch.setenv("TRAINLAB_CONFIG", str(config))
    monkeypatch.delenv("TRAINLAB_URL", raising=False)
    monkeypatch.delenv("TRAINLAB_TOKEN", raising=False)
    assert resolve_connection() == resolve_connection(None, None)
    assert resolve_connection().url == DEFAULT_URL and resolve_connection().token is None
    write_config("http://lab:8000/", "tl_file")
    assert json.loads(config.read_text()) == {"url": "http://lab:8000/", "token": "tl_file"}
    assert config.stat().st_mode & 0o077 == 0  # it holds a token: its owner's only
    assert (resolve_connection().url, resolve_connection().token) == ("http://lab:8000", "tl_file")
    monkeypatch.setenv("TRAINLAB_URL", "http://env:1")
    monkeypatch.setenv("TRAINLAB_TOKEN", "tl_env")
    assert (resolve_connection().url, resolve_connection().token) == ("http://env:1", "tl_env")
    flags = resolve_connection("http://flag:2", "tl_flag")
    assert (flags.url, flags.token) == ("http://flag:2", "tl_flag")
    config.write_text("not json")
    monkeypatch.delenv("TRAINLAB_TOKEN")
    assert resolve_connection().token is None  # an unreadable file reads as empty


@pytest.mark.parametrize(
    "written",
    ["http://lab:8000", "http://lab:8000/", "http://lab:8000/api/v1", "http://lab:8000/api/v1/", " http://lab:8000 "],
)
def test_the_server_url_works_with_or_without_the_api_base(monkeypatch: pytest.MonkeyPatch, written: str) -> None:
    monkeypatch.setenv("TRAINLAB_URL", written)
    assert resolve_connection().url == "http://lab:8000"
    assert resolve_connection("http://flag:2/api/v1").url == "http://flag:2"
