"""Uncertainty of the report's comparisons: confidence intervals over seeds, paired tests on the gold rows, Holm.

Two sources of doubt meet in a benchmark number: the gold rows are a sample (another sample would rank the
models a little differently), and training is random (another seed gives another model). For a difference
``d̄ = mean_s AUC(A, s) − mean_s AUC(B, s)`` between two models' means over their seeds, on one set of gold rows:

- row sampling: DeLong et al. (1988), in the placement form of Sun & Xu (2014, O(n log n)). For a classifier,
  a positive row's placement is the share of negatives it outscores (ties count ½), ``V10(x_i) = (1/n) Σ_j ψ(x_i,
  y_j)``, a negative's the share of positives that outscore it, ``V01(y_j) = (1/m) Σ_i ψ(x_i, y_j)``, and
  ``AUC = mean_i V10 = mean_j V01``. A linear combination ``c·AUC`` of several classifiers scored on the same rows
  (here ``c = (1/k, …, 1/k, −1/k', …, −1/k')`` over the seeds of A and of B) has variance
  ``Var(c·V10)/m + Var(c·V01)/n`` (sample variances of the combined placements over rows): DeLong's covariance
  ``S10/m + S01/n`` taken along ``c``, so correlated seeds and models are accounted for exactly.
- training randomness: the spread of each model's AUC over its seeds on these same rows, ``s²_A/k + s²_B/k'``
  (zero where a model has one seed, which then cannot be measured: the report says how many seeds it saw).

The two are added, ``t = d̄ / √(var_rows + var_seeds)`` (each is the variance given the other source fixed; their
sum counts a rows × seeds interaction twice, which errs on the side of calling a tie), and the two-sided p-value
comes from a t distribution with Welch–Satterthwaite's degrees of freedom (``compare``): the seed terms rest on
k − 1 degrees of freedom each. With one seed each, DeLong's test is exactly the normal one. Per-row log loss is
compared the same way: ``δ_i = mean_s ℓ(A, s, i) − mean_s ℓ(B, s, i)``, ``var_rows = Var(δ)/N`` with N − 1
degrees of freedom and the same seed terms over the models' mean losses, so that with one seed each it is exactly
scipy's paired t-test (``ttest_rel``). Comparisons of every
model against the best are corrected for their number by Holm's step-down method.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ctrbench.metrics import row_logloss

LEVEL = 0.95


def mean_ci(values: Sequence[float], level: float = LEVEL) -> tuple[float, float | None]:
    """(mean, half-width of the t-distribution confidence interval); the half-width is None below two values."""
    values = np.asarray(values, np.float64)
    if values.size == 0:
        raise ValueError("no values to average")
    if values.size < 2:
        return float(values.mean()), None
    sem = values.std(ddof=1) / np.sqrt(values.size)
    return float(values.mean()), float(stats.t.ppf(0.5 + level / 2, values.size - 1) * sem)


def placements(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placements of one classifier: ``V10`` ``[m]`` (each positive: the share of negatives it outscores,
    ties ½) and ``V01`` ``[n]`` (each negative: the share of positives that outscore it), in the rows' order."""
    positive = labels == 1
    pos, neg = scores[positive], scores[~positive]
    if pos.size == 0 or neg.size == 0:
        raise ValueError("AUC needs both classes")
    neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_sorted, pos, "left") + np.searchsorted(neg_sorted, pos, "right")
    above = 2 * pos.size - np.searchsorted(pos_sorted, neg, "left") - np.searchsorted(pos_sorted, neg, "right")
    return below / (2.0 * neg.size), above / (2.0 * pos.size)


@dataclass(frozen=True)
class Difference:
    """A - B: the difference of the means over seeds, its variance from each source, the test statistic and p."""

    difference: float
    var_rows: float
    var_seeds: float
    statistic: float
    p_value: float


@dataclass(frozen=True)
class RunsSummary:
    """What the tests need of one model's runs (seeds) on one task's gold rows: per row, the mean over the seeds of
    DeLong's placements (AUC) or of the log loss, and each seed's value of the metric. Every model is summarised
    once, then compared with any other in O(rows)."""

    rows: tuple[np.ndarray, ...]  # AUC: (V10 [m], V01 [n]); log loss: ([N],)
    per_seed: np.ndarray  # [k]

    @property
    def mean(self) -> float:
        return float(self.per_seed.mean())


def summarise_auc(labels: np.ndarray, scores: Sequence[np.ndarray]) -> RunsSummary:
    found = [placements(labels, s) for s in scores]
    v10 = np.mean([p[0] for p in found], axis=0)
    v01 = np.mean([p[1] for p in found], axis=0)
    return RunsSummary((v10, v01), np.array([p[0].mean() for p in found]))


def summarise_logloss(labels: np.ndarray, probs: Sequence[np.ndarray]) -> RunsSummary:
    total, means = None, []
    for p in probs:
        losses = row_logloss(labels, p)
        total = losses if total is None else total + losses
        means.append(losses.mean())
    return RunsSummary((total / len(probs),), np.array(means))


def compare(a: RunsSummary, b: RunsSummary, metric: str) -> Difference:
    """A − B on ``metric`` ("auc": DeLong's normal test; "logloss": the paired t-test), plus the seeds' spread, with
    Welch–Satterthwaite's degrees of freedom for the sum: ``ν = V² / (var_rows²/df_rows + Σ (s²/k)²/(k − 1))``, where
    ``df_rows`` is ∞ for DeLong (asymptotically normal) and N − 1 for the log loss. Each seed term is estimated from
    k − 1 degrees of freedom only, so with few seeds the statistic has heavy tails (two seeds each: about 2), and a
    normal reference would call ties differences far more often than 5%."""
    contrasts = [x - y for x, y in zip(a.rows, b.rows)]  # per row: mean over A's seeds minus mean over B's
    var_rows = float(sum(c.var(ddof=1) / c.size for c in contrasts))
    seed_terms = [float(v.per_seed.var(ddof=1)) / v.per_seed.size for v in (a, b) if v.per_seed.size > 1]
    seed_dfs = [v.per_seed.size - 1 for v in (a, b) if v.per_seed.size > 1]
    difference, total = float(contrasts[0].mean()), var_rows + sum(seed_terms)
    if total == 0:  # every row's contrast is the same: no difference, or one with no variance to doubt it
        statistic = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        return Difference(difference, var_rows, sum(seed_terms), statistic, 1.0 if difference == 0 else 0.0)
    rows_part = var_rows**2 / (contrasts[0].size - 1) if metric == "logloss" else 0.0
    spread = rows_part + sum(term**2 / df for term, df in zip(seed_terms, seed_dfs))
    distribution = stats.norm if spread == 0 else stats.t(total**2 / spread)
    statistic = difference / math.sqrt(total)
    return Difference(difference, var_rows, sum(seed_terms), statistic, float(2 * distribution.sf(abs(statistic))))


def auc_difference(labels: np.ndarray, scores_a: Sequence[np.ndarray], scores_b: Sequence[np.ndarray]) -> Difference:
    """Mean AUC over A's seeds minus B's (each a ``[N]`` score array on the same rows), DeLong plus seed spread."""
    return compare(summarise_auc(labels, scores_a), summarise_auc(labels, scores_b), "auc")


def logloss_difference(labels: np.ndarray, probs_a: Sequence[np.ndarray], probs_b: Sequence[np.ndarray]) -> Difference:
    """Mean log loss over A's seeds minus B's: a paired test over the rows plus the seed spread."""
    return compare(summarise_logloss(labels, probs_a), summarise_logloss(labels, probs_b), "logloss")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the given order: the i-th smallest p times (m − i + 1), kept
    non-decreasing along the sorted order, capped at 1."""
    p = np.asarray(p_values, np.float64)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (p.size - np.arange(p.size))))
    result = np.empty_like(adjusted)
    result[order] = adjusted
    return [float(v) for v in result]
