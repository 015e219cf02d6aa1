"""Rule generate_synthetic: a seeded raw input (a file, or a directory of files) in the dataset's real format."""

# ruff: noqa: F821  (`snakemake`: the object Snakemake's script directive defines)

import _source_tree  # noqa: F401, I001  (first: this checkout's ctrbench, in conda envs and containers too)

from pathlib import Path

from ctrbench.atomic import clear_stale_partials
from ctrbench.data.formats import FORMATS
from ctrbench.joblog import job_logging

with job_logging(snakemake.log[0]) as log:
    for removed in clear_stale_partials(*snakemake.output):
        log.info("removed %s, left by an earlier attempt that was killed", removed)
    synthetic = snakemake.params.synthetic
    Path(snakemake.output.raw).mkdir(parents=True, exist_ok=True)  # the target is this folder or a file in it
    facts = FORMATS[snakemake.params.format].synthetic_writer(synthetic.get("profile", "default"))(
        snakemake.params.target, rows=synthetic["rows"], seed=synthetic["seed"]
    )
    log.info("wrote %s: %s", snakemake.params.target, facts)
