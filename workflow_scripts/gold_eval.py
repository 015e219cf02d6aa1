"""Rule gold_eval: the best checkpoint on the shared gold split (logic in ctrbench.evaluate)."""

import _source_tree  # noqa: F401  (first: this checkout's ctrbench, in conda envs and containers too)

import torch

from ctrbench.evaluate import evaluate_gold
from ctrbench.joblog import job_logging
from ctrbench.provenance import stamped

with job_logging(snakemake.log[0]):
    torch.set_num_threads(snakemake.threads)
    evaluate_gold(
        checkpoint_path=snakemake.input.checkpoint,
        gold_path=snakemake.input.gold,
        output_path=snakemake.output.gold_eval,
        batch_size=snakemake.params.training.get("eval_batch_size"),
        device=snakemake.params.training["device"],
        loader=snakemake.params.training.get("loader"),
        meta=stamped(snakemake.params.meta),
    )
