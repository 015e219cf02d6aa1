"""Time of the report's statistics on a large gold split: 10 models × 5 seeds on 1 M rows by default.

Writes each run's gold predictions (as gold_eval writes them) to a scratch folder, then times what the report does
with them: reading and checking every file (sha256, same rows and labels) and testing each model against the best
(DeLong for AUC with the seeds' spread, the paired log-loss test, Holm) and each model against its neighbour in
the ranking (the small-gold flag). The
baseline in the same process is one pass of scikit-learn's roc_auc_score over every run, the cheapest thing any
per-run AUC needs. Prints figures; it is not a test.

    python bench/statistics.py [--rows 1000000] [--models 10] [--seeds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from ctrbench.metrics import binary_metrics
from ctrbench.predictions import PREDICTIONS_FILE, write_predictions
from ctrbench.report.entries import ModelResult, ResultEntry
from ctrbench.report.significance import dataset_significance
from ctrbench.results import GoldRecord, PredictionsFile, TaskMetrics, TrainRecord


def _run(folder: Path, model: str, seed: int, labels: np.ndarray, probs: np.ndarray) -> ResultEntry:
    sha = write_predictions(folder / PREDICTIONS_FILE, ["label"], np.arange(len(labels)), labels[:, None], probs[:, None])
    metrics = TaskMetrics(**binary_metrics(labels, probs))
    gold = GoldRecord.model_construct(tasks={"label": metrics}, predictions=PredictionsFile(file=PREDICTIONS_FILE, sha256=sha))
    train = TrainRecord.model_construct(seed=seed, tasks=["label"], dataset="bench", model=model, arch=model, config_sha256=None)
    return ResultEntry("bench", model, train, gold, None, str(folder / "gold_eval.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=10)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = (rng.random(args.rows) < 0.25).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="ctrbench-stats-") as scratch:
        results, all_probs = [], []
        for m in range(args.models):
            runs = []
            for seed in range(args.seeds):
                logit = labels * (0.8 + 0.02 * m) + rng.normal(size=args.rows) - 1.2
                probs = (1 / (1 + np.exp(-logit))).astype(np.float32)
                folder = Path(scratch) / f"m{m}" / f"seed{seed}"
                folder.mkdir(parents=True)
                runs.append(_run(folder, f"m{m}", seed, labels, probs))
                all_probs.append(probs)
            results.append(ModelResult(runs))
        start = time.perf_counter()
        for probs in all_probs:
            roc_auc_score(labels, probs)
        baseline = time.perf_counter() - start
        start = time.perf_counter()
        found = dataset_significance(results)
        seconds = time.perf_counter() - start
    runs = args.models * args.seeds
    print(f"statistics of {args.models} models x {args.seeds} seeds on {args.rows:,} gold rows: {seconds:.1f} s "
          f"(read and check {runs} prediction files, {2 * (args.models - 1)} tests against the best, {args.models - 1} between neighbours)")
    print(f"baseline, sklearn roc_auc_score once per run: {baseline:.1f} s -> statistics / baseline = {seconds / baseline:.2f}")
    tied = [m for m in (r.model for r in results) if found[("label", "auc")].tied(m)]
    print(f"best by AUC: {found[('label', 'auc')].best}; not significantly worse: {', '.join(tied)}")


if __name__ == "__main__":
    main()
