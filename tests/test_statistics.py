"""ctrbench.statistics against slow references written out here, scipy, and hand-worked cases."""

import numpy as np
import pytest
from scipy import stats

from ctrbench.metrics import roc_auc, row_logloss
from ctrbench.statistics import (
    auc_difference,
    holm,
    logloss_difference,
    mean_ci,
    placements,
)


def slow_delong(labels, classifiers):
    """DeLong et al. (1988) as written: ψ over every (positive, negative) pair, structural components V10 and V01,
    their covariance matrices S10 and S01, S = S10/m + S01/n; returns (AUCs [k], S [k, k])."""
    pos = [s[labels == 1] for s in classifiers]
    neg = [s[labels == 0] for s in classifiers]
    m, n = len(pos[0]), len(neg[0])
    v10 = np.zeros((len(classifiers), m))
    v01 = np.zeros((len(classifiers), n))
    aucs = np.zeros(len(classifiers))
    for r in range(len(classifiers)):
        psi = np.zeros((m, n))
        for i in range(m):
            for j in range(n):
                x, y = pos[r][i], neg[r][j]
                psi[i, j] = 1.0 if x > y else 0.5 if x == y else 0.0
        v10[r], v01[r] = psi.mean(axis=1), psi.mean(axis=0)
        aucs[r] = psi.mean()
    return aucs, np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n


def problem(rng, n=300, k=2, ties=False):
    labels = (rng.random(n) < 0.3).astype(np.float64)
    base = labels + rng.normal(0, 1.2, n)
    scores = [base + rng.normal(0, 0.7, n) for _ in range(k)]
    if ties:
        scores = [np.round(s, 1) for s in scores]
    return labels, scores


@pytest.mark.parametrize("ties", [False, True])
def test_placements_give_sklearn_auc_and_the_slow_structural_components(ties):
    labels, (scores,) = problem(np.random.default_rng(1), n=200, k=1, ties=ties)
    v10, v01 = placements(labels, scores)
    assert v10.mean() == pytest.approx(roc_auc(labels, scores), abs=1e-12)
    assert v01.mean() == pytest.approx(roc_auc(labels, scores), abs=1e-12)
    aucs, cov = slow_delong(labels, [scores])
    m, n = len(v10), len(v01)
    assert v10.var(ddof=1) / m + v01.var(ddof=1) / n == pytest.approx(cov[0, 0], rel=1e-12)
    assert aucs[0] == pytest.approx(v10.mean(), abs=1e-12)


@pytest.mark.parametrize("ties", [False, True])
def test_auc_difference_of_one_seed_each_is_delongs_test(ties):
    labels, (a, b) = problem(np.random.default_rng(2), ties=ties)
    aucs, cov = slow_delong(labels, [a, b])
    variance = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    z = (aucs[0] - aucs[1]) / np.sqrt(variance)
    found = auc_difference(labels, [a], [b])
    assert found.difference == pytest.approx(aucs[0] - aucs[1], abs=1e-12)
    assert found.var_rows == pytest.approx(variance, rel=1e-10)
    assert found.var_seeds == 0.0
    assert found.statistic == pytest.approx(z, rel=1e-10)
    assert found.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)


def test_auc_difference_over_seeds_takes_the_contrast_of_the_covariance_and_the_seed_spread():
    labels, scores = problem(np.random.default_rng(3), n=150, k=5)
    a, b = scores[:3], scores[3:]
    aucs, cov = slow_delong(labels, scores)
    c = np.array([1 / 3] * 3 + [-1 / 2] * 2)
    seeds = aucs[:3].var(ddof=1) / 3 + aucs[3:].var(ddof=1) / 2
    found = auc_difference(labels, a, b)
    assert found.difference == pytest.approx(c @ aucs, abs=1e-12)
    assert found.var_rows == pytest.approx(c @ cov @ c, rel=1e-10)
    assert found.var_seeds == pytest.approx(seeds, rel=1e-10)
    assert found.statistic == pytest.approx(c @ aucs / np.sqrt(c @ cov @ c + seeds), rel=1e-10)


def test_identical_predictions_are_no_difference():
    labels, (a, _) = problem(np.random.default_rng(4))
    found = auc_difference(labels, [a], [a.copy()])
    assert (found.difference, found.statistic, found.p_value) == (0.0, 0.0, 1.0)


def test_a_real_difference_is_found_and_noise_is_not():
    rng = np.random.default_rng(5)
    labels = (rng.random(4000) < 0.3).astype(np.float64)
    good = labels + rng.normal(0, 1.0, labels.size)
    worse = labels + rng.normal(0, 2.0, labels.size)
    assert auc_difference(labels, [good], [worse]).p_value < 1e-6
    twin = labels + rng.normal(0, 1.0, labels.size)
    assert auc_difference(labels, [good], [twin]).p_value > 0.01


def test_logloss_difference_of_one_seed_each_is_scipys_paired_t_test():
    rng = np.random.default_rng(7)
    labels = (rng.random(500) < 0.2).astype(np.float64)
    a = np.clip(0.2 + 0.3 * labels + rng.normal(0, 0.1, 500), 0.01, 0.99)
    b = np.clip(0.2 + 0.2 * labels + rng.normal(0, 0.1, 500), 0.01, 0.99)
    reference = stats.ttest_rel(row_logloss(labels, a), row_logloss(labels, b))
    found = logloss_difference(labels, [a], [b])
    assert found.statistic == pytest.approx(reference.statistic, rel=1e-10)
    assert found.p_value == pytest.approx(reference.pvalue, rel=1e-8)


def test_row_logloss_averages_to_sklearns_log_loss():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(8)
    labels = (rng.random(100) < 0.5).astype(np.float64)
    probs = rng.random(100)
    probs[:3] = [0.0, 1.0, 1e-20]
    assert row_logloss(labels, probs).mean() == pytest.approx(log_loss(labels, probs), rel=1e-12)


def test_logloss_difference_over_seeds_adds_the_spread_of_the_mean_losses():
    rng = np.random.default_rng(9)
    labels = (rng.random(300) < 0.3).astype(np.float64)
    runs = [np.clip(0.3 + 0.2 * labels + rng.normal(0, 0.1, 300), 0.01, 0.99) for _ in range(4)]
    a, b = runs[:2], runs[2:]
    losses = [row_logloss(labels, p) for p in runs]
    delta = (losses[0] + losses[1]) / 2 - (losses[2] + losses[3]) / 2
    seeds = np.var([losses[0].mean(), losses[1].mean()], ddof=1) / 2 + np.var([losses[2].mean(), losses[3].mean()], ddof=1) / 2
    found = logloss_difference(labels, a, b)
    var_rows = delta.var(ddof=1) / 300
    assert found.var_rows == pytest.approx(var_rows, rel=1e-10)
    assert found.var_seeds == pytest.approx(seeds, rel=1e-10)
    # Welch-Satterthwaite: the rows' term on 299 degrees of freedom, each model's seed term on 1
    terms = [np.var([losses[0].mean(), losses[1].mean()], ddof=1) / 2, np.var([losses[2].mean(), losses[3].mean()], ddof=1) / 2]
    df = (var_rows + sum(terms)) ** 2 / (var_rows**2 / 299 + sum(t**2 / 1 for t in terms))
    assert found.p_value == pytest.approx(2 * stats.t(df).sf(abs(delta.mean() / np.sqrt(var_rows + seeds))), rel=1e-8)


def test_with_few_seeds_a_tie_is_called_a_difference_about_as_often_as_the_level_says():
    """Under the null, with the seeds' spread dominating the rows' (two seeds each), the test rejects at about 5%;
    a normal reference would reject at about 19%."""
    rng = np.random.default_rng(10)
    labels = (rng.random(2000) < 0.3).astype(np.float64)
    base = labels * 1.0 + rng.normal(0, 1.0, labels.size)
    rejected = 0
    for _ in range(300):
        # each run: the same model plus a run-wide shift of its separation (training noise) and a little row noise
        runs = [base * (1 + rng.normal(0, 0.15)) + labels * rng.normal(0, 0.3) + rng.normal(0, 0.05, labels.size) for _ in range(4)]
        rejected += auc_difference(labels, runs[:2], runs[2:]).p_value < 0.05
    assert rejected / 300 < 0.09


def test_a_difference_without_any_variance_is_certain():
    labels = np.array([0.0, 0.0, 1.0, 1.0])
    perfect, constant = np.array([0.1, 0.2, 0.8, 0.9]), np.full(4, 0.5)
    found = auc_difference(labels, [perfect], [constant])
    assert (found.difference, found.p_value, found.statistic) == (0.5, 0.0, np.inf)


def test_holm_on_a_hand_worked_case():
    # sorted: 0.01 x4 = 0.04, 0.02 x3 = 0.06, 0.03 x2 = 0.06 (kept non-decreasing), 0.5 x1 = 0.5
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    # capped at 1, and a later small raw p cannot fall under an earlier adjusted one
    assert holm([0.4, 0.3]) == pytest.approx([0.6, 0.6])
    assert holm([0.9, 0.8, 0.7]) == pytest.approx([1.0, 1.0, 1.0])
    assert holm([]) == []


def test_mean_ci_is_scipys_t_interval():
    values = [0.781, 0.776, 0.790, 0.784, 0.779]
    mean, half = mean_ci(values)
    low, high = stats.t.interval(0.95, 4, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert (mean - half, mean + half) == pytest.approx((low, high), rel=1e-12)
    assert mean_ci([0.7]) == (0.7, None)
    with pytest.raises(ValueError, match="no values"):
        mean_ci([])


# pROC's tests/testthat/test-roc.test.R lines 28-49 (commit ee2877e8): roc.test(first, second), DeLong, Z = AUC first - second
PROC_DELONG = [("wfns", "s100b", 2.20898359144091, 0.0271757822291882),
               ("wfns", "ndka", 2.79777591868904, 0.00514557970691098),
               ("ndka", "s100b", -1.39077002573558, 0.164295175223054)]  # fmt: skip


@pytest.mark.parametrize(("first", "second", "z", "p"), PROC_DELONG)
def test_delong_reproduces_procs_published_tests_on_asah(first, second, z, p):
    import csv
    from pathlib import Path

    lines = (Path(__file__).parent / "data" / "delong" / "asah.csv").read_text().splitlines()
    rows = list(csv.DictReader(line for line in lines if not line.startswith("#")))
    labels = np.array([row["outcome"] == "Poor" for row in rows], np.float64)  # pROC's cases
    column = {name: np.array([float(row[name]) for row in rows]) for name in ("wfns", "s100b", "ndka")}
    assert (len(rows), int(labels.sum())) == (113, 41)
    found = auc_difference(labels, [column[first]], [column[second]])
    assert found.statistic == pytest.approx(z, rel=1e-12)
    assert found.p_value == pytest.approx(p, rel=1e-10)
