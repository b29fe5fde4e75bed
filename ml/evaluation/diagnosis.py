"""Bias-variance diagnosis from learning curves, as the course's "Detection" slide describes it.

Underfitting (high bias): mediocre performance on both training and validation data.
Overfitting (high variance): good on training data, poor on validation data; the validation
loss turns up while the training loss keeps falling. Every threshold is a named constant below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.evaluation.metrics import to_jsonable
from ml.spec.base import Task

MIN_EPOCHS = 3
"""Shorter curves get verdict "good" with confidence "low": too short to tell."""
CONFIDENT_EPOCHS = 10
"""Below this many epochs the confidence is at most "medium"."""
TAIL_FRACTION = 0.2
"""The trend of a curve is read over its last 20 % (at least MIN_TAIL_POINTS points)."""
MIN_TAIL_POINTS = 3
FLAT_TOLERANCE = 0.02
"""A tail whose fitted change is within 2 % of the curve's scale is "flat"."""
STEEP_FALL = 0.05
"""Training loss that fell more than 5 % of its scale over the tail is still falling steeply."""
VAL_RISE = 0.10
"""Overfit: the validation tail sits 10 % or more above the best (smoothed) validation loss..."""
MIN_SINCE_BEST_FRACTION = 0.15
"""...for at least 15 % of the run (and 2 epochs), while the training loss kept falling."""
OVERFIT_RELATIVE_GAP = 0.5
"""Overfit: final validation loss above 1.5x the final training loss..."""
MIN_ABSOLUTE_GAP = 0.1
"""...and the gap is at least 10 % of the initial training loss (so it matters)."""
METRIC_RELATIVE_GAP = 0.1
"""Overfit: the training metric beats the validation metric by 10 % (relative) or more."""
HIGH_LOSS_FRACTION = 0.5
"""Underfit: final training loss still above half its initial value, validation close to it."""
UNDERFIT_MIN_GAIN = 1.0 / 3.0
"""Underfit: the training loss got less than a third of the way from the loss of the best
constant prediction (the class prior, or the mean) to zero. Without that baseline loss: the
training metric got less than a third of the way from its baseline to perfect."""
REFERENCE_GAP = 0.25
"""An underfitting signal stands only when the training loss is worse than the reference
model's validation loss (`ml.evaluation.reference`) by at least 25 % of the gain the reference
makes over the constant prediction..."""
REFERENCE_MIN_GAP = 0.02
"""...and by at least 2 % of the constant prediction's loss."""
LITTLE_SIGNAL = 0.05
"""A reference that gains less than 5 % over the constant prediction: the features say little."""
SMOOTHING_WINDOW = 5
"""Moving-average window (at most) used to find the best validation loss without noise."""
EPS = 1e-12

VERDICT_SENTENCES: dict[str, str] = {
    "underfit": "Underfitting (high bias): performance is mediocre on training and validation data",
    "overfit": "Overfitting (high variance): good on training data, worse on validation data",
    "good": "No clear underfitting or overfitting",
}


def _tail_change(values: NDArray[np.float64]) -> float:
    """Fitted change over the last TAIL_FRACTION of the curve, relative to the curve's scale."""
    k = min(values.size, max(MIN_TAIL_POINTS, math.ceil(TAIL_FRACTION * values.size)))
    if k < 2:
        return 0.0
    slope = float(np.polyfit(np.arange(k, dtype=np.float64), values[-k:], 1)[0])
    scale = max(abs(float(values[0])), float(np.ptp(values)), EPS)
    return slope * (k - 1) / scale


def _trend(change: float) -> str:
    if change < -FLAT_TOLERANCE:
        return "falling"
    return "rising" if change > FLAT_TOLERANCE else "flat"


def _tail_mean(values: NDArray[np.float64]) -> float:
    k = min(values.size, max(MIN_TAIL_POINTS, math.ceil(TAIL_FRACTION * values.size)))
    return float(values[-k:].mean())


def _smoothed_min(values: NDArray[np.float64]) -> float:
    window = max(1, min(SMOOTHING_WINDOW, values.size // 10))
    return float(np.convolve(values, np.ones(window) / window, mode="valid").min())


def _loss_evidence(train: NDArray[np.float64], val: NDArray[np.float64]) -> dict[str, Any]:
    best = int(np.argmin(val))
    final_train, final_val = float(train[-1]), float(val[-1])
    train_change, val_change = _tail_change(train), _tail_change(val)
    smoothed_best = _smoothed_min(val)
    return {
        "epochs": int(train.size),
        "initial_train_loss": float(train[0]),
        "final_train_loss": final_train,
        "best_train_loss": float(train.min()),
        "final_val_loss": final_val,
        "best_val_loss": float(val[best]),
        "best_val_epoch": best + 1,
        "epochs_since_best_val": int(val.size - 1 - best),
        "train_loss_at_best_val": float(train[best]),
        "generalization_gap": final_val - final_train,
        "relative_gap": (final_val - final_train) / max(abs(final_train), EPS),
        "val_rise_from_best": (_tail_mean(val) - smoothed_best) / max(abs(smoothed_best), EPS),
        "train_tail_change": train_change,
        "val_tail_change": val_change,
        "train_trend": _trend(train_change),
        "val_trend": _trend(val_change),
        "train_still_improving": train_change < -FLAT_TOLERANCE,
    }


def _metric_evidence(
    train: Sequence[float] | None,
    val: Sequence[float] | None,
    name: str | None,
    higher_is_better: bool,
    baseline: float | None,
) -> dict[str, Any]:
    evidence: dict[str, Any] = {"metric_name": name, "higher_is_better": higher_is_better}
    if baseline is not None:
        evidence["baseline"] = float(baseline)
    best = max if higher_is_better else min
    for split, values in (("train", train), ("val", val)):
        clean = [float(v) for v in values or [] if v is not None and math.isfinite(v)]
        if clean:
            evidence[f"final_{split}_metric"] = clean[-1]
            evidence[f"best_{split}_metric"] = best(clean)
    return evidence


def _overfit_signals(ev: dict[str, Any]) -> list[str]:
    signals = []
    since_needed = max(2, MIN_SINCE_BEST_FRACTION * ev["epochs"])
    if (
        ev["val_rise_from_best"] >= VAL_RISE
        and ev["epochs_since_best_val"] >= since_needed
        and ev["final_train_loss"] < ev["train_loss_at_best_val"]
    ):
        signals.append(
            f"validation loss was lowest at epoch {ev['best_val_epoch']} "
            f"({ev['best_val_loss']:.4g}) and has since risen "
            f"{100 * ev['val_rise_from_best']:.0f} % "
            f"over {ev['epochs_since_best_val']} epochs while training loss kept falling"
        )
    gap_matters = ev["generalization_gap"] >= MIN_ABSOLUTE_GAP * abs(ev["initial_train_loss"])
    if ev["relative_gap"] >= OVERFIT_RELATIVE_GAP and gap_matters:
        signals.append(
            f"final validation loss {ev['final_val_loss']:.4g} is "
            f"{1 + ev['relative_gap']:.2f}x the training loss {ev['final_train_loss']:.4g}"
        )
    train_m, val_m = ev.get("final_train_metric"), ev.get("final_val_metric")
    if train_m is not None and val_m is not None:
        gap = (train_m - val_m) if ev["higher_is_better"] else (val_m - train_m)
        if gap / max(abs(train_m), abs(val_m), EPS) >= METRIC_RELATIVE_GAP:
            signals.append(
                f"training {ev['metric_name'] or 'metric'} {train_m:.4g} is clearly better than validation {val_m:.4g}"
            )
    return signals


def constant_loss(task: Task, y_train: NDArray[Any], class_weights: NDArray[Any] | None = None) -> float:
    """The training loss of the best constant prediction, on the rows (and class weights) the
    model was trained with: the weighted class prior's entropy for cross-entropy, the targets'
    variance for squared error. What no model may count as learning, whatever the class balance:
    on 5 % positives, always "healthy" scores 95 % accuracy but gains nothing over this loss."""
    if task != "classification":
        return float(np.var(np.asarray(y_train, dtype=np.float64)))
    counts = np.bincount(np.asarray(y_train, dtype=np.int64)).astype(np.float64)
    if class_weights is not None:
        counts = counts * np.asarray(class_weights, dtype=np.float64)[: counts.size]
    prior = counts[counts > 0] / counts.sum()
    return float(-(prior * np.log(prior)).sum())


def _baseline_loss_signal(ev: dict[str, Any]) -> str | None:
    baseline, final = ev.get("baseline_loss"), ev["final_train_loss"]
    if baseline is None or baseline <= EPS or (baseline - final) >= UNDERFIT_MIN_GAIN * baseline:
        return None
    return (
        f"training loss {final:.4g} is barely below {baseline:.4g}, the loss of always predicting "
        f"{ev.get('baseline_loss_of', 'a constant')}: the model learned little beyond it"
    )


def _baseline_signal(ev: dict[str, Any]) -> str | None:
    if ev.get("baseline_loss") is not None:  # judged on the loss: the metric's baseline can be faked
        return _baseline_loss_signal(ev)
    train_m, baseline = ev.get("final_train_metric"), ev.get("baseline")
    if train_m is None or baseline is None:
        return None
    higher = ev["higher_is_better"]
    gain = (train_m - baseline) if higher else (baseline - train_m)
    room = (1.0 - baseline) if higher else abs(baseline)
    if room <= 0 or gain >= UNDERFIT_MIN_GAIN * room:
        return None
    return f"training {ev['metric_name'] or 'metric'} {train_m:.4g} is barely better than the baseline {baseline:.4g}"


def _underfit_signals(ev: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(strong, weak) signals: strong ones beat overfitting signals, weak ones do not."""
    strong = [s for s in [_baseline_signal(ev)] if s]
    initial, final = ev["initial_train_loss"], ev["final_train_loss"]
    close = ev["relative_gap"] < OVERFIT_RELATIVE_GAP
    if initial > 0 and final > HIGH_LOSS_FRACTION * initial and close:
        strong.append(
            f"training loss ended at {final:.4g}, still {100 * final / initial:.0f} % of its "
            f"initial {initial:.4g}, and validation loss ({ev['final_val_loss']:.4g}) is as high"
        )
    weak = []
    if ev["train_tail_change"] < -STEEP_FALL:
        weak.append(
            f"training loss was still falling steeply at the end "
            f"({100 * ev['train_tail_change']:.0f} % of its scale over the last epochs)"
        )
    return strong, weak


def _regularizers(facts: dict[str, Any]) -> list[str]:
    return [f"{k}={v:g}" for k, v in (facts.get("regularization") or {}).items() if v]


def _underfit_advice(ev: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    """Remedies for high bias, from this run's own spec when it is known (`facts`)."""
    advice = []
    model = facts.get("model")
    if facts.get("stopped_early") and facts.get("best_epoch") is not None:
        advice.append(
            f"Early stopping ended training at epoch {facts.get('epochs_run')} and kept epoch "
            f"{facts['best_epoch']} (monitor {facts.get('monitor', 'val_loss')}, patience "
            f"{facts.get('patience')}): raise the patience, or monitor a metric such as val_roc_auc."
        )
    elif ev["train_still_improving"]:
        epochs = facts.get("epochs_run")
        advice.append(
            "Train longer: the training loss was still falling at the end" + (f" of epoch {epochs}." if epochs else ".")
        )
    if model == "linear" or (model == "mlp" and not facts.get("hidden")):
        advice.append(
            "The model is linear (no hidden layer): it can only draw a straight boundary (or fit a "
            "plane). Add a hidden layer (model: {type: mlp, hidden: [64, 64]}), or give it "
            "features in which the classes are linear (polar coordinates, polynomial terms)."
        )
    elif model in ("mlp", "cnn"):
        hidden = facts.get("hidden") or []
        advice.append(
            f"Add capacity: the {model} has hidden layers {hidden} "
            f"({facts.get('parameters', '?')} parameters); try wider or deeper layers."
        )
    else:
        advice.append("Add capacity: a wider or deeper model.")
    set_regularizers = _regularizers(facts)
    if set_regularizers:
        advice.append(f"Reduce regularization: {', '.join(set_regularizers)} is set and holds the fit back.")
    if facts.get("balance") in ("random_under", "tomek", "enn"):
        advice.append(f"balance {facts['balance']} drops training rows; class_weight (or smote) keeps them all.")
    lr = facts.get("lr")
    advice.append(
        (f"Raise the learning rate (now {lr:g}), " if lr else "Raise the learning rate, ")
        + "or use a warm-up phase followed by decay, so training gets further in the same epochs."
    )
    if model != "linear":
        advice.append(
            "Give the model better features: transform them (e.g. polar coordinates, scaling) or "
            "select the informative ones."
        )
    return advice


def _overfit_advice(ev: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    advice = []
    if facts.get("early_stopping"):
        advice.append(
            f"Early stopping is on and kept epoch {facts.get('best_epoch')}; the gap remains, so "
            "regularize or simplify as well."
        )
    else:
        advice.append(
            f"Use early stopping: validation loss was best at epoch {ev['best_val_epoch']} "
            f"({ev['best_val_loss']:.4g}); keep the weights of that epoch."
        )
    set_regularizers = _regularizers(facts)
    if set_regularizers:
        advice.append(f"Regularize more: {', '.join(set_regularizers)} is set; raise it, or add dropout or max-norm.")
    else:
        advice.append("Regularize: L2 weight decay, dropout or max-norm (none is set).")
    advice.append("Augment the data, or collect more of it.")
    hidden = facts.get("hidden")
    advice.append(
        f"Try a simpler model (hidden layers {hidden} now; fewer or narrower)."
        if hidden
        else "Try a simpler model (fewer or narrower layers)."
    )
    return advice


def _good_advice(ev: dict[str, Any], facts: dict[str, Any]) -> list[str]:
    return ["Keep it; try k-fold cross-validation to confirm the estimate."]


ADVICE: dict[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]] = {
    "underfit": _underfit_advice,
    "overfit": _overfit_advice,
    "good": _good_advice,
}
"""verdict -> function(evidence, facts of the run) returning the course's remedies, most relevant first."""


def _clean_curves(
    train_loss: Sequence[float], val_loss: Sequence[float]
) -> tuple[NDArray[np.float64], NDArray[np.float64], int]:
    """Both curves cut to their common length and to the epochs before the first non-finite
    value; also returns how many epochs were dropped."""
    n = min(len(train_loss), len(val_loss))
    train = np.asarray(list(train_loss)[:n], dtype=np.float64)
    val = np.asarray(list(val_loss)[:n], dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(train) & np.isfinite(val)))
    keep = int(bad[0]) if bad.size else n
    return train[:keep], val[:keep], max(len(train_loss), len(val_loss)) - keep


def _too_short(train: NDArray[np.float64], val: NDArray[np.float64], dropped: int) -> dict[str, Any]:
    evidence: dict[str, Any] = {"epochs": int(train.size), "ignored_epochs": dropped}
    if train.size:
        evidence.update(final_train_loss=float(train[-1]), final_val_loss=float(val[-1]))
    return to_jsonable(
        {
            "verdict": "good",
            "confidence": "low",
            "evidence": evidence,
            "advice": [f"Train for at least {MIN_EPOCHS} epochs so the curves can be diagnosed."],
            "explanation": f"Only {train.size} usable epoch(s) recorded: too few to tell "
            "underfitting from overfitting.",
        }
    )


def _reference_check(ev: dict[str, Any], reference: Callable[[], float | None] | None) -> str | None:
    """Whether the underfitting signals stand against what a flexible reference model reaches:
    "confirmed", "noise" (the reference does no clearly better) or None (no reference)."""
    if reference is None:
        return None
    ref = reference()
    if ref is None or not math.isfinite(ref):
        return None
    ev["reference_val_loss"] = float(ref)
    constant = ev.get("baseline_loss", ev["initial_train_loss"])
    headroom = constant - ref
    gap = ev["final_train_loss"] - ref
    if headroom <= LITTLE_SIGNAL * abs(constant):
        return "little_signal"
    return "confirmed" if gap > REFERENCE_GAP * headroom and gap > REFERENCE_MIN_GAP * abs(constant) else "noise"


def _decide(ev: dict[str, Any], reference: Callable[[], float | None] | None = None) -> tuple[str, list[str]]:
    strong, weak = _underfit_signals(ev)
    overfit = _overfit_signals(ev)
    check = _reference_check(ev, reference) if strong else None
    if check is not None:
        ev["reference_check"] = check
    if check == "confirmed":
        strong.append(
            f"a gradient-boosted reference model reaches a validation loss of {ev['reference_val_loss']:.4g} "
            f"on the same rows, below this model's training loss {ev['final_train_loss']:.4g}"
        )
    elif check in ("noise", "little_signal"):
        ev["dismissed_underfit_signals"] = strong
        strong = []
    if strong:
        return "underfit", strong + weak
    if overfit:
        return "overfit", overfit
    if weak:
        return "underfit", weak
    reasons = [
        f"training loss {ev['final_train_loss']:.4g} and validation loss "
        f"{ev['final_val_loss']:.4g} end close together, and the validation curve is "
        f"{ev['val_trend']} at the end"
    ]
    if check == "noise":
        reasons.append(
            f"a gradient-boosted reference model does no clearly better on the same rows (validation loss "
            f"{ev['reference_val_loss']:.4g}): the remaining error is the data's noise, not the model's bias"
        )
    elif check == "little_signal":
        constant = ev.get("baseline_loss", ev["initial_train_loss"])
        reasons.append(
            f"a gradient-boosted reference model gains almost nothing over the constant prediction either "
            f"(validation loss {ev['reference_val_loss']:.4g} vs {constant:.4g}): "
            "the features carry little information about the target"
        )
    return "good", reasons


def _confidence(verdict: str, signals: list[str], epochs: int) -> str:
    level = "high" if verdict != "good" and len(signals) >= 2 else "medium"
    return "medium" if epochs < CONFIDENT_EPOCHS and level == "high" else level


def diagnose_fit(
    train_loss: Sequence[float],
    val_loss: Sequence[float],
    *,
    train_metric: Sequence[float] | None = None,
    val_metric: Sequence[float] | None = None,
    metric_name: str | None = None,
    higher_is_better: bool = True,
    baseline: float | None = None,
    baseline_loss: float | None = None,
    baseline_loss_of: str | None = None,
    reference: Callable[[], float | None] | None = None,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Say whether a run underfits, overfits or fits well, from its learning curves.

    Rules (thresholds are the module constants), first match wins:

    1. Underfit when the training loss is barely below ``baseline_loss`` (less than
       UNDERFIT_MIN_GAIN of the way to zero; without it, when the training metric is barely
       better than ``baseline``), or the training loss is still above
       HIGH_LOSS_FRACTION of its initial value with validation loss as high -- and, when a
       ``reference`` is given, the reference model's validation loss is clearly lower than the
       training loss (REFERENCE_GAP, REFERENCE_MIN_GAP); when it is not, the error is the data's
       noise and these signals are dismissed (kept in the evidence).
    2. Overfit when the validation loss rose VAL_RISE above its best for at least
       MIN_SINCE_BEST_FRACTION of the run while training loss kept falling, or validation
       loss exceeds training loss by OVERFIT_RELATIVE_GAP (and by MIN_ABSOLUTE_GAP of the initial
       loss), or the training metric beats the validation one by METRIC_RELATIVE_GAP.
    3. Underfit when the training loss is still falling steeply (STEEP_FALL) at the end.
    4. Good otherwise.

    Epochs are counted from 1. Curves are cut to their common length and before the first
    NaN/inf; fewer than MIN_EPOCHS usable epochs give "good" with confidence "low".

    Args:
        train_loss: training loss per epoch.
        val_loss: validation loss per epoch.
        train_metric: the task metric per epoch on the training split (optional).
        val_metric: the same on the validation split (optional).
        metric_name: the metric's name, for the evidence and the sentences.
        higher_is_better: False for error metrics such as rmse.
        baseline: what a trivial model scores on that metric (majority class, mean predictor);
            evidence only when ``baseline_loss`` is given.
        baseline_loss: the training loss of the best constant prediction (`constant_loss`), on
            the same rows and weights as the training loss.
        baseline_loss_of: what that constant is, for the sentences ("the class prior").
        reference: returns a flexible reference model's validation loss on the same rows and
            scale (`ml.evaluation.reference.reference_loss`); called only when underfitting
            signals need confirming.
        facts: what the run's spec set (model type, hidden layers, regularization, learning rate,
            early stopping, whether it stopped early), so the advice speaks of this run.

    Returns:
        ``{"verdict", "confidence", "evidence", "advice", "explanation"}``; JSON-ready.
    """
    train, val, dropped = _clean_curves(train_loss, val_loss)
    if train.size < MIN_EPOCHS:
        return _too_short(train, val, dropped)
    ev = _loss_evidence(train, val)
    ev["ignored_epochs"] = dropped
    ev.update(_metric_evidence(train_metric, val_metric, metric_name, higher_is_better, baseline))
    if baseline_loss is not None and math.isfinite(baseline_loss):
        ev["baseline_loss"], ev["baseline_loss_of"] = float(baseline_loss), baseline_loss_of or "a constant"
    verdict, signals = _decide(ev, reference)
    ev["signals"] = signals
    reasons = ": " + "; ".join(signals) if signals else ""
    return to_jsonable(
        {
            "verdict": verdict,
            "confidence": _confidence(verdict, signals, ev["epochs"]),
            "evidence": ev,
            "advice": ADVICE[verdict](ev, facts or {}),
            "explanation": VERDICT_SENTENCES[verdict] + reasons + ".",
        }
    )
