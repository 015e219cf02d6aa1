"""Rule gold_eval: the best checkpoint on the shared gold split (logic in ctrbench.evaluate)."""

# ruff: noqa: F821  (`snakemake`: the object Snakemake's script directive defines)

import _source_tree  # noqa: F401, I001  (first: this checkout's ctrbench, in conda envs and containers too)

import torch

from ctrbench.atomic import clear_stale_partials
from ctrbench.evaluate import evaluate_gold
from ctrbench.joblog import job_logging
from ctrbench.provenance import stamped

with job_logging(snakemake.log[0]) as log:
    for removed in clear_stale_partials(*snakemake.output):
        log.info("removed %s, left by an earlier attempt that was killed", removed)
    torch.set_num_threads(snakemake.threads)
    evaluate_gold(
        checkpoint_path=snakemake.input.checkpoint,
        gold_path=snakemake.input.gold,
        output_path=snakemake.output.gold_eval,
        predictions_path=snakemake.output.predictions,
        batch_size=snakemake.params.training.get("eval_batch_size"),
        device=snakemake.params.training["device"],
        loader=snakemake.params.training.get("loader"),
        meta=stamped(snakemake.params.meta),
    )
