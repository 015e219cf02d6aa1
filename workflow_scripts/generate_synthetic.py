"""Rule generate_synthetic: a seeded raw file in the dataset's real format (ctrbench.data)."""

# ruff: noqa: F821  (`snakemake`: the object Snakemake's script directive defines)

import _source_tree  # noqa: F401  (first: this checkout's ctrbench, in conda envs and containers too)

from ctrbench.atomic import clear_stale_partials
from ctrbench.data.formats import FORMATS
from ctrbench.joblog import job_logging

with job_logging(snakemake.log[0]) as log:
    for removed in clear_stale_partials(*snakemake.output):
        log.info("removed %s, left by an earlier attempt that was killed", removed)
    synthetic = snakemake.params.synthetic
    facts = FORMATS[snakemake.params.format].write_synthetic(
        snakemake.output.raw, rows=synthetic["rows"], seed=synthetic["seed"]
    )
    log.info("wrote %s: %s", snakemake.output.raw, facts)
