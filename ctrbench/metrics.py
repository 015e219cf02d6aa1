"""Quality metrics: logloss, AUC and accuracy from scikit-learn; gAUC vectorised over groups."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score


def group_auc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float | None:
    """Impression-weighted mean of per-group AUC over groups that have both classes (as in DIN).

    Per-group AUC from the rank-sum (Mann-Whitney) form, with ranks averaged over ties, so that
    millions of users are handled by one grouped rank instead of one sklearn call per user.
    """
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
    return {
        "logloss": float(log_loss(labels, probs, labels=[0.0, 1.0])),
        "auc": float(roc_auc_score(labels, probs)) if both_classes else None,
        "accuracy": float(accuracy_score(labels, probs >= 0.5)),
        "gauc": group_auc(labels, probs, groups) if groups is not None else None,
        "rows": int(len(labels)),
        "label_rate": float(labels.mean()) if len(labels) else None,
    }


def task_metrics(label_names: list[str], labels: np.ndarray, probs: np.ndarray, groups: np.ndarray | None = None) -> dict:
    """{label name: metrics} for [N, n_tasks] label and probability arrays."""
    return {name: binary_metrics(labels[:, i], probs[:, i], groups) for i, name in enumerate(label_names)}
