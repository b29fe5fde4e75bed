"""diagnose_fit on controlled synthetic learning curves."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.evaluation.diagnosis import diagnose_fit

EPOCHS = np.arange(50)


def _decay(start: float, end: float, tau: float = 8.0) -> list[float]:
    return (end + (start - end) * np.exp(-EPOCHS / tau)).tolist()


def test_u_shaped_validation_is_overfit_with_the_right_best_epoch() -> None:
    train = _decay(1.0, 0.02)
    val = (0.4 + 0.0006 * (EPOCHS - 20) ** 2).tolist()  # lowest at index 20, i.e. epoch 21
    r = diagnose_fit(train, val)
    assert r["verdict"] == "overfit"
    assert r["evidence"]["best_val_epoch"] == 21
    assert r["evidence"]["epochs_since_best_val"] == 29
    assert r["evidence"]["val_trend"] == "rising"
    assert r["evidence"]["train_trend"] in ("falling", "flat")
    assert any("epoch 21" in a and "early stopping" in a.lower() for a in r["advice"])
    assert any("dropout" in a.lower() for a in r["advice"])
    assert r["confidence"] in ("medium", "high")
    json.dumps(r, allow_nan=False)


def test_large_gap_is_overfit() -> None:
    r = diagnose_fit(_decay(1.0, 0.05), _decay(1.2, 0.3))
    assert r["verdict"] == "overfit"
    assert r["evidence"]["relative_gap"] > 0.5


def test_flat_and_high_is_underfit() -> None:
    rng = np.random.default_rng(1)
    train = (0.69 + 0.005 * rng.standard_normal(50)).tolist()
    val = (0.70 + 0.005 * rng.standard_normal(50)).tolist()
    r = diagnose_fit(train, val)
    assert r["verdict"] == "underfit"
    assert r["evidence"]["train_trend"] == "flat"
    advice = " ".join(r["advice"]).lower()
    assert "wider or deeper" in advice and "learning rate" in advice and "features" in advice


def test_train_metric_near_baseline_is_underfit_with_high_confidence() -> None:
    train, val = [0.69] * 20, [0.70] * 20
    r = diagnose_fit(train, val, train_metric=[0.52] * 20, val_metric=[0.5] * 20, metric_name="accuracy", baseline=0.5)
    assert r["verdict"] == "underfit"
    assert r["confidence"] == "high"
    assert r["evidence"]["final_train_metric"] == 0.52
    assert "baseline" in r["explanation"]


def test_still_falling_steeply_is_underfit_and_says_train_longer() -> None:
    train = (1.0 - 0.015 * EPOCHS).tolist()
    val = (1.02 - 0.015 * EPOCHS).tolist()
    r = diagnose_fit(train, val)
    assert r["verdict"] == "underfit"
    assert r["evidence"]["train_still_improving"] is True
    assert r["advice"][0].lower().startswith("train longer")


@pytest.mark.parametrize("noise", [0.0, 0.01])
def test_both_falling_and_close_is_good(noise: float) -> None:
    rng = np.random.default_rng(2)
    train = np.asarray(_decay(1.0, 0.2)) + noise * rng.standard_normal(50)
    val = np.asarray(_decay(1.05, 0.25)) + noise * rng.standard_normal(50)
    r = diagnose_fit(train.tolist(), val.tolist())
    assert r["verdict"] == "good"
    assert any("k-fold" in a for a in r["advice"])
    assert set(r) == {"verdict", "confidence", "evidence", "advice", "explanation"}


def test_lower_is_better_metric_gap_is_overfit() -> None:
    train, val = _decay(1.0, 0.1), _decay(1.0, 0.12)
    r = diagnose_fit(
        train, val, train_metric=[0.1] * 50, val_metric=[0.3] * 50, metric_name="rmse", higher_is_better=False
    )
    assert r["verdict"] == "overfit"
    assert r["evidence"]["best_val_metric"] == 0.3


@pytest.mark.parametrize("n", [0, 1, 2])
def test_short_curves_are_good_with_low_confidence(n: int) -> None:
    r = diagnose_fit([1.0, 0.5][:n], [1.0, 0.6][:n])
    assert r["verdict"] == "good"
    assert r["confidence"] == "low"
    assert "too few" in r["explanation"]


def test_non_finite_tail_and_mismatched_lengths_are_cut() -> None:
    train = _decay(1.0, 0.2)[:30] + [float("nan")]
    val = _decay(1.05, 0.25)[:35]
    r = diagnose_fit(train, val)
    assert r["evidence"]["epochs"] == 30
    assert r["evidence"]["ignored_epochs"] == 5
    json.dumps(r, allow_nan=False)


# --- Bias judged against the best constant prediction, on data of many shapes ---------------


def test_the_constant_loss_is_the_prior_entropy_or_the_variance() -> None:
    from ml.evaluation.diagnosis import constant_loss

    y = np.array([0] * 95 + [1] * 5)
    p = np.array([0.95, 0.05])
    assert constant_loss("classification", y) == pytest.approx(float(-(p * np.log(p)).sum()))
    balanced = np.array([100 / 190, 100 / 10])  # "balanced" weights: the weighted prior is uniform
    assert constant_loss("classification", y, balanced) == pytest.approx(np.log(2))
    assert constant_loss("classification", np.array([0, 1, 2] * 10)) == pytest.approx(np.log(3))
    assert constant_loss("regression", np.array([1.0, 3.0])) == pytest.approx(1.0)


def test_an_imbalanced_run_that_learns_is_not_underfit_whatever_its_accuracy() -> None:
    """5 % positives: training accuracy 0.96 against a majority baseline of 0.95 looked like
    'barely better than the baseline'; its loss (0.08 vs the prior's 0.199) says it learned."""
    prior = 0.19852  # entropy of (0.95, 0.05)
    train, val = _decay(0.69, 0.08), _decay(0.69, 0.09)
    accuracy = [0.95 + 0.01 * (1 - np.exp(-e / 8)) for e in EPOCHS]
    r = diagnose_fit(
        train,
        val,
        train_metric=accuracy,
        val_metric=accuracy,
        metric_name="accuracy",
        baseline=0.95,
        baseline_loss=prior,
        baseline_loss_of="the training class frequencies",
    )
    assert r["verdict"] != "underfit", r["explanation"]
    assert r["evidence"]["baseline_loss"] == pytest.approx(prior)
    stuck = diagnose_fit(
        _decay(0.69, 0.18), _decay(0.69, 0.185), baseline_loss=prior, baseline_loss_of="the training class frequencies"
    )
    assert stuck["verdict"] == "underfit" and "training class frequencies" in stuck["explanation"]


def _run(spec: dict) -> dict:
    from ml.reporter import RecordingReporter
    from ml.run import run_experiment

    return run_experiment(spec, RecordingReporter())


@pytest.mark.parametrize("seed", [0, 1])
def test_a_model_that_learned_an_imbalanced_table_is_not_called_underfit(seed: int) -> None:
    """5 % ill, four informative columns among seven. The linear model ranks well (ROC-AUC about
    0.87-0.89); its training accuracy (0.956 for seed 0) is barely above the majority's 0.95, which
    the old rule called underfit. Judged on the loss against the prior's, it learned; the MLP
    overfits, which is what its validation curve shows."""
    for model in ({"type": "linear"}, {"type": "mlp", "hidden": [32, 16]}):
        summary = _run(
            {
                "name": "ill",
                "seed": seed,
                "data": {
                    "source": "synthetic/imbalanced",
                    "options": {"n_samples": 3000, "positive_fraction": 0.05, "n_features": 7, "n_informative": 4},
                },
                "model": model,
                "train": {"epochs": 60, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.01}},
                "evaluate": {"metrics": ["accuracy", "roc_auc"]},
            }
        )
        diagnosis = summary["diagnosis"]
        assert summary["test"]["roc_auc"] > 0.8
        assert diagnosis["verdict"] != "underfit", diagnosis["explanation"]
        assert diagnosis["evidence"]["baseline_loss"] == pytest.approx(0.1985, abs=0.01)  # the 5 % prior's entropy


def test_a_ring_with_a_linear_model_is_underfit_against_the_prior() -> None:
    summary = _run(
        {
            "name": "ring",
            "seed": 0,
            "data": {"source": "synthetic/ring", "options": {"n_samples": 1500}},
            "model": {"type": "linear"},
            "train": {"epochs": 30, "batch_size": 64},
        }
    )
    diagnosis = summary["diagnosis"]
    assert diagnosis["verdict"] == "underfit", diagnosis["explanation"]
    assert "class frequencies" in diagnosis["explanation"]
    assert diagnosis["evidence"]["baseline_loss"] == pytest.approx(np.log(2), abs=0.01)  # balanced classes


def _flat_high(seed: int = 1) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    return (0.17 + 0.002 * rng.standard_normal(40)).tolist(), (0.175 + 0.002 * rng.standard_normal(40)).tolist()


def test_a_reference_that_does_no_better_dismisses_underfitting_as_noise() -> None:
    train, val = _flat_high()  # 15 % below the prior's entropy 0.199: "barely learned"
    alone = diagnose_fit(train, val, baseline_loss=0.199)
    assert alone["verdict"] == "underfit"
    r = diagnose_fit(train, val, baseline_loss=0.199, reference=lambda: 0.172)
    assert r["verdict"] == "good"
    assert r["evidence"]["reference_val_loss"] == 0.172
    assert r["evidence"]["dismissed_underfit_signals"]
    assert "noise" in r["explanation"]


def test_a_reference_that_does_clearly_better_confirms_underfitting() -> None:
    train, val = _flat_high()
    r = diagnose_fit(train, val, baseline_loss=0.199, reference=lambda: 0.08)
    assert r["verdict"] == "underfit"
    assert any("reference model" in s for s in r["evidence"]["signals"])


def test_the_reference_is_not_fitted_when_nothing_suggests_underfitting() -> None:
    calls = []
    r = diagnose_fit(_decay(1.0, 0.1), _decay(1.0, 0.12), baseline_loss=0.69, reference=lambda: calls.append(1))
    assert r["verdict"] == "good" and calls == []


def test_underfit_advice_speaks_of_this_runs_spec() -> None:
    train, val = [0.69] * 20, [0.70] * 20
    facts = {
        "model": "linear",
        "hidden": [],
        "regularization": {"l2": 0.01, "dropout": 0.0},
        "lr": 0.003,
        "stopped_early": True,
        "best_epoch": 4,
        "epochs_run": 14,
        "monitor": "val_loss",
        "patience": 10,
    }
    advice = " ".join(diagnose_fit(train, val, baseline_loss=0.693, facts=facts)["advice"])
    assert "linear" in advice and "hidden layer" in advice
    assert "l2=0.01" in advice and "dropout" not in advice  # only what is set
    assert "epoch 4" in advice and "patience 10" in advice
    assert "0.003" in advice
    mlp = " ".join(
        diagnose_fit(train, val, baseline_loss=0.693, facts={"model": "mlp", "hidden": [8], "lr": 0.01})["advice"]
    )
    assert "[8]" in mlp and "Reduce regularization" not in mlp and "linear" not in mlp
