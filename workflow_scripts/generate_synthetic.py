"""Rule generate_synthetic: a seeded raw file in the dataset's real format (ctrbench.data)."""

import _source_tree  # noqa: F401  (first: this checkout's ctrbench, in conda envs and containers too)

from ctrbench.data.formats import FORMATS
from ctrbench.joblog import job_logging

with job_logging(snakemake.log[0]) as log:
    synthetic = snakemake.params.synthetic
    facts = FORMATS[snakemake.params.format].write_synthetic(
        snakemake.output.raw, rows=synthetic["rows"], seed=synthetic.get("seed", 0)
    )
    log.info("wrote %s: %s", snakemake.output.raw, facts)
