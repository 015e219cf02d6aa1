"""Start-up of each workflow job: a fresh interpreter importing what the job's script imports, this checkout against
another revision, timed in the same invocation.

A Snakemake job runs its script in a new Python process: Snakemake's preamble (unpickling the ``snakemake`` object
imports snakemake.iocontainers), the script's top-level imports (read from workflow_scripts/<rule>.py of each tree),
and what the job imports when it runs (train and gold_eval look up their model in the registry). Each job kind runs
``--repeats`` times per tree, the trees alternating, and prints the median wall and CPU (user + sys) seconds and the
ratio this / other. Prints figures; it is not a test.

    python bench/job_startup.py [--against REV] [--repeats 5] [--arch dcnv2]
"""

from __future__ import annotations

import argparse
import ast
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREAMBLE = "import pickle\nfrom snakemake.logging import logger\nfrom snakemake.iocontainers import Snakemake\n"
# the jobs of the default run: rule -> its script; train and gold_eval then build their model
JOBS = {"generate_synthetic": "generate_synthetic", "preprocess": "preprocess", "train": "train",
        "gold_eval": "gold_eval", "report": "report"}  # fmt: skip
BUILDS_A_MODEL = {"train", "gold_eval"}


def script_imports(tree: Path, script: str) -> str:
    """The top-level import statements of workflow_scripts/<script>.py, in order."""
    source = (tree / "workflow_scripts" / f"{script}.py").read_text()
    body = ast.parse(source).body
    return "\n".join(ast.unparse(node) for node in body if isinstance(node, (ast.Import, ast.ImportFrom)))


def job_code(tree: Path, job: str, arch: str) -> str:
    code = PREAMBLE + script_imports(tree, JOBS[job])
    if job in BUILDS_A_MODEL:
        code += f"\nfrom ctrbench.models.registry import model_class\nmodel_class({arch!r})"
    return code


def run_once(tree: Path, code: str) -> tuple[float, float]:
    """(wall, CPU) seconds of one interpreter running ``code`` with ``tree``'s ctrbench first on its path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), str(tree / "workflow_scripts")])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="HEAD", help="git revision to compare with (default: HEAD)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--arch", default="dcnv2", help="the model train and gold_eval build")
    parser.add_argument("--jobs", nargs="+", default=list(JOBS), choices=list(JOBS))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ctrbench-startup-") as scratch:
        other = Path(scratch)
        archive = subprocess.run(["git", "archive", args.against], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(other)], input=archive, check=True)
        trees = {"other": other, "this": REPO}
        print(f"job start-up, median of {args.repeats}: this checkout vs {args.against}"
              + (" (PYTHONDONTWRITEBYTECODE is set: every job compiles ctrbench)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else ""))  # fmt: skip
        print(f"  {'job':<20}{'other wall':>11}{'this wall':>11}{'ratio':>7}{'other CPU':>11}{'this CPU':>10}{'ratio':>7}")
        for job in args.jobs:
            codes = {name: job_code(tree, job, args.arch) for name, tree in trees.items()}
            times: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
            for name, tree in trees.items():  # one untimed run each: the page cache, as a job after the first finds it
                run_once(tree, codes[name])
            for _ in range(args.repeats):
                for name, tree in trees.items():
                    times[name].append(run_once(tree, codes[name]))
            wall = {name: statistics.median(t[0] for t in runs) for name, runs in times.items()}
            cpu = {name: statistics.median(t[1] for t in runs) for name, runs in times.items()}
            print(f"  {job:<20}{wall['other']:>10.2f}s{wall['this']:>10.2f}s{wall['this'] / wall['other']:>7.2f}"
                  f"{cpu['other']:>10.2f}s{cpu['this']:>9.2f}s{cpu['this'] / cpu['other']:>7.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
