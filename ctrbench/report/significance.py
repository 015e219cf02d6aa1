"""Which models of a dataset the gold rows cannot tell from the best: paired tests on the runs' per-row predictions
(``ctrbench.statistics``), Holm-corrected over the comparisons of each task and metric."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ctrbench.predictions import PredictionsError, read_predictions
from ctrbench.report.entries import ModelResult
from ctrbench.statistics import auc_half_width, compare, holm, summarise_auc, summarise_logloss

ALPHA = 0.05
TESTED = {"auc": "max", "logloss": "min"}  # the metrics compared, and which way is better


@dataclass(frozen=True)
class Comparison:
    """One model against the best: the difference of their means (model − best) and the p-values."""

    difference: float
    p_value: float
    p_holm: float  # Holm-adjusted over the task's comparisons of this metric


@dataclass
class TaskSignificance:
    task: str
    metric: str
    best: str
    versus: dict[str, Comparison] = field(default_factory=dict)  # every other model with the metric
    half_widths: dict[str, float] = field(default_factory=dict)  # AUC: ± of each model's mean from the rows alone

    def tied(self, model: str) -> bool:
        """Not significantly different from the best (the best itself included)."""
        return model == self.best or (model in self.versus and self.versus[model].p_holm >= ALPHA)


@dataclass
class DatasetPredictions:
    """Every run's probabilities on one dataset's gold rows (which every run must share, labels included)."""

    labels: np.ndarray  # [N, T]
    known: np.ndarray  # [N, T] bool
    probs: dict[str, list[np.ndarray]]  # model -> one [N, T] float32 array per seed

    def task(self, model: str, index: int) -> list[np.ndarray]:
        """Each seed's probabilities of task ``index`` on the rows where its label is known (float32: exact for
        ranks, and half the memory)."""
        rows = self.known[:, index]
        return [p[rows, index] for p in self.probs[model]]


def load_predictions(results: Sequence[ModelResult]) -> DatasetPredictions:
    """Read each run's predictions (checked against its record's sha256) and check they cover the same gold rows."""
    tasks = results[0].tasks
    reference = None
    probs: dict[str, list[np.ndarray]] = {}
    for result in results:
        for run in result.runs:
            found = read_predictions(run.predictions_path, tasks, run.gold.predictions.sha256)
            if reference is None:
                reference, first = found, run.predictions_path
            elif not (
                np.array_equal(found.row_id, reference.row_id)
                and np.array_equal(found.known, reference.known)
                and np.array_equal(found.labels, reference.labels)
            ):
                raise PredictionsError(f"{run.predictions_path} does not hold the gold rows and labels of {first}")
            probs.setdefault(result.model, []).append(found.probs.astype(np.float32))
    return DatasetPredictions(reference.labels, reference.known, probs)


def task_significance(results: Sequence[ModelResult], predictions: DatasetPredictions, task: str, metric: str) -> TaskSignificance | None:
    """Each model against the best (by the mean over seeds) on ``task``'s ``metric``; None with fewer than two
    models holding the metric (e.g. AUC where the gold rows hold one class)."""
    scored = [r for r in results if r.gold_metric(task, metric) is not None]
    if len(scored) < 2:
        return None
    pick = max if TESTED[metric] == "max" else min
    best = pick(scored, key=lambda r: r.gold_metric(task, metric))
    index = best.tasks.index(task)
    labels = predictions.labels[predictions.known[:, index], index]
    summarise = summarise_auc if metric == "auc" else summarise_logloss
    summaries = {r.model: summarise(labels, predictions.task(r.model, index)) for r in scored}
    others = [r.model for r in scored if r is not best]
    found = [compare(summaries[model], summaries[best.model], metric) for model in others]
    significance = TaskSignificance(task, metric, best.model)
    for model, difference, p_holm in zip(others, found, holm([d.p_value for d in found])):
        significance.versus[model] = Comparison(difference.difference, difference.p_value, p_holm)
    if metric == "auc":
        significance.half_widths = {model: auc_half_width(summary) for model, summary in summaries.items()}
    return significance


def dataset_significance(results: Sequence[ModelResult]) -> dict[tuple[str, str], TaskSignificance]:
    """{(task, metric): its comparisons} for every task of the dataset and every tested metric."""
    if len(results) < 2:
        return {}
    predictions = load_predictions(results)
    found = {}
    for task in results[0].tasks:
        for metric in TESTED:
            if (significance := task_significance(results, predictions, task, metric)) is not None:
                found[(task, metric)] = significance
    return found
