"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check what a test
can — every trainlab command they name exists, and every path the Dockerfile copies is real."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from trainlab.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _commands() -> list[list[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = [s["command"] for s in compose["services"].values() if "command" in s]
    cmd = re.search(r"^CMD (\[.*\])", (ROOT / "Dockerfile").read_text(), re.M)
    assert cmd
    return [*commands, yaml.safe_load(cmd.group(1))]


def test_every_trainlab_command_named_exists() -> None:
    runner = CliRunner()
    named = [c for c in _commands() if c[0] == "trainlab"]
    assert {c[1] for c in named} >= {"migrate", "serve", "worker"}
    for command in named:
        result = runner.invoke(app, [command[1], "--help"])
        assert result.exit_code == 0, (command, result.output)
        for option in (a for a in command[2:] if a.startswith("--")):
            assert option in result.output, (command, option)


def test_dockerfile_copies_existing_paths() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
