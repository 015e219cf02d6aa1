"""Rule preprocess: raw file -> train/valid/gold parquet, feature map and manifest (ctrbench.data)."""

# ruff: noqa: F821  (`snakemake`: the object Snakemake's script directive defines)

import _source_tree  # noqa: F401  (first: this checkout's ctrbench, in conda envs and containers too)

from ctrbench.atomic import clear_stale_partials
from ctrbench.data.formats import FORMATS
from ctrbench.joblog import job_logging

with job_logging(snakemake.log[0]) as log:
    for removed in clear_stale_partials(*snakemake.output):
        log.info("removed %s, left by an earlier attempt that was killed", removed)
    dataset_format = FORMATS[snakemake.params.dataset["format"]]
    manifest = dataset_format.preprocess(
        snakemake.params.raw,
        outputs={key: snakemake.output[key] for key in ("train", "valid", "gold", "events", "feature_map", "manifest")},
        dataset_name=snakemake.wildcards.dataset,
        options=dataset_format.options.of_entry(snakemake.params.dataset),
        progress=True,
    )
    log.info("rows: %s; bad rows: %s; left out: %s", manifest["rows"], manifest["bad_rows"], manifest["dropped"])
