"""TaobaoAd_x1 CSVs -> train / valid / gold parquet + feature_map.json + manifest.json, streaming.

The raw input is a directory (``SPLIT_FILES``: train.csv, test.csv and optionally valid.csv) or a mapping of the
splits to their files; the layout, the transforms and the bad rows are those of ``reader``. Every file's header is
checked first, then two passes: a newline count per file (which also hashes it), then the streaming read
(``TaobaoAdReader``), every block appended to its split's parquet writer. Without a valid file, the valid split is
a seeded, exact fraction of the train file's data lines (``SplitAssigner``).

``row_id`` is unique across all three splits: the files are numbered as if concatenated in the
order train, valid, test (header lines included), so ``row_id = row_id_offset + physical line``,
with offset 0 for the train file, its line count for the valid file, and so on (the manifest
records each file's offset). A large fixed offset (10^12) is avoided because
``splits.check_split_files`` keeps one byte per id up to the largest one.

Every output is written under a partial name and renamed only at the end, after the splits were checked (none
empty or single-class).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ctrbench.data.formats.taobao_ad.options import OPTIONS
from ctrbench.data.formats.taobao_ad.reader import (
    BAD_ROW_KINDS,
    CATEGORICAL,
    GROUP,
    ITEM,
    LABEL,
    PRICE,
    SEQUENCE,
    TIME,
    TaobaoAdBlock,
    TaobaoAdReader,
    check_header,
    output_schema,
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
from ctrbench.data.raw_input import count_lines, input_files_of, input_hasher
from ctrbench.data.reading import DEFAULT_BLOCK_BYTES, BadRows
from ctrbench.data.schema import DEFAULT_SEQUENCE_GROUP, Feature, FeatureMap, SequenceGroup, Task
from ctrbench.data.splits import (
    SPLIT_BLOCK_LINES,
    SplitAssigner,
    check_split_files,
    check_split_labels,
    resolve_split_counts,
)
from ctrbench.provenance import package_versions

SOURCE = "taobao_ad_x1"
SPLIT_FILES = {"train": "train.csv", "valid": "valid.csv", "gold": "test.csv"}  # in a raw directory

CATEGORICAL_TRANSFORM = "int32 missing -> 0; else 1 + (stable_hash(utf-8 bytes) % (hash_bins - 1))"
PRICE_TRANSFORM = "float32 sign(x) * log1p(|x|); missing -> 0.0"
SEQUENCE_TRANSFORM = (
    "split on '^'; each id hashed like adgroup_id; the last max_len ids (most recent last), "
    "right-aligned, left-padded with 0; empty field -> all 0"
)
GROUP_TRANSFORM = "int64 stable_hash(userid) >> 1; missing -> 0"
HASH_FUNCTION = "stable_hash = murmur3 fmix64(FNV-1a 64(bytes))"
ROW_ID_RULE = "row_id_offset of the file (lines of the files before it: train, valid, test) + physical line"


def preprocess_taobao_ad(
    raw: str | Path | Mapping[str, str | Path | None],
    *,
    outputs: Mapping[str, str | Path],
    dataset_name: str = "taobao_ad",
    options: Mapping | None = None,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    row_group_rows: int = ROW_GROUP_ROWS,
    compression: str = COMPRESSION,
    progress: bool = True,
) -> dict:
    """Preprocess TaobaoAd_x1 CSVs; returns the manifest as written to ``outputs["manifest"]``.

    ``raw``: the raw directory (train.csv, test.csv and maybe valid.csv), or ``{"train": path, "valid": path or
    None, "gold": path}``. The gold split is the test file; the valid split is the valid file when given,
    otherwise a seeded, exact ``splits.valid`` fraction of the train file's data lines (``SplitAssigner``; bad
    lines keep their slot). ``options``: the dataset-config keys of options.yaml (defaults there). ``outputs``
    maps ``train``, ``valid``, ``gold``, ``feature_map`` and ``manifest`` to paths. Everything is written under
    partial names and renamed only at the end, after the splits were checked (none empty or single-class).
    ``input_hash`` as ``preprocess_criteo``, per input file (hashed during the line-count pass).
    """
    inputs = _input_files(raw)
    options = OPTIONS.resolve(options or {})
    hash_bins, max_len, valid_fraction = options["hash_bins"], options["history"]["max_len"], options["splits"]["valid"]
    split_seed, max_bad_rows, input_hash = options["split_seed"], options["max_bad_rows"], options["input_hash"]
    valid_from_train = "valid" not in inputs
    if row_group_rows < 1:
        raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
    paths = output_paths(None, outputs)
    for path in inputs.values():
        check_header(path)  # every file, before any long pass

    lines, sha256, offsets = _count_input_lines(inputs, input_hash)
    bad = BadRows.of(BAD_ROW_KINDS)
    readers = {
        key: TaobaoAdReader(
            path,
            hash_bins=hash_bins,
            max_len=max_len,
            max_bad_rows=max_bad_rows,
            block_bytes=block_bytes,
            row_id_offset=offsets[key],
            bad=bad,
        )
        for key, path in inputs.items()
    }
    data_lines = {k: max(n - 1, 0) for k, n in lines.items()}
    assigner, planned = _plan_splits(data_lines, valid_fraction, split_seed, valid_from_train)

    def empty_hint(name: str) -> str:
        return _empty_split_hint(name, inputs, planned, valid_fraction, valid_from_train)

    # a split planned empty fails now, before the long pass
    check_split_labels({k: (n, None) for k, n in planned.items()}, source=inputs["train"].parent, empty_hint=empty_hint)

    staged = StagedOutputs(paths)
    temps = staged.temps
    writers: dict[str, SplitWriter] = {}
    count_distinct = hash_bins <= MAX_DISTINCT_BINS
    seen = {c: np.zeros(hash_bins, bool) for c in [*CATEGORICAL, SEQUENCE]} if count_distinct else {}
    try:
        for name in ("train", "valid", "gold"):
            writers[name] = SplitWriter(
                temps[name],
                output_schema(max_len),
                row_group_rows,
                compression,
                concat=lambda blocks: TaobaoAdBlock.concat(blocks, max_len),
                label=LABEL,
            )
        total_bytes = sum(p.stat().st_size for p in inputs.values())
        with tqdm(total=total_bytes, unit="B", unit_scale=True, desc=dataset_name, disable=not progress) as bar:
            for key, reader in readers.items():
                reader.on_bytes = bar.update
                for block in reader:
                    if key == "train" and assigner is not None:
                        labels = assigner.labels_for(block.row_id - offsets["train"] - 2)  # line 2 = data line 0
                        writers["train"].add(block.take(labels == 0))
                        writers["valid"].add(block.take(labels == 1))
                    else:
                        writers[key].add(block)
                    for c, flags in seen.items():
                        flags[block.columns[c]] = True
                if reader.data_lines != data_lines[key]:
                    raise RuntimeError(
                        f"{reader.path}: counted {data_lines[key]} data lines, then read {reader.data_lines}: "
                        "file changed?"
                    )
        if assigner is not None:
            assigner.finish()
        for writer in writers.values():
            writer.close()
        written = {name: w.rows for name, w in writers.items()}
        rows_written = sum(r.rows for r in readers.values())
        check_split_labels(
            {name: (w.rows, w.positives) for name, w in writers.items()},
            source=inputs["train"].parent,
            empty_hint=empty_hint,
            single_class_hint=lambda name: (
                f"its rows come from {inputs['train' if name == 'valid' and valid_from_train else name]}"
            ),
        )
        check_split_files({k: temps[k] for k in writers}, expected_total=rows_written, expected_counts=written)

        transforms = {
            "categorical": CATEGORICAL_TRANSFORM,
            "price": PRICE_TRANSFORM,
            "click_sequence": SEQUENCE_TRANSFORM,
            "group_id": GROUP_TRANSFORM,
            "hash": HASH_FUNCTION,
            "row_id": ROW_ID_RULE,
        }
        _feature_map(dataset_name, hash_bins, max_len, transforms, seen).save(temps["feature_map"])

        manifest = DataManifest(
            dataset=dataset_name,
            format="taobao_ad",
            inputs=input_files_of(inputs, input_hash, sha256, lines=lines, data_lines=data_lines, offsets=offsets),
            options={
                **options,
                "valid_from": "train" if valid_from_train else "valid",
                "split_block_lines": SPLIT_BLOCK_LINES,
                "block_bytes": block_bytes,
                "row_group_rows": row_group_rows,
                "compression": compression,
            },
            rows=RowCounts(read=sum(r.data_lines for r in readers.values()), written=rows_written, bad=bad.total),
            bad_rows=dict(bad.counts),
            bad_row_examples=list(bad.examples),
            dropped={},
            splits={name: w.summary(planned[name]) for name, w in writers.items()},
            split_times=None,
            outputs=staged.describe(("train", "valid", "gold", "feature_map")),
            packages=package_versions(("numpy", "pyarrow")),
            details={"transforms": transforms},
        )
        return staged.publish(manifest)
    except BaseException:
        staged.discard(w.writer for w in writers.values())
        raise


def _input_files(raw: str | Path | Mapping[str, str | Path | None]) -> dict[str, Path]:
    """``raw`` (a raw directory or a split -> file mapping) -> the existing input files, in train, valid, gold order."""
    files = split_files(raw) if isinstance(raw, (str, Path)) else raw
    unknown = set(files) - {"train", "valid", "gold"}
    if unknown or not files.get("train") or not files.get("gold"):
        raise ValueError(f"files must map train and gold (and optionally valid) to paths, got {dict(files)}")
    inputs = {k: Path(files[k]) for k in ("train", "valid", "gold") if files.get(k)}
    for key, path in inputs.items():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such file (the {key} split of a taobao_ad dataset)")
    return inputs


def _count_input_lines(
    inputs: Mapping[str, Path], input_hash: str
) -> tuple[dict[str, int], dict[str, str | None], dict[str, int]]:
    """The line-count pass: (physical lines, sha256 or None, row_id_offset) per input file."""
    lines, sha256 = {}, {}
    for key, path in inputs.items():
        hasher = input_hasher(input_hash)
        lines[key] = count_lines(path, hasher=hasher)
        sha256[key] = hasher.hexdigest() if hasher is not None else None
    offsets, offset = {}, 0
    for key in inputs:  # train, valid, gold order
        offsets[key] = offset
        offset += lines[key]
    return lines, sha256, offsets


def _plan_splits(
    data_lines: Mapping[str, int], valid_fraction: float, split_seed: int, valid_from_train: bool
) -> tuple[SplitAssigner | None, dict[str, int]]:
    """(the train file's split assigner, or None with a valid file; the planned rows per split)."""
    if valid_from_train:
        planned_train = resolve_split_counts(
            data_lines["train"], {"train": 1.0 - float(valid_fraction), "valid": float(valid_fraction)}
        )
        return SplitAssigner(planned_train, split_seed), {**planned_train, "gold": data_lines["gold"]}
    return None, {k: data_lines[k] for k in ("train", "valid", "gold")}


def _feature_map(
    dataset_name: str, hash_bins: int, max_len: int, transforms: dict, seen: Mapping[str, np.ndarray]
) -> FeatureMap:
    return FeatureMap(
        dataset=dataset_name,
        tasks=[Task(LABEL)],
        features=[Feature(c, "categorical", vocab_size=hash_bins) for c in CATEGORICAL]
        + [Feature(PRICE, "dense")]
        + [Feature(SEQUENCE, "sequence", vocab_size=hash_bins, shares_vocab_with=ITEM, group=DEFAULT_SEQUENCE_GROUP)],
        sequence_groups=[SequenceGroup(DEFAULT_SEQUENCE_GROUP, max_len)],
        group_by=GROUP,
        extra={
            "source": SOURCE,
            "hash_bins": hash_bins,
            "max_len": max_len,
            "transforms": transforms,
            "unused_columns": [TIME],
            # distinct local ids seen per field over all splits (0 included where values are
            # missing or sequences padded): how full each hashed table is
            "distinct_ids": {c: int(np.count_nonzero(s)) for c, s in seen.items()} or None,
        },
    )


def _empty_split_hint(
    name: str, inputs: Mapping[str, Path], planned: Mapping[str, int], valid_fraction: float, valid_from_train: bool
) -> str:
    """Why a split came out empty: too small a share of the train file, or only bad rows."""
    if name != "gold" and valid_from_train:
        source = f"splits.valid={valid_fraction} of the train file's {planned['train'] + planned['valid']} data lines"
        if planned[name] == 0:
            return f"{source} leaves it no rows; change splits.valid or add a valid.csv"
        return f"{source} gives it {planned[name]} rows, all of them bad rows"
    if planned[name] == 0:
        return f"{inputs[name]} has no data lines"
    return f"all {planned[name]} data lines of {inputs[name]} were bad rows"


def split_files(directory: str | Path) -> dict[str, Path | None]:
    """``{"train", "valid", "gold"}`` -> the CSVs of a raw directory (``valid`` None without valid.csv)."""
    directory = Path(directory)
    files: dict[str, Path | None] = {k: directory / name for k, name in SPLIT_FILES.items()}
    if not files["valid"].exists():
        files["valid"] = None
    return files


__all__ = ["SPLIT_FILES", "preprocess_taobao_ad", "split_files"]
