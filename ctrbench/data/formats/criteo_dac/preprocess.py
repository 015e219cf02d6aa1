"""Raw Criteo DAC file -> train / valid / gold parquet + feature_map.json + manifest.json, streaming.

Two passes over the input: a newline count (the split draws need the number of data lines
before the first block is assigned; it also hashes the input; both on threads beside the first
blocks' parse), then the streaming read (``CriteoReader``), where
every block is split by ``SplitAssigner`` and appended to one ``ParquetWriter`` per split. Peak
memory is a few times ``block_bytes`` plus three row groups, independent of the file size.

Row groups hold exactly ``row_group_rows`` rows (the last one fewer), so the parquet bytes do
not depend on ``block_bytes``: the I/O block size is a speed knob, not part of the result.

Every output is written under a temporary name in its final folder and renamed only after all
of them succeeded and the splits were checked (disjoint, adding up, none empty or single-class); ``manifest.json`` is renamed last, so a run
that fails leaves nothing that looks complete.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ctrbench.data.formats.criteo_dac.options import OPTIONS
from ctrbench.data.formats.criteo_dac.reader import (
    BAD_ROW_KINDS,
    CATEGORICAL,
    CATEGORICAL_TRANSFORM,
    DEFAULT_WORKERS,
    DENSE,
    DENSE_TRANSFORM,
    LABEL,
    OUTPUT_SCHEMA,
    CriteoBlock,
    CriteoReader,
)
from ctrbench.data.manifest import DataManifest, RowCounts
from ctrbench.data.outputs import (
    COMPRESSION,
    MAX_DISTINCT_BINS,
    ROW_GROUP_ROWS,
    SplitWriter,
    StagedOutputs,
    output_paths,
)
from ctrbench.data.raw_input import count_lines, input_file, input_hasher
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES
from ctrbench.data.schema import Feature, FeatureMap, Task
from ctrbench.data.splits import (
    REST,
    SPLIT_BLOCK_LINES,
    SPLITS,
    SplitAssigner,
    check_split_files,
    check_split_labels,
    resolve_split_counts,
)
from ctrbench.provenance import package_versions


def preprocess_criteo(
    raw_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    outputs: Mapping[str, str | Path] | None = None,
    dataset_name: str = "criteo",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    workers: int = DEFAULT_WORKERS,
    progress: bool = True,
) -> dict:
    """Preprocess one raw Criteo file; returns the manifest as written to ``manifest.json``.

    Outputs go to ``out_dir`` under the names in ``OUTPUT_FILES``, or to the paths in
    ``outputs`` (keys ``train``, ``valid``, ``gold``, ``feature_map``, ``manifest``; they
    override ``out_dir``). ``options``: the dataset-config keys of options.yaml (defaults there):
    ``splits`` maps train/valid/gold to fractions or row counts (train: the rest when left out, see
    ``resolve_split_counts``); ``input_hash`` ``"sha256"`` records the input's sha256 (hashed on a thread
    during the line-count pass: ~0.2 s per 1M rows, half a minute of CPU on the 11 GB original),
    ``"size+mtime"`` only its size and modification time. ``block_bytes``, ``row_group_rows``... are
    layout and speed knobs; ``workers`` (threads) changes no output byte, so the manifest does not record it.
    """
    raw_path = Path(raw_path)
    paths = output_paths(out_dir, outputs)
    options = OPTIONS.resolve(options or {})
    spec = {"train": REST, **options["splits"]}
    hash_bins, split_seed, input_hash = options["hash_bins"], options["split_seed"], options["input_hash"]
    header = options["reader"]["header"]
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    reader = CriteoReader(
        raw_path,
        hash_bins=hash_bins,
        max_bad_rows=options["max_bad_rows"],
        block_bytes=block_bytes,
        workers=workers,
        **options["reader"],
    )

    # The split draws need the number of data lines, but only once the first block is assigned: the
    # line count (and the hash) runs on a thread beside the first blocks' parse.
    hasher = input_hasher(input_hash)
    stop_counting = threading.Event()
    counter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="count")
    counting = counter.submit(count_lines, raw_path, hasher=hasher, stop=stop_counting)
    counter.shutdown(wait=False)
    first_data_line = 2 if header else 1

    def plan_splits() -> tuple[int, int, dict[str, int], SplitAssigner]:
        total = counting.result()
        lines = total - (1 if header and total else 0)
        counts = resolve_split_counts(lines, spec)
        # a split planned empty fails here, before the long pass
        check_split_labels(
            {k: (n, None) for k, n in counts.items()},
            source=raw_path,
            empty_hint=lambda name: _empty_split_hint(spec, counts, lines, name),
        )
        return total, lines, counts, SplitAssigner(counts, split_seed)

    staged = StagedOutputs(paths)
    temps = staged.temps
    writers: dict[str, SplitWriter] = {}
    count_distinct = hash_bins <= MAX_DISTINCT_BINS
    seen = {c: np.zeros(hash_bins, bool) for c in CATEGORICAL} if count_distinct else {}
    assigner = None
    try:
        for name in SPLITS:  # the order resolve_split_counts gives
            writers[name] = SplitWriter(
                temps[name],
                OUTPUT_SCHEMA,
                row_group_rows,
                compression,
                concat=CriteoBlock.concat,
                label=LABEL,
                background=workers > 0,  # the parquet encoding overlaps the parse, off the main thread
            )
        with tqdm(
            total=raw_path.stat().st_size, unit="B", unit_scale=True, desc=raw_path.name, disable=not progress
        ) as bar:
            reader.on_bytes = bar.update
            for block in reader:
                if assigner is None:
                    total_lines, data_lines, planned, assigner = plan_splits()
                labels = assigner.labels_for(block.row_id - first_data_line)
                # each split's rows by one gather over its line-ordered indices: 3x cheaper than a mask
                # each, and each split's arrays are its own (a slice would keep the whole block alive)
                order = np.argsort(labels, kind="stable")
                bounds = np.searchsorted(labels[order], np.arange(len(planned) + 1))
                for i, name in enumerate(planned):
                    writers[name].add(block.take(order[bounds[i] : bounds[i + 1]]))
                for c, flags in seen.items():
                    flags[block.columns[c]] = True
        if assigner is None:  # (the reader raises first: a file without data rows is an error)
            total_lines, data_lines, planned, assigner = plan_splits()
        assigner.finish()
        sha256 = hasher.hexdigest() if hasher is not None else None
        if reader.data_lines != data_lines:
            raise RuntimeError(
                f"{raw_path}: counted {data_lines} data lines, then read {reader.data_lines}: file changed?"
            )
        for writer in writers.values():
            writer.finish()  # the three last row groups are encoded side by side
        for writer in writers.values():
            writer.close()
        written = {name: w.rows for name, w in writers.items()}
        positives_total = int(sum(w.positives for w in writers.values()))
        check_split_labels(
            {name: (w.rows, w.positives) for name, w in writers.items()},
            source=raw_path,
            empty_hint=lambda name: _empty_split_hint(spec, planned, data_lines, name),
            single_class_hint=lambda name: f"the data has {positives_total} positives in {reader.rows} rows",
        )
        check_split_files({k: temps[k] for k in planned}, expected_total=reader.rows, expected_counts=written)

        feature_map = FeatureMap(
            dataset=dataset_name,
            tasks=[Task(LABEL)],
            features=[Feature(c, "dense") for c in DENSE]
            + [Feature(c, "categorical", vocab_size=hash_bins) for c in CATEGORICAL],
            extra={
                "source": "criteo_dac",
                "hash_bins": hash_bins,
                "dense_transform": DENSE_TRANSFORM,
                "categorical_transform": CATEGORICAL_TRANSFORM,
                "reader": options["reader"],
                # distinct local ids seen per field (over all splits, id 0 included when missing
                # values occur): how full each hashed vocabulary is
                "distinct_ids": {c: int(np.count_nonzero(s)) for c, s in seen.items()} or None,
            },
        )
        feature_map.save(temps["feature_map"])

        manifest = DataManifest(
            dataset=dataset_name,
            format="criteo_dac",
            inputs={"raw": input_file(raw_path, input_hash, sha256, lines=total_lines, data_lines=data_lines)},
            options={
                **options,
                "split_block_lines": SPLIT_BLOCK_LINES,
                "block_bytes": block_bytes,
                "row_group_rows": row_group_rows,
                "compression": compression,
            },
            rows=RowCounts(read=reader.data_lines, written=reader.rows, bad=reader.bad.total),
            bad_rows=dict(reader.bad.counts),
            bad_row_examples=list(reader.bad.examples),
            dropped={},
            splits={name: w.summary(planned[name]) for name, w in writers.items()},
            split_times=None,
            outputs=staged.describe((*planned, "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={"transforms": {"dense": DENSE_TRANSFORM, "categorical": CATEGORICAL_TRANSFORM}},
        )
        assert set(manifest.bad_rows) == set(BAD_ROW_KINDS)
        return staged.publish(manifest)
    except BaseException:
        stop_counting.set()
        if hasher is not None:
            hasher.close()
        for w in writers.values():
            w.settle()
        staged.discard(w.writer for w in writers.values())
        raise


def _empty_split_hint(spec: Mapping, planned: Mapping[str, int], data_lines: int, name: str) -> str:
    dropped = f", and all {planned[name]} were bad rows" if planned[name] else ""
    return f"splits={spec} give it {planned[name]} of the {data_lines} data lines{dropped}; change splits"


__all__ = ["OPTIONS", "preprocess_criteo"]
