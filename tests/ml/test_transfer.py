"""Transfer learning: weights loaded safely, frozen layers kept bit for bit, a new output layer
when the classes differ, a lower rate for the pretrained layers, and the few-shot data options."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from ml.context import RunContext
from ml.data.sources import load_dataset
from ml.data.subsets import select_classes
from ml.errors import MLError
from ml.reporter import RecordingReporter
from ml.run import run_experiment
from ml.spec import DataSpec
from ml.training.optimizer_hooks import ScaledUpdates
from ml.training.transfer import load_state_dict


def digits(classes: list[int], **over) -> dict:
    return {
        "name": f"digits {classes}",
        "seed": 0,
        "data": {"source": "builtin/digits", "classes": classes, **over},
        "preprocess": [],
        "model": {"hidden": [32, 16]},
        "train": {"epochs": 6, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}},
        "evaluate": {"plots": False},
    }


@pytest.fixture(scope="module")
def pretrained() -> dict[str, bytes]:
    reporter = RecordingReporter()
    run_experiment(digits([0, 1, 2, 3, 4]), reporter)
    return {"raw": reporter.artifacts["model.pt"]}


def weights_from(raw: bytes) -> RunContext:
    return RunContext(load_weights=lambda ref: raw if ref == "7" else None)


def test_frozen_layers_keep_their_weights_bit_for_bit(pretrained) -> None:
    source = load_state_dict(pretrained["raw"], "7")
    spec = digits([5, 6, 7, 8, 9], max_train_samples=50)
    spec["init"] = {"from_experiment": 7, "freeze": 2, "new_head": True}
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter, context=weights_from(pretrained["raw"]))
    after = load_state_dict(reporter.artifacts["model.pt"], "finetuned")
    for name in ("0.weight", "0.bias", "2.weight", "2.bias"):  # the two hidden Linear layers
        assert torch.equal(after[name], source[name]), name
    assert not torch.equal(after["4.weight"], source["4.weight"])  # the new head trained
    assert summary["init"]["from_experiment"] == 7 and summary["init"]["frozen_layers"] == 2
    assert summary["init"]["trainable_parameters"] == 16 * 5 + 5
    assert summary["dataset"]["split"]["train"] == 50


def test_fine_tuning_changes_every_layer_and_the_head_is_new_when_the_classes_differ(pretrained) -> None:
    source = load_state_dict(pretrained["raw"], "7")
    spec = digits([5, 6, 7], max_train_samples=60)
    spec["init"] = {"from_experiment": "7", "pretrained_lr_factor": 0.1}
    reporter = RecordingReporter()
    summary = run_experiment(spec, reporter, context=weights_from(pretrained["raw"]))
    after = load_state_dict(reporter.artifacts["model.pt"], "finetuned")
    assert summary["init"]["new_head"] is True  # 3 classes, the source had 5
    assert after["4.weight"].shape == (3, 16)
    assert not torch.equal(after["0.weight"], source["0.weight"])


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_loading_refuses_anything_but_a_plain_state_dict() -> None:
    class Payload:
        def __reduce__(self):
            return (print, ("this would run on load",))

    def saved(obj) -> bytes:
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    with pytest.raises(MLError, match="cannot be loaded safely"):
        load_state_dict(saved({"w": Payload()}), "3")
    with pytest.raises(MLError, match="cannot be loaded safely"):
        load_state_dict(pickle.dumps({"w": 1}), "3")  # a bare pickle, not a torch file
    with pytest.raises(MLError, match="cannot be loaded safely"):
        load_state_dict(b"not a model", "3")
    with pytest.raises(MLError, match="not a plain state dict: it holds a list"):
        load_state_dict(saved([torch.zeros(2)]), "3")
    with pytest.raises(MLError, match="'w'"):
        load_state_dict(saved({"w": 1.5, "b": torch.zeros(1)}), "3")
    assert set(load_state_dict(saved({"w": torch.ones(2)}), "3")) == {"w"}


def test_a_source_with_another_architecture_is_refused(pretrained) -> None:
    spec = digits([5, 6, 7, 8, 9])
    spec["model"] = {"hidden": [64]}
    spec["init"] = {"from_experiment": 7}
    with pytest.raises(MLError, match="do not fit this model"):
        run_experiment(spec, RecordingReporter(), context=weights_from(pretrained["raw"]))
    with pytest.raises(MLError, match="cannot load them"):
        run_experiment(digits([5, 6]) | {"init": {"from_experiment": 7}}, RecordingReporter())


def test_pretrained_lr_factor_equals_a_lower_rate_for_adam() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    a = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    b = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    b.load_state_dict(a.state_dict())
    groups = [{"params": a[0].parameters(), "lr": 0.01 * 0.1}, {"params": a[2].parameters()}]
    opt_a, opt_b = torch.optim.Adam(groups, lr=0.01), torch.optim.Adam(b.parameters(), lr=0.01)
    with ScaledUpdates(list(b[0].parameters()), 0.1).active():
        for _ in range(5):
            for model, opt in ((a, opt_a), (b, opt_b)):
                opt.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-6)


def test_select_classes_relabels_in_the_order_given() -> None:
    data = load_dataset(DataSpec(source="builtin/digits"), 0)
    picked = select_classes(data, [7, 5])
    assert picked.class_names == ["7", "5"] and set(np.unique(picked.y)) == {0, 1}
    assert np.array_equal(picked.X[picked.y == 0], data.X[data.y == 7])
