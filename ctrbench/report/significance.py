"""Which models of a dataset the gold rows cannot tell from the best: paired tests on the runs' per-row predictions
(``ctrbench.statistics``), Holm-corrected over the comparisons of each task and metric.

Each model's files are read, checked and summarised (``RunsSummary``: per row, the mean over its seeds of DeLong's
placements and of the log loss) before the next model's are read, so memory grows with models × rows, not with
runs × rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from ctrbench.predictions import GoldPredictions, PredictionsError, read_predictions
from ctrbench.report.entries import ModelResult
from ctrbench.statistics import RunsSummary, compare, holm, summarise_auc, summarise_logloss

ALPHA = 0.05
SUMMARISE = {"auc": summarise_auc, "logloss": summarise_logloss}  # the metrics tested
BETTER = {"auc": max, "logloss": min}


@dataclass(frozen=True)
class Comparison:
    """One model against another: the difference of their means (model − other) and the p-values."""

    difference: float
    p_value: float
    p_holm: float  # Holm-adjusted over the task's comparisons with the best of this metric
    half_width: float  # 95% half-width of the paired difference from the gold rows alone (DeLong / paired t)


@dataclass
class TaskSignificance:
    task: str
    metric: str
    best: str
    versus: dict[str, Comparison] = field(default_factory=dict)  # every other model with the metric, against the best
    # AUC: each model against the next one down the ranking, as (gap, half-width of their paired difference)
    neighbours: list[tuple[float, float]] = field(default_factory=list)

    def tied(self, model: str) -> bool:
        """Not significantly different from the best (the best itself included)."""
        return model == self.best or (model in self.versus and self.versus[model].p_holm >= ALPHA)


def _check_same_rows(found: GoldPredictions, reference: GoldPredictions, path, first) -> None:
    same = (
        np.array_equal(found.row_id, reference.row_id)
        and np.array_equal(found.known, reference.known)
        and np.array_equal(found.labels, reference.labels)
    )
    if not same:
        raise PredictionsError(f"{path} does not hold the gold rows and labels of {first}")


def summarise_results(results: Sequence[ModelResult]) -> dict[tuple[str, str], dict[str, RunsSummary]]:
    """{(task, metric): {model: its runs' summary}} for every task and tested metric a model has a value of. Each
    run's file is checked against its record's sha256 and against the first file's rows and labels."""
    tasks = results[0].tasks
    reference, first = None, None
    summaries: dict[tuple[str, str], dict[str, RunsSummary]] = {}
    for result in results:
        runs = []
        for run in result.runs:
            found = read_predictions(run.predictions_path, tasks, run.gold.predictions.sha256)
            if reference is None:
                reference, first = found, run.predictions_path
            _check_same_rows(found, reference, run.predictions_path, first)
            runs.append(found)
        for index, task in enumerate(tasks):
            rows = reference.known[:, index]
            labels = reference.labels[rows, index]
            probs = [run.probs[rows, index] for run in runs]
            for metric, summarise in SUMMARISE.items():
                if result.gold_metric(task, metric) is not None:
                    summaries.setdefault((task, metric), {})[result.model] = summarise(labels, probs)
    return summaries


def _half_width(difference) -> float:
    return 1.959964 * math.sqrt(difference.var_rows)


def task_significance(task: str, metric: str, summaries: dict[str, RunsSummary]) -> TaskSignificance | None:
    """Each model against the best (by the mean over seeds) on ``task``'s ``metric``, Holm-corrected; for AUC also
    each pair of neighbours in the ranking. None with fewer than two models holding the metric."""
    if len(summaries) < 2:
        return None
    best = BETTER[metric](summaries, key=lambda model: summaries[model].mean)
    others = [model for model in summaries if model != best]
    found = [compare(summaries[model], summaries[best], metric) for model in others]
    significance = TaskSignificance(task, metric, best)
    for model, difference, p_holm in zip(others, found, holm([d.p_value for d in found])):
        significance.versus[model] = Comparison(difference.difference, difference.p_value, p_holm, _half_width(difference))
    if metric == "auc":
        ranked = sorted(summaries, key=lambda model: -summaries[model].mean)
        for upper, lower in pairwise(ranked):
            difference = compare(summaries[upper], summaries[lower], metric)
            significance.neighbours.append((difference.difference, _half_width(difference)))
    return significance


def dataset_significance(results: Sequence[ModelResult]) -> dict[tuple[str, str], TaskSignificance]:
    """{(task, metric): its comparisons} for every task of the dataset and every tested metric."""
    if len(results) < 2:
        return {}
    found = {}
    for (task, metric), summaries in summarise_results(results).items():
        if (significance := task_significance(task, metric, summaries)) is not None:
            found[(task, metric)] = significance
    return found
