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
    r = diagnose_fit(
        train, val, train_metric=[0.52] * 20, val_metric=[0.5] * 20, metric_name="accuracy", baseline=0.5
    )
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
