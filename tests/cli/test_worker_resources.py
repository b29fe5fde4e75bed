"""`trainlab worker --gpus`: the GPUs a worker uses (its CUDA_VISIBLE_DEVICES) and the queues of
its resource class it consumes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import reset_caches
from trainlab.cli import _worker_cmd


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("TRAINLAB_WORKER_GPUS", "TRAINLAB_WORKER_QUEUES", "TRAINLAB_WORKER_CPU_RUNS", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.setenv(name, "")  # records the original state: restored after the test
        monkeypatch.delenv(name)
    reset_caches()
    yield
    reset_caches()


def queues_of(cmd: list[str]) -> str:
    return cmd[cmd.index("-Q") + 1]


def test_gpus_option_sets_the_visible_devices_and_the_gpu_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    assert queues_of(_worker_cmd(None, "w", gpus="0,1")) == "trainlab,gpu1,gpu2"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1" and os.environ["TRAINLAB_WORKER_GPUS"] == "0,1"
    assert queues_of(_worker_cmd(None, "w", gpus="3", cpu_runs=True)) == "trainlab,gpu1,cpu"
    assert queues_of(_worker_cmd(None, "w", gpus="none")) == "trainlab,cpu"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # the runs see no GPU: they train on the CPU


def test_default_from_cuda_visible_devices_and_explicit_queues(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    assert queues_of(_worker_cmd(None, "w")) == "trainlab,gpu1"
    monkeypatch.setenv("TRAINLAB_WORKER_QUEUES", "trainlab,cpu")
    reset_caches()
    assert queues_of(_worker_cmd(None, "w")) == "trainlab,cpu"
