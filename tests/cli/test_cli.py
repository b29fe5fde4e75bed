"""The `trainlab` command against a live server with a real worker, run as a user runs it."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.cli.support import ROOT, analytic_search, auth_enforced, fast_spec, live_service, long_spec
from tests.services import Service
from trainlab.client import Client

pytestmark = pytest.mark.e2e


@dataclass
class Cli:
    service: Service
    token: str | None
    config: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {**os.environ, "TRAINLAB_URL": self.service.url, "TRAINLAB_CONFIG": str(self.config), "COLUMNS": "200"}
        env.pop("TRAINLAB_TOKEN", None)
        if self.token:
            env["TRAINLAB_TOKEN"] = self.token
        return {**env, **extra}

    def __call__(self, *args: str, timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trainlab.cli", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=ROOT,
        )

    def json(self, *args: str) -> Any:
        done = self(*args, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def client(self) -> Client:
        return Client(self.service.url, self.token)


@pytest.fixture(scope="module")
def cli() -> Iterator[Cli]:
    with live_service() as (service, token, config):
        yield Cli(service, token, config)


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "moons.yaml"
    path.write_text(yaml.safe_dump(fast_spec("cli-moons")))
    return path


@pytest.fixture(scope="module")
def first(cli: Cli, spec_file: Path) -> dict[str, Any]:
    """submit --wait --json with overrides, parsed back."""
    done = cli(
        "submit",
        str(spec_file),
        "--set",
        "train.optimizer.lr=0.01",
        "--set",
        "model.hidden=[24, 12]",
        "--set",
        "train.epochs=4",
        "--wait",
        "--json",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def second(cli: Cli, spec_file: Path) -> dict[str, Any]:
    """submit (no wait, human output), then `watch` to the end."""
    done = cli("submit", str(spec_file), "--set", "name=cli-moons-b", "--set", "train.optimizer.lr=0.003")
    assert done.returncode == 0, done.stderr
    assert "submitted experiment" in done.stdout
    experiment_id = done.stdout.split("submitted experiment", 1)[1].split()[0]
    watched = cli("watch", experiment_id)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert f"experiment {experiment_id} succeeded" in watched.stdout
    return cli.json("show", experiment_id)


def test_submit_wait_applies_overrides_to_the_stored_spec(cli: Cli, first: dict[str, Any]) -> None:
    assert first["status"] == "succeeded", first["error"]
    stored = cli.client().get(first["id"]).spec
    assert stored["train"]["optimizer"]["lr"] == 0.01
    assert stored["model"]["hidden"] == [24, 12]
    assert stored["train"]["epochs"] == 4 and first["summary"]["epochs_run"] <= 4
    assert "accuracy" in first["summary"]["test"]


def test_watch_follows_a_run_to_the_end(second: dict[str, Any]) -> None:
    assert second["status"] == "succeeded" and second["name"] == "cli-moons-b"
    assert second["spec"]["train"]["optimizer"]["lr"] == 0.003


def test_list_filters_in_a_table_and_in_json(cli: Cli, first: dict[str, Any], second: dict[str, Any]) -> None:
    page = cli.json("list", "--status", "succeeded", "--name", "cli-moons")
    assert {first["id"], second["id"]} <= {item["id"] for item in page["items"]}
    assert cli.json("list", "--name", "cli-moons-b", "--limit", "5")["total"] == 1
    assert cli.json("list", "--kind", "pinn")["items"] == []
    table = cli("list", "--name", "cli-moons")
    assert table.returncode == 0 and "cli-moons-b" in table.stdout and "succeeded" in table.stdout
    assert cli("list", "--status", "finished").returncode == 2


def test_show_prints_metrics_diagnosis_and_advice(cli: Cli, first: dict[str, Any]) -> None:
    shown = cli("show", str(first["id"]))
    assert shown.returncode == 0, shown.stderr
    verdict = first["summary"]["diagnosis"]["verdict"]
    assert f"diagnosis: {verdict}" in shown.stdout
    assert "test" in shown.stdout and "accuracy" in shown.stdout
    for advice in first["summary"]["diagnosis"]["advice"]:
        assert advice.split()[0] in shown.stdout
    assert cli.json("show", str(first["id"]))["summary"] == first["summary"]
    assert cli.json("status", str(first["id"]))["status"] == "succeeded"


def test_metrics_as_table_csv_and_json_agree(cli: Cli, first: dict[str, Any]) -> None:
    rows = cli.json("metrics", str(first["id"]))
    assert {"step", "split", "name", "value"} == set(rows[0])
    epochs = first["summary"]["epochs_run"]
    assert len([r for r in rows if (r["split"], r["name"]) == ("validation", "loss")]) == epochs
    as_csv = cli("metrics", str(first["id"]), "--csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(parsed) == len(rows) and float(parsed[0]["value"]) == pytest.approx(rows[0]["value"])
    table = cli("metrics", str(first["id"]), "--split", "validation")
    assert "validation loss" in table.stdout and "train loss" not in table.stdout


def test_artifacts_download_into_a_folder(cli: Cli, first: dict[str, Any], tmp_path: Path) -> None:
    listed = cli.json("artifacts", str(first["id"]), "--download", str(tmp_path / "out"))
    names = {a["name"] for a in listed}
    assert {"learning_curves.png", "predictions.csv", "roc.png"} <= names
    for artifact in listed:
        path = Path(artifact["path"])
        assert path.is_file() and path.stat().st_size == artifact["size"]
    assert (tmp_path / "out" / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    table = cli("artifacts", str(first["id"]))
    assert "predictions.csv" in table.stdout and "text/csv" in table.stdout


def test_compare_shows_metrics_and_spec_differences(cli: Cli, first: dict[str, Any], second: dict[str, Any]) -> None:
    rows = cli.json("compare", str(first["id"]), str(second["id"]))
    assert rows["spec_differences"]["train.optimizer.lr"] == [0.01, 0.003]
    assert rows["spec_differences"]["model.hidden"] == [[24, 12], [16]]
    assert "seed" not in rows["spec_differences"]
    accuracies = [first["summary"]["test"]["accuracy"], second["summary"]["test"]["accuracy"]]
    assert rows["metrics"]["test.accuracy"] == accuracies
    table = cli("compare", str(first["id"]), str(second["id"]))
    assert "spec differences" in table.stdout and "train.optimizer.lr" in table.stdout
    assert cli("compare", str(first["id"])).returncode == 2


def test_watch_and_show_a_search_with_its_trials(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "search.yaml"
    spec.write_text(yaml.safe_dump(analytic_search("cli-search", trials=5)))
    created = cli.json("submit", str(spec))
    watched = cli("watch", str(created["id"]))
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "trials 5/5" in watched.stdout and "succeeded" in watched.stdout
    best = created_best = cli.json("show", str(created["id"]))["summary"]["best"]
    assert f"best: trial {best['trial']} (#{best['experiment']})" in watched.stdout  # the answer at the end
    shown = cli("show", str(created["id"]))
    assert "best trial" in shown.stdout and "params.h1" in shown.stdout and "5/5 done" in shown.stdout
    assert created_best["params"] and "params: h1=" in shown.stdout


def test_submit_wait_in_an_80_column_terminal_shows_bar_and_epochs(cli: Cli, tmp_path: Path) -> None:
    """In a real (pseudo-)terminal 80 columns wide, the live line keeps its bar and epoch count,
    and the run ends with its answer."""
    spec = tmp_path / "eighty.yaml"
    spec.write_text(yaml.safe_dump(fast_spec("cli-eighty", epochs=6)))
    screen = in_terminal(cli, ["submit", str(spec), "--wait"], columns=80)
    frames = [f for f in re.split(r"[\r\n]+", screen) if f.strip()]
    bars = [f for f in frames if "━" in f and "/6" in f]
    assert bars, screen
    assert any("epoch 6/6" in f and "val loss" in f for f in bars), screen
    assert all(len(f.rstrip()) <= 80 for f in frames), [f for f in frames if len(f.rstrip()) > 80]
    assert "experiment" in screen and "succeeded: cli-eighty (train)" in screen and "diagnosis: " in screen


def in_terminal(cli: Cli, args: list[str], columns: int) -> str:
    """Run the CLI attached to a pseudo-terminal of `columns` columns; what it drew, without ANSI codes."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in cli.env(TERM="xterm-256color").items() if k != "COLUMNS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainlab.cli", *args], stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: the command exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert proc.wait(timeout=180) == 0, b"".join(chunks).decode(errors="replace")
    text = b"".join(chunks).decode(errors="replace")
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07", "", text)


def test_cancel_a_run(cli: Cli, tmp_path: Path) -> None:
    spec = tmp_path / "long.yaml"
    spec.write_text(yaml.safe_dump(long_spec("cli-long")))
    created = cli.json("submit", str(spec))
    cancelled = cli.json("cancel", str(created["id"]))
    assert cancelled["status"] == "cancelled" or cancelled["cancel_requested"]
    watched = cli("watch", str(created["id"]), "--json")
    assert watched.returncode == 1 and json.loads(watched.stdout)["status"] == "cancelled"


def test_bad_overrides_and_specs_are_refused_with_exit_2(cli: Cli, spec_file: Path) -> None:
    assert cli("submit", str(spec_file), "--set", "model.hidden=[1,").returncode == 2
    assert cli("submit", str(spec_file), "--set", "no-equals-sign").returncode == 2
    refused = cli("submit", str(spec_file), "--set", "data.source=builtin/nope")
    assert refused.returncode == 2 and "builtin/digits" in refused.stderr


def test_unreachable_server_and_refused_token_exit_2(cli: Cli) -> None:
    started = time.monotonic()
    unreachable = cli("list", "--url", "http://127.0.0.1:9")
    assert unreachable.returncode == 2 and "cannot reach the trainlab server" in unreachable.stderr
    assert time.monotonic() - started < 20
    assert auth_enforced(cli.service)
    refused = cli("list", "--token", "tl_not-a-real-token")
    assert refused.returncode == 2 and "the server refused the token" in refused.stderr
    anonymous = cli("show", "1", TRAINLAB_TOKEN="")
    assert anonymous.returncode == 2 and "none was sent" in anonymous.stderr


def test_the_server_url_may_end_in_the_api_base_and_a_wrong_one_is_named(cli: Cli) -> None:
    with_base = cli("list", "--json", TRAINLAB_URL=f"{cli.service.url}/api/v1/")
    assert with_base.returncode == 0, with_base.stderr
    wrong = cli("list", TRAINLAB_URL=f"{cli.service.url}/lab")
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1, wrong.stderr
    assert f"{cli.service.url}/lab/api/v1/experiments" in wrong.stderr and "404 Not Found" in wrong.stderr
    assert "TRAINLAB_URL" in wrong.stderr


def test_token_from_the_config_file(cli: Cli, tmp_path: Path) -> None:
    assert cli.token
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"url": cli.service.url, "token": cli.token}))
    env = {k: v for k, v in os.environ.items() if k not in ("TRAINLAB_URL", "TRAINLAB_TOKEN")}
    done = subprocess.run(
        [sys.executable, "-m", "trainlab.cli", "list", "--json", "--limit", "1"],
        env={**env, "TRAINLAB_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "items" in json.loads(done.stdout)


def test_datasets_upload_and_list(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "tiny.csv"
    colours = ("red", "green", "blue")
    data.write_text("x1,x2,colour,ill\n" + "".join(f"{i},{i % 7},{colours[i % 3]},{i % 2}\n" for i in range(60)))
    uploaded = cli.json("datasets", "upload", str(data), "--target", "ill", "--name", "tiny")
    listed = cli.json("datasets", "list")
    assert uploaded["id"] in {d["id"] for d in listed} and uploaded["name"] == "tiny"
    table = cli("datasets", "list")
    assert table.returncode == 0 and "tiny" in table.stdout
    row = next(line for line in table.stdout.splitlines() if "tiny" in line)
    assert "60" in row and "ill" in row and "0: 30" in row  # rows, target, class counts
    shown = cli("datasets", "show", str(uploaded["id"]))
    assert shown.returncode == 0 and "x1, x2, colour, ill" in shown.stdout and "categorical" in shown.stdout
    assert f"dataset/{uploaded['id']}" in shown.stdout
    # a spec with no target and no one_hot runs with what the upload knew: target ill, colour one-hot
    spec = tmp_path / "upload-run.yaml"
    run = {**fast_spec("cli-upload", epochs=2), "data": {"source": f"dataset/{uploaded['id']}"}}
    spec.write_text(yaml.safe_dump(run))
    done = cli("submit", str(spec), "--wait")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "succeeded: cli-upload" in done.stdout
    in_use = cli("datasets", "delete", str(uploaded["id"]))
    assert in_use.returncode == 2 and "used by" in in_use.stderr
    spare = cli.json("datasets", "upload", str(data), "--target", "ill", "--name", "spare")
    assert cli("datasets", "delete", str(spare["id"])).returncode == 0
    assert spare["id"] not in {d["id"] for d in cli.json("datasets", "list")}
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1\n")
    refused = cli("datasets", "upload", str(bad), "--target", "b")
    assert refused.returncode == 2 and refused.stderr.strip()


def test_other_peoples_text_is_printed_inertly(cli: Cli) -> None:
    """A name with Rich markup, a terminal escape and a forged link is shown as typed."""
    name = "x [/oops] y \x1b[2J [link=http://evil.example]z[/link] [bold]b\x07"
    headers = {"Authorization": f"Bearer {cli.token}"} if cli.token else {}
    spec = {**fast_spec(name), "train": {"epochs": 1, "batch_size": 32}}
    created = httpx.post(f"{cli.service.url}/api/v1/experiments", json=spec, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    for args in (("list", "--limit", "5"), ("show", str(created.json()["id"]))):
        done = cli(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "[/oops]" in done.stdout and "[link=http://evil.example]" in done.stdout, done.stdout
        assert "\x1b" not in done.stdout and "\x07" not in done.stdout
        assert "\\x1b[2J" in done.stdout
