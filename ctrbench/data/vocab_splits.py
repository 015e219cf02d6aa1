"""Two streaming passes that turn rows of string categoricals into split parquet files with train vocabularies.

The shared core of the formats whose categorical values are strings mapped through a vocabulary built on the
train split with a minimum count (``ctrbench.data.vocabulary``: Avazu, the BARS / FuxiCTR CSV splits):

1. read every row (a format's reader, as ``KeyBlock``s: each row's split already known), and count the keys of
   every categorical field over the train rows;
2. read again, map the keys to ids (0 missing, 1 out of vocabulary, 2.. kept values) and append each row to its
   split's parquet writer.

Reading twice keeps memory bounded by a block plus the distinct keys (no row is held between the passes); the
second pass must meet exactly the rows and bad rows of the first (else the file changed while being read).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from ctrbench.data.blocks import ColumnBlock
from ctrbench.data.outputs import SplitWriter, StagedOutputs
from ctrbench.data.reading import BadRows
from ctrbench.data.schema import ROW_ID, Feature, FeatureMap, Task
from ctrbench.data.splits import SPLITS, check_split_files, check_split_labels
from ctrbench.data.vocabulary import VocabCounter, Vocabulary

VOCABULARY_RULE = (
    "int32 id: 0 = empty field, 1 = out of vocabulary (fewer than min_count train rows, or unseen in train), "
    "2.. = the values kept, by decreasing train count (ties by their 64-bit key)"
)
NUMERIC_RULE = "float32, as written; empty -> 0.0"


@dataclass
class KeyBlock:
    """Good rows of one read block: their split (index into ``SPLITS``), label and raw keys."""

    row_id: np.ndarray  # [n] int64 physical line (plus the file's offset)
    label: np.ndarray  # [n] float32 0 / 1
    split: np.ndarray  # [n] int8
    keys: dict[str, tuple[np.ndarray, np.ndarray]]  # categorical field -> ([n] int64 keys, [n] bool missing)
    numeric: dict[str, np.ndarray] = field(default_factory=dict)  # [n] float32

    def __len__(self) -> int:
        return len(self.row_id)


# (bad rows to record into, bytes callback) -> a fresh read of every input, in order
ReadPass = Callable[[BadRows, Callable[[int], None]], Iterator[KeyBlock]]


@dataclass
class VocabSplits:
    """What the two passes wrote and found."""

    writers: dict[str, SplitWriter]
    vocabularies: dict[str, Vocabulary]
    bad: BadRows
    rows: int  # good rows (every one in one split)
    single_class: dict[str, list[str]]


def output_schema(label: str, categorical: Sequence[str], numeric: Sequence[str]) -> pa.Schema:
    return pa.schema(
        [(ROW_ID, pa.int64()), (label, pa.float32())]
        + [(c, pa.int32()) for c in categorical]
        + [(c, pa.float32()) for c in numeric]
    )


def write_vocab_splits(
    read: ReadPass,
    *,
    staged: StagedOutputs,
    label: str,
    categorical: Sequence[str],
    numeric: Sequence[str],
    min_count: int,
    bad_kinds: Sequence[str],
    total_bytes: int,
    source: str | Path,
    empty_hint: Callable[[str], str],
    row_group_rows: int,
    compression: str,
    desc: str,
    progress: bool,
) -> VocabSplits:
    """The two passes into ``staged``'s train / valid / gold temps, checked (no split empty or of one class,
    disjoint row ids). The caller writes the feature map (``feature_map``) and the manifest, and discards
    ``staged`` on failure (the writers are closed here on success)."""
    counter = VocabCounter(list(categorical))
    bad = BadRows.of(bad_kinds)
    rows = 0
    with tqdm(total=2 * total_bytes, unit="B", unit_scale=True, desc=desc, disable=not progress) as bar:
        for block in read(bad, bar.update):
            train = block.split == 0
            rows += len(block)
            for name in categorical:
                keys, missing = block.keys[name]
                counter.add(name, keys[train], missing[train])
        vocabularies = counter.vocabularies(min_count)
        schema = output_schema(label, categorical, numeric)
        concat = lambda blocks: ColumnBlock.concat(blocks, schema)
        writers = {
            name: SplitWriter(staged.temps[name], schema, row_group_rows, compression, concat=concat, label=label)
            for name in SPLITS
        }
        again = BadRows.of(bad_kinds)
        try:
            for block in read(again, bar.update):
                columns = {ROW_ID: block.row_id, label: block.label}
                for name in categorical:
                    columns[name] = vocabularies[name].ids(*block.keys[name])
                columns.update(block.numeric)
                out = ColumnBlock(schema, columns)
                order = np.argsort(block.split, kind="stable")
                bounds = np.searchsorted(block.split[order], np.arange(len(SPLITS) + 1))
                for i, name in enumerate(SPLITS):
                    writers[name].add(out.take(order[bounds[i] : bounds[i + 1]]))
            for writer in writers.values():
                writer.close()
        except BaseException:
            staged.discard(w.writer for w in writers.values())
            raise
    written = {name: w.rows for name, w in writers.items()}
    if again.counts != bad.counts or sum(written.values()) != rows:
        raise RuntimeError(f"{source}: the second read met other rows than the first: input changed?")
    positives = int(sum(w.positives for w in writers.values()))
    single_class = check_split_labels(
        {name: (w.rows, w.positives) for name, w in writers.items()},
        source=source,
        empty_hint=empty_hint,
        single_class_hint=lambda name: f"the data has {positives} positives in {rows} rows",
    )
    check_split_files({k: staged.temps[k] for k in SPLITS}, expected_total=rows, expected_counts=written)
    return VocabSplits(writers, vocabularies, bad, rows, single_class)


def feature_map(
    dataset: str, label: str, vocabularies: Mapping[str, Vocabulary], numeric: Sequence[str], extra: Mapping
) -> FeatureMap:
    """One task (``label``), the categorical fields (tables: missing, OOV and the kept values) and the numerics."""
    return FeatureMap(
        dataset=dataset,
        tasks=[Task(label)],
        features=[Feature(name, "categorical", vocab_size=v.size) for name, v in vocabularies.items()]
        + [Feature(name, "dense") for name in numeric],
        extra={
            **extra,
            "categorical_transform": VOCABULARY_RULE,
            "numeric_transform": NUMERIC_RULE,
            "vocabularies": {name: v.facts() for name, v in vocabularies.items()},
            "columns_not_features": [ROW_ID],
        },
    )


__all__ = ["NUMERIC_RULE", "VOCABULARY_RULE", "KeyBlock", "VocabSplits", "feature_map", "write_vocab_splits"]
