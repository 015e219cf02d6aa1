"""Wall time of the default benchmark (`snakemake --cores all results/report.html`) against its goal.

Runs the workflow, as a user would, in a scratch copy of the repository so that an existing
results/ is neither reused nor touched. Prints figures; it is not a test.

    python bench/default_run.py [--cores N] [--goal-seconds 300]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", default="all")
    parser.add_argument("--goal-seconds", type=float, default=300.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ctrbench-bench-") as scratch:
        work = Path(scratch)
        # the package too, so the run times this checkout whatever `pip install -e` points at
        for part in ("Snakefile", "rules", "workflow_scripts", "config", "envs", "containers", "ctrbench", "report"):
            source = REPO / part
            (shutil.copytree if source.is_dir() else shutil.copy)(source, work / part)
        start = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", args.cores, "results/report.html"],
            cwd=work, capture_output=True, text=True, check=False,
        )
        wall = time.perf_counter() - start
        if run.returncode != 0:
            sys.exit(f"default run failed:\n{run.stderr[-4000:]}")
        per_job = {}
        for tsv in sorted(work.glob("results/*/*/seed*/benchmarks/*.tsv")):
            seconds = float(tsv.read_text().splitlines()[1].split("\t")[0])
            per_job[str(tsv.relative_to(work / "results"))] = round(seconds, 1)
        gold = {}
        for path in sorted(work.glob("results/*/*/seed*/gold_eval.json")):
            record = json.loads(path.read_text())
            gold[f"{record['dataset']}/{record['model']} seed {record['seed']}"] = {task: m["auc"] for task, m in record["tasks"].items()}
        report = (work / "results" / "report.html").read_text()
        shutil.copy(work / "results" / "report.html", Path(tempfile.gettempdir()) / "ctrbench-default-report.html")

    print(f"default run: {wall:.1f} s wall on {args.cores} cores; goal {args.goal_seconds:.0f} s "
          f"-> {wall / args.goal_seconds:.2f} of the budget ({'met' if wall <= args.goal_seconds else 'NOT met'})")
    for job, seconds in per_job.items():
        print(f"  {job:<50} {seconds:>7.1f} s")
    print(f"  report: {len(report) / 1024:.0f} KiB, kept at {Path(tempfile.gettempdir()) / 'ctrbench-default-report.html'}")
    for result, aucs in gold.items():
        print(f"  gold AUC {result:<40} " + ", ".join(f"{task} {auc:.4f}" for task, auc in aucs.items()))


if __name__ == "__main__":
    main()
