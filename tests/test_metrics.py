import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from ctrbench.metrics import binary_metrics, group_auc


def _scores(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(float)
    # rounded scores create ties, which the rank-based gAUC must average like sklearn
    probs = np.clip(np.round(rng.random(n) * 0.6 + 0.3 * labels, 2), 0.01, 0.99)
    groups = rng.integers(0, 120, n)
    return labels, probs, groups


def test_auc_logloss_and_accuracy_equal_sklearn_bit_for_bit():
    """ctrbench computes scikit-learn's formulas without importing it: the same floats, ties and float32 scores
    (what predict returns) included, and probabilities at 0 and 1 (clipped alike)."""
    labels, probs, _ = _scores()
    metrics = binary_metrics(labels, probs)
    assert metrics["auc"] == roc_auc_score(labels, probs)
    assert metrics["logloss"] == log_loss(labels, probs, labels=[0.0, 1.0])
    assert metrics["accuracy"] == accuracy_score(labels, probs >= 0.5)
    assert metrics["gauc"] is None
    rng = np.random.default_rng(1)
    for case in range(60):
        n = int(rng.integers(2, 5000))
        labels = (rng.random(n) < rng.uniform(0.02, 0.6)).astype(np.float64)
        labels[:2] = [0.0, 1.0]
        probs = rng.random(n).astype(np.float32).astype(np.float64)
        if case % 3 == 0:
            probs = np.round(probs, 2)  # ties, and exact 0 and 1
        metrics = binary_metrics(labels, probs)
        assert metrics["auc"] == roc_auc_score(labels, probs), case
        assert metrics["logloss"] == log_loss(labels, probs, labels=[0.0, 1.0]), case
        assert metrics["accuracy"] == accuracy_score(labels, probs >= 0.5), case


def test_probabilities_must_be_finite_and_in_range():
    with pytest.raises(ValueError, match="1 of 3 probabilities are NaN or outside"):
        binary_metrics(np.array([0.0, 1.0, 1.0]), np.array([0.2, np.nan, 0.9]))


def test_group_auc_is_impression_weighted_mean_of_sklearn_per_group_auc():
    labels, probs, groups = _scores()
    aucs, weights = [], []
    for g in np.unique(groups):
        mask = groups == g
        if 0 < labels[mask].sum() < mask.sum():
            aucs.append(roc_auc_score(labels[mask], probs[mask]))
            weights.append(mask.sum())
    assert group_auc(labels, probs, groups) == pytest.approx(np.average(aucs, weights=weights), abs=1e-12)


def test_group_auc_skips_single_class_groups_and_none_when_no_group_usable():
    labels = np.array([1, 1, 0, 0, 1, 0], float)
    probs = np.array([0.9, 0.8, 0.1, 0.2, 0.3, 0.6])
    groups = np.array([0, 0, 1, 1, 2, 2])  # groups 0 and 1 hold one class each
    assert group_auc(labels, probs, groups) == pytest.approx(0.0)
    assert group_auc(labels[:4], probs[:4], groups[:4]) is None


def test_auc_is_none_for_one_class():
    assert binary_metrics(np.zeros(5), np.full(5, 0.2))["auc"] is None
