"""Routing by resources: the queue of a spec, the queues of a worker, and the reason a queued
experiment cannot be served (plain dictionaries: what core reads of a stored spec)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.resources import queue_for, requirements, unservable_reason, worker_queues
from ml.spec import parse_spec

TRAIN = {"name": "r", "data": {"source": "builtin/iris"}}


@pytest.mark.parametrize(
    "spec,queue",
    [
        (TRAIN, "trainlab"),
        ({**TRAIN, "resources": None}, "trainlab"),
        ({**TRAIN, "resources": {"cpu_only": True}}, "cpu"),
        ({**TRAIN, "resources": {"gpus": 1}}, "gpu1"),
        ({**TRAIN, "resources": {"gpus": 4}}, "gpu4"),
        ({**TRAIN, "train": {"device": "cuda"}}, "gpu1"),  # pinning CUDA asks for a GPU
        ({"kind": "pinn", "name": "p", "device": "cuda"}, "gpu1"),
        ({"kind": "search", "name": "s", "base": {"train": {"device": "cuda"}}}, "gpu1"),
        ({**TRAIN, "train": {"device": "cpu"}}, "trainlab"),
    ],
)
def test_queue_of_a_spec(spec: dict, queue: str) -> None:
    assert queue_for(spec) == queue


def test_resources_are_validated_and_bounded() -> None:
    assert parse_spec({**TRAIN, "resources": {"gpus": 2}}).resources.gpus == 2  # type: ignore[union-attr]
    for bad in ({"gpus": 17}, {"gpus": -1}, {"gpus": 1, "cpu_only": True}, {"tpus": 1}):
        with pytest.raises(ValidationError):
            parse_spec({**TRAIN, "resources": bad})


def test_worker_queues_by_its_gpus() -> None:
    assert worker_queues(0) == ["trainlab", "cpu"]
    assert worker_queues(2) == ["trainlab", "gpu1", "gpu2"]  # small runs do not hold its GPUs
    assert worker_queues(1, cpu_runs=True) == ["trainlab", "gpu1", "cpu"]
    assert worker_queues(0, cpu_runs=False) == ["trainlab"]


def test_unservable_reason_names_the_need_and_the_offer() -> None:
    cpu_worker = [("w0@host", worker_queues(0))]
    assert unservable_reason(TRAIN, cpu_worker) is None
    assert unservable_reason({**TRAIN, "resources": {"cpu_only": True}}, cpu_worker) is None
    reason = unservable_reason({**TRAIN, "resources": {"gpus": 2}}, cpu_worker + [("g@h", worker_queues(1))])
    assert reason is not None and "2 GPUs" in reason and "queue gpu2" in reason
    assert "the live workers consume cpu, gpu1, trainlab" in reason
    assert unservable_reason({**TRAIN, "resources": {"gpus": 2}}, [("g@h", worker_queues(2))]) is None
    nobody = unservable_reason({**TRAIN, "resources": {"cpu_only": True}}, [])
    assert nobody is not None and "no worker is alive" in nobody
    assert requirements({**TRAIN, "resources": {"gpus": 0, "cpu_only": False}}) == (0, False)


def test_cpu_only_with_a_cuda_device_is_refused() -> None:
    with pytest.raises(ValidationError, match="contradict"):
        parse_spec({**TRAIN, "resources": {"cpu_only": True}, "train": {"device": "cuda"}})
    with pytest.raises(ValidationError, match="contradict"):
        parse_spec({"kind": "pinn", "name": "p", "resources": {"cpu_only": True}, "device": "cuda"})
