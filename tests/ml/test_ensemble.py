"""Bagging: members' samples of the training rows, the combination on a hand-made case, and an
ensemble run end to end in-process."""

from __future__ import annotations

import numpy as np
import pytest

from ml.data.subsets import resample_training_rows
from ml.fanout.ensemble import combine_classification, spread_of, vote_scores
from ml.local import LocalHost


def test_vote_and_mean_proba_on_a_hand_made_case() -> None:
    # 3 members, 4 rows, 3 classes.
    predicted = np.array([[0, 1, 2, 0], [0, 2, 2, 1], [1, 1, 0, 2]])
    proba = np.array(
        [
            [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]],
            [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.1, 0.7], [0.1, 0.8, 0.1]],
            [[0.2, 0.6, 0.2], [0.3, 0.6, 0.1], [0.5, 0.2, 0.3], [0.1, 0.2, 0.7]],
        ]
    )
    votes = combine_classification(predicted, proba, "vote")
    # rows 0-2 have a majority (0, 1, 2); row 3 is a three-way tie, broken by the mean probability
    # (class 1: (0.4 + 0.8 + 0.2) / 3 is the highest).
    assert votes.argmax(axis=1).tolist() == [0, 1, 2, 1]
    assert np.allclose(votes.sum(axis=1), 1.0)
    assert votes[0, 0] == pytest.approx((2 + 0.5 * 0.5) / 3.5)  # 2 votes + half of mean p0 (0.5)
    mean = combine_classification(predicted, proba, "mean_proba")
    assert np.allclose(mean[0], [0.5, 11 / 30, 4 / 30])
    assert mean.argmax(axis=1).tolist() == [0, 1, 2, 1]
    # A majority is never overturned by probabilities: two confident dissenters lose to three votes.
    p = np.array([[[0.45, 0.55]]] * 3 + [[[0.99, 0.01]]] * 2)
    assert vote_scores(np.array([[1], [1], [1], [0], [0]]), p).argmax(axis=1).tolist() == [1]


def test_spread_is_mean_std_min_max_over_members() -> None:
    spread = spread_of([{"accuracy": 0.8}, {"accuracy": 0.9}, {"accuracy": 1.0}])
    assert spread["accuracy"] == pytest.approx(
        {"mean": 0.9, "std": np.std([0.8, 0.9, 1.0], ddof=1), "min": 0.8, "max": 1.0, "n": 3}
    )


def test_bootstrap_and_disjoint_samples_of_the_training_rows() -> None:
    train = np.arange(100, 200)
    y = np.arange(300) % 2
    boots = [resample_training_rows(train, y, "bootstrap", i, 5, seed=3) for i in range(5)]
    assert all(len(b) == 100 and set(b) <= set(train) for b in boots)
    assert all(len(set(b)) < 100 for b in boots)  # drawn with replacement (~63% unique)
    assert len({tuple(b) for b in boots}) == 5  # each member its own sample
    assert np.array_equal(boots[0], resample_training_rows(train, y, "bootstrap", 0, 5, seed=3))  # seeded
    parts = [resample_training_rows(train, y, "disjoint", i, 4, seed=3) for i in range(4)]
    assert sorted(np.concatenate(parts).tolist()) == train.tolist()  # a partition
    assert all(abs(y[p].mean() - 0.5) <= 0.05 for p in parts)  # stratified


def test_ensemble_members_train_on_their_samples_and_the_parent_combines_them() -> None:
    host = LocalHost()
    spec = {
        "kind": "ensemble",
        "name": "bag",
        "seed": 1,
        "base": {
            "data": {"source": "synthetic/moons", "options": {"n_samples": 500, "noise": 0.3}},
            "model": {"hidden": [16]},
            "train": {"epochs": 15, "batch_size": 64, "optimizer": {"name": "adam", "lr": 0.02}},
            "evaluate": {"metrics": ["accuracy", "f1"], "plots": False},
        },
        "members": 4,
        "sampling": "disjoint",
    }
    bag = host.run(spec)
    assert bag.status == "succeeded", bag.error
    members = [host.experiments[i] for i in bag.children]
    assert [m.spec["data"]["sample"]["index"] for m in members] == [0, 1, 2, 3]
    train_rows = [m.summary["dataset"]["split"]["train"] for m in members]
    assert sum(train_rows) == 320 and max(train_rows) - min(train_rows) <= 1  # the 320 training rows, shared out
    summary = bag.summary
    assert [m["experiment"] for m in summary["members"]] == bag.children
    accuracy = summary["member_spread"]["accuracy"]
    assert accuracy["min"] <= accuracy["mean"] <= accuracy["max"] and accuracy["n"] == 4
    assert summary["test"] == summary["ensemble"]["test"]
    assert summary["gain_over_member_mean"]["accuracy"] == pytest.approx(summary["test"]["accuracy"] - accuracy["mean"])
    assert summary["ensemble"]["combine"] == "vote" and summary["test_rows"] == 100
