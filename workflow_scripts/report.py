"""Rule report: every (train_metrics, gold_eval) pair of the benchmark into results/report.html."""

import json

from ctrbench.joblog import job_logging
from ctrbench.provenance import provenance, sha256_json
from ctrbench.report.build import build_report

with job_logging(snakemake.log[0]):
    config = snakemake.params.config
    manifests = {
        dataset: json.loads(open(path).read())
        for dataset, path in zip(config["benchmark"]["datasets"], snakemake.input.manifests)
    }
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
    )
