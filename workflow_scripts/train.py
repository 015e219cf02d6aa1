"""Rule train: one model on one dataset, in one or several processes (arguments from Snakemake, logic in ctrbench.train)."""

# ruff: noqa: F821  (`snakemake`: the object Snakemake's script directive defines)

import _source_tree  # noqa: F401, I001  (first: this checkout's ctrbench, in conda envs and containers too)

from pathlib import Path

from ctrbench.atomic import clear_stale_partials
from ctrbench.joblog import job_logging
from ctrbench.provenance import stamped
from ctrbench.train.launch import train_job
from ctrbench.train.trainer import TrainOutputs

with job_logging(snakemake.log[0]) as log:
    for removed in clear_stale_partials(*snakemake.output, *snakemake.params.downstream):
        log.info("removed %s, left by an earlier attempt that was killed", removed)
    # the gold evaluation of the run this one replaces: gone before training, so a failure leaves nothing stale
    for path in map(Path, snakemake.params.downstream):
        if path.exists():
            path.unlink()
            log.info("removed %s: it scored the checkpoint this job replaces", path)
    train_job(
        threads=snakemake.threads,
        log_path=snakemake.log[0],
        train_path=snakemake.input.train,
        valid_path=snakemake.input.valid,
        feature_map_path=snakemake.input.feature_map,
        arch=snakemake.params.model["arch"],
        params=snakemake.params.model.get("params", {}),
        training=snakemake.params.training,
        seed=snakemake.params.seed,
        outputs=TrainOutputs(snakemake.output.checkpoint, snakemake.output.metrics, snakemake.output.train_log),
        meta=stamped(snakemake.params.meta),
        init=snakemake.params.init and {**snakemake.params.init, "checkpoint": snakemake.input.init},
    )
