"""Rules report and partial_report: (train_metrics, gold_eval) pairs into one HTML report."""

import _source_tree  # noqa: F401  (first: this checkout's ctrbench, in conda envs and containers too)

import json
from pathlib import Path

from ctrbench.joblog import job_logging
from ctrbench.provenance import provenance, sha256_json
from ctrbench.report.build import build_report

with job_logging(snakemake.log[0]):
    config = snakemake.params.config
    # results/<dataset>/data/manifest.json, keyed by dataset
    manifests = {Path(path).parts[-3]: json.loads(Path(path).read_text()) for path in snakemake.input.manifests}
    info = provenance()
    build_report(
        list(zip(snakemake.input.train_metrics, snakemake.input.gold_evals)),
        snakemake.output.report,
        run_info={
            "git commit": info["git_commit"],
            "config sha256": sha256_json(config),
            "datasets": ", ".join(config["benchmark"]["datasets"]),
            "models": ", ".join(config["benchmark"]["models"]),
            "seed": config["seed"],
            "host": info["host"],
        },
        manifests=manifests,
        missing=[tuple(pair) for pair in snakemake.params.missing],
    )
