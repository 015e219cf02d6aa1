"""Rules report and partial_report: (train_metrics, gold_eval) pairs into one HTML report."""

import _source_tree  # noqa: F401, I001  (first: this checkout's ctrbench, in conda envs and containers too)

from pathlib import Path

from ctrbench.atomic import clear_stale_partials
from ctrbench.data.manifest import DataManifest
from ctrbench.joblog import job_logging
from ctrbench.provenance import provenance, sha256_json
from ctrbench.results import read_record
from ctrbench.report.build import build_report, config_references, dataset_models, models_line, seeds_line

smk = snakemake  # noqa: F821  (the object Snakemake's script directive defines)

with job_logging(smk.log[0]) as log:
    for removed in clear_stale_partials(*smk.output):
        log.info("removed %s, left by an earlier attempt that was killed", removed)
    config = smk.params.config
    # results/<dataset>/data/manifest.json, keyed by dataset
    manifests = {Path(path).parts[-3]: read_record(path, DataManifest) for path in smk.input.manifests}
    info = provenance()
    build_report(
        list(zip(smk.input.train_metrics, smk.input.gold_evals)),
        smk.output.report,
        run_info={
            "git commit": info["git_commit"],
            "config sha256": sha256_json(config),
            "datasets": ", ".join(config["benchmark"]["datasets"]),
            # each dataset compares its own `models` list where it has one, else benchmark.models
            "models": models_line(dataset_models(config)),
            "seeds": seeds_line(config),
            "host": info["host"],
        },
        manifests=manifests,
        missing=[tuple(pair) for pair in smk.params.missing],
        # published values to compare with: datasets.<name>.reference {metric, source, values}
        references=config_references(config),
        cost=config["report"]["cost"],
    )
