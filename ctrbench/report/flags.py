"""Sanity flags: results the report should not let a reader trust without a second look.

Per model (over its seeds): a gold log loss no better than predicting the training label rate for every row; a
validation AUC at or below 0.5; a best epoch that is the last one run without early stopping (it may be
undertrained under the budget) or the first one (every later epoch was worse); an extra output whose gold mean sits
at an end of its range where the model says that means a collapse (MDAF's gate: one branch took over). Per dataset
and task: a gold split whose rows cannot resolve the gaps between the models (the DeLong half-width of the paired
difference between neighbours in the ranking larger than their gap, both as medians over the pairs).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ctrbench.data.manifest import DataManifest
from ctrbench.metrics import row_logloss
from ctrbench.report.entries import ModelResult
from ctrbench.report.significance import TaskSignificance


def train_label_rates(manifest: DataManifest | None, tasks: Sequence[str]) -> dict[str, float]:
    """Each task's label rate on the train split, as the preprocessing manifest counted it ({} without it)."""
    train = manifest.splits.get("train") if manifest else None
    if train is None or not train.rows:
        return {}
    if train.task_positives:
        return {task: train.task_positives[task] / train.rows for task in tasks if task in train.task_positives}
    return {tasks[0]: train.positives / train.rows} if len(tasks) == 1 else {}


def constant_logloss(train_rate: float, gold_rate: float) -> float:
    """The gold log loss of predicting ``train_rate`` for every row, on rows whose label rate is ``gold_rate``."""
    positive, negative = row_logloss(np.array([1.0, 0.0]), np.full(2, train_rate))
    return float(gold_rate * positive + (1 - gold_rate) * negative)


def _seeds(result: ModelResult, seeds: list[int]) -> str:
    return "" if len(result.runs) == 1 else f" (seed {', '.join(map(str, seeds))})"


def model_flags(result: ModelResult, train_rates: dict[str, float]) -> list[str]:
    """What looks wrong with one model's runs, one sentence each."""
    flags = []
    for task in result.tasks:
        named = f" of {task}" if len(result.tasks) > 1 else ""
        logloss, gold_rate = result.gold_metric(task, "logloss"), result.gold.tasks[task].label_rate
        # a task known on part of the rows (a mask): the manifest's rate is over all rows, so it is not compared
        whole = result.gold.tasks[task].rows == result.gold.rows
        if logloss is not None and gold_rate is not None and task in train_rates and whole:
            constant = constant_logloss(train_rates[task], gold_rate)
            if logloss >= constant:
                flags.append(
                    f"gold log loss{named} {logloss:.4f} is no better than predicting the training label rate "
                    f"({train_rates[task]:.3f}) for every row ({constant:.4f})"
                )
        low = [run.seed for run in result.runs if (auc := run.valid_metric(task, "auc")) is not None and auc <= 0.5]
        if low:
            flags.append(f"validation AUC{named} at or below 0.5{_seeds(result, low)}")
    last = [r.seed for r in result.runs if not r.train.stopped_early and r.train.best_epoch == len(r.train.epochs)]
    if last:
        epochs = result.train.training.get("max_epochs", len(result.train.epochs))
        flags.append(
            f"best epoch is the last of {epochs}{_seeds(result, last)}: it may be undertrained under this budget"
        )
    first = [r.seed for r in result.runs if r.train.best_epoch == 1 and len(r.train.epochs) > 1]
    if first:
        flags.append(f"best epoch is the first{_seeds(result, first)}: every later epoch was worse on validation")
    for output in result.gold.extra_outputs:
        margin = output.collapse_margin
        means = [o.summary.mean for run in result.runs for o in run.gold.extra_outputs if o.key == output.key]
        edges = output.summary.histogram.edges
        if margin is not None and any(min(m - edges[0], edges[-1] - m) <= margin for m in means):
            shown = ", ".join(f"{m:.3f}" for m in means)
            flags.append(f"{output.title}: gold mean {shown} within {margin} of an end of its range: {output.collapse_warning}")
    return flags


def small_gold_flag(significance: TaskSignificance, rows: int) -> str | None:
    """The dataset-level flag of one task: the gold rows' own uncertainty of the paired difference between
    neighbouring models (DeLong) exceeds the typical gap between them, so most of the ranking is within the rows'
    noise (None when it is not)."""
    if not significance.neighbours:
        return None
    gap = float(np.median([gap for gap, _ in significance.neighbours]))
    half_width = float(np.median([half for _, half in significance.neighbours]))
    if half_width <= gap:
        return None
    return (
        f"gold split too small for the differences shown ({significance.task}): with {rows:,} rows the difference "
        f"between neighbouring models is known to ±{half_width:.4f} (95%, DeLong, median over the pairs), more than "
        f"their median gap ({gap:.4f})"
    )
