"""Quality metrics: logloss, AUC and accuracy as scikit-learn computes them; gAUC vectorised over groups.

The three are scikit-learn's binary formulas step for step in numpy (``roc_auc``, ``logloss``), not calls into it:
importing sklearn.metrics (scipy.stats, pandas) costs each train and gold_eval job about as much start-up as torch.
tests/test_metrics.py checks them equal to scikit-learn's, bit for bit, on random and tied scores.
"""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of 0/1 ``labels`` holding both classes, as ``sklearn.metrics.roc_auc_score``: the
    curve's points at each distinct score (descending), collinear ones dropped, trapezoids from (0, 0)."""
    order = np.argsort(scores, kind="mergesort")[::-1]
    scores, positive = scores[order], labels[order] == 1
    last_of_each_score = np.r_[np.where(np.diff(scores))[0], scores.size - 1]
    tps = np.cumsum(positive.astype(np.float64), dtype=np.float64)[last_of_each_score]
    fps = 1 + last_of_each_score.astype(np.float64) - tps
    if fps.shape[0] > 2:  # a point on the line between its neighbours adds no area
        corners = np.where(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])[0]
        fps, tps = fps[corners], tps[corners]
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return float(np.trapezoid(tps / tps[-1], fps / fps[-1]))


def row_logloss(labels: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Each row's binary cross-entropy, as ``sklearn.metrics.log_loss`` computes it before averaging: each class's
    probability clipped to [eps, 1 - eps] (float64 eps)."""
    eps = np.finfo(np.float64).eps
    probs = np.asarray(probs, np.float64)
    positive = np.clip(probs, eps, 1 - eps)
    negative = np.clip(1 - probs, eps, 1 - eps)
    return -np.where(labels == 1, np.log(positive), np.log(negative))


def logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy, as ``sklearn.metrics.log_loss``."""
    return float(np.mean(row_logloss(labels, probs)))


def group_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float | None:
    """Impression-weighted mean of per-group AUC over groups that have both classes (as in DIN).

    Per-group AUC from the rank-sum (Mann-Whitney) form, with ranks averaged over ties, so that
    millions of users are handled by one grouped rank instead of one sklearn call per user.
    """
    import pandas as pd  # here: only a split with a user column pays for pandas

    frame = pd.DataFrame({"g": groups, "y": labels.astype(np.float64), "s": scores})
    frame["rank"] = frame.groupby("g")["s"].rank(method="average")
    per_group = frame.groupby("g").agg(n=("y", "size"), pos=("y", "sum"))
    per_group["pos_rank_sum"] = frame["rank"].where(frame["y"] > 0.5, 0.0).groupby(frame["g"]).sum()
    per_group["neg"] = per_group["n"] - per_group["pos"]
    usable = per_group[(per_group["pos"] > 0) & (per_group["neg"] > 0)]
    if usable.empty:
        return None
    auc = (usable["pos_rank_sum"] - usable["pos"] * (usable["pos"] + 1) / 2) / (usable["pos"] * usable["neg"])
    return float(np.average(auc, weights=usable["n"]))


def binary_metrics(labels: np.ndarray, probs: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """Metrics of one task; AUC is None when the labels hold one class only."""
    labels = np.asarray(labels, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    both_classes = 0 < labels.sum() < len(labels)
    if not len(labels):  # a task whose label is known on no row of the split
        return {"logloss": None, "auc": None, "accuracy": None, "gauc": None, "rows": 0, "label_rate": None}
    if not ((probs >= 0) & (probs <= 1)).all():  # NaN fails both: a model that diverged
        raise ValueError(f"{int((~((probs >= 0) & (probs <= 1))).sum())} of {len(probs)} probabilities are NaN or outside [0, 1]")
    return {
        "logloss": logloss(labels, probs),
        "auc": roc_auc(labels, probs) if both_classes else None,
        "accuracy": float(np.mean(labels == (probs >= 0.5))),
        "gauc": group_auc(labels, probs, groups) if groups is not None else None,
        "rows": len(labels),
        "label_rate": float(labels.mean()) if len(labels) else None,
    }


def task_metrics(
    task_names: list[str],
    labels: np.ndarray,
    probs: np.ndarray,
    groups: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> dict:
    """{task name: metrics} for [N, n_tasks] label and probability arrays; each task over the rows where
    ``mask`` (``[N, n_tasks]`` bool, None: every row) says its label is known."""
    metrics = {}
    for i, name in enumerate(task_names):
        rows = slice(None) if mask is None else mask[:, i]
        metrics[name] = binary_metrics(labels[rows, i], probs[rows, i], None if groups is None else groups[rows])
    return metrics


QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95}


def distribution_summary(values, bins: int = 20, value_range: tuple[float, float] = (0.0, 1.0)) -> dict:
    """Summary of a sample of scalars (e.g. per-sample gate values) that fits in a JSON file.

    ``{"count", "mean", "std", "min", "max", "quantiles": {"p05", "p25", "p50", "p75", "p95"},
    "histogram": {"edges": [bins + 1], "counts": [bins], "below", "above"}}``. The histogram has
    ``bins`` equal-width bins over ``value_range``, half-open ``[a, b)`` except the last, ``[a, b]``
    (as ``numpy.histogram``). Values outside the range are not clipped into the end bins: they are
    counted in ``below`` / ``above``, so ``sum(counts) + below + above == count``. ``std`` is the
    population standard deviation (ddof 0); quantiles use numpy's default (linear) interpolation.
    Multi-dimensional input is flattened. Raises ValueError for an empty sample, NaN or infinite
    values, fewer than one bin or an empty range.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    lo, hi = (float(bound) for bound in value_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"value_range must be two finite numbers, low < high, got {value_range!r}")
    if values.size == 0:
        raise ValueError("cannot summarise an empty sample")
    if np.isnan(values).any():
        raise ValueError(f"{int(np.isnan(values).sum())} of {values.size} values are NaN")
    if not np.isfinite(values).all():
        raise ValueError(f"{int(np.isinf(values).sum())} of {values.size} values are infinite")
    edges = np.linspace(lo, hi, int(bins) + 1)
    counts, _ = np.histogram(values, bins=edges)
    quantiles = np.quantile(values, list(QUANTILES.values()))
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {name: float(q) for name, q in zip(QUANTILES, quantiles)},
        "histogram": {
            "edges": [float(edge) for edge in edges],
            "counts": [int(count) for count in counts],
            "below": int((values < lo).sum()),
            "above": int((values > hi).sum()),
        },
    }
