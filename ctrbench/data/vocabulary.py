"""Categorical values as strings -> ids through a vocabulary built on the train split with a minimum count.

The FuxiCTR / BARS convention (its ``Tokenizer``, ``min_categr_count``): a value seen fewer than ``min_count``
times in the train split, and a value never seen there, share one out-of-vocabulary id. Here:

- id ``MISSING_ID`` (0): an empty field;
- id ``OOV_ID`` (1): a value below ``min_count`` in train, or unseen there;
- ids 2..V+1: the kept values, by decreasing train count (ties by key), as FuxiCTR orders its vocabulary.

Values are never held as Python strings: ``hash_values`` turns each raw byte string into a 64-bit key with a
vectorised splitmix64 over its 8-byte words (the length mixed in first), ``VocabCounter`` counts the keys of
every field in bounded memory (``DistinctCounts``), and ``Vocabulary.ids`` maps keys with one ``searchsorted``.
Two distinct values of a field share a key with probability about ``n^2 / 2^65`` (``n`` distinct values: 3e-6
for Avazu's 6.7 M device_ip values); the keys are part of the output format (they order ties).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from ctrbench.data.distinct import DistinctCounts
from ctrbench.data.fields import binary_views
from ctrbench.data.schema import MISSING_ID

OOV_ID = 1
FIRST_ID = 2  # the first id of a kept value
_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)
_ONES = np.uint64(2**64 - 1)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arithmetic wraps)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def _word_view(padded: np.ndarray) -> np.ndarray:
    """Unaligned little-endian uint64 at every byte offset of ``padded`` (a strided view, no copy)."""
    return np.ndarray((len(padded) - 7,), dtype=np.uint64, buffer=padded, strides=(1,))


def hash_values(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(int64 keys, missing) of a binary / string array: ``missing`` where the value is empty (key 0 there).

    key = mix(... mix(mix(len * GOLDEN) ^ word_0) ... ^ word_k), words the value's 8-byte little-endian
    pieces, the last zero-filled past the value's end. Vectorised over rows, one pass per word position."""
    offsets, padded = binary_views(arr)  # 24 zero bytes behind the data: a word may start at any value
    lens = np.diff(offsets).astype(np.uint64)
    starts = offsets[:-1].astype(np.int64)
    words = _word_view(padded)
    with np.errstate(over="ignore"):
        keys = _mix(lens * _GOLDEN + np.uint64(1))
        n_words = (lens + np.uint64(7)) // np.uint64(8)
        for w in range(int(n_words.max(initial=0))):
            rows = np.flatnonzero(n_words > w) if w else np.flatnonzero(n_words > 0)
            left = lens[rows] - np.uint64(8 * w)  # bytes of the value from this word on (>= 1)
            mask = np.where(left >= 8, _ONES, (np.uint64(1) << (np.minimum(left, 7) * np.uint64(8))) - np.uint64(1))
            keys[rows] = _mix(keys[rows] ^ (words[starts[rows] + 8 * w] & mask))
    missing = lens == 0
    keys[missing] = 0
    return keys.view(np.int64), missing


def hash_column(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """``hash_values`` of every chunk of a column, joined."""
    parts = [hash_values(chunk) for chunk in column.chunks or [pa.array([], pa.binary())]]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class VocabCounter:
    """Train-split counts of every field's keys, fed block by block (memory follows the distinct keys)."""

    def __init__(self, fields: list[str]):
        self.fields = list(fields)
        self.counts = {name: DistinctCounts(1) for name in self.fields}

    def add(self, name: str, keys: np.ndarray, missing: np.ndarray | None = None) -> None:
        """Count ``keys`` (int64) of field ``name``, the missing ones left out."""
        self.counts[name].add(keys if missing is None or not missing.any() else keys[~missing])

    def vocabularies(self, min_count: int) -> dict[str, Vocabulary]:
        return {name: Vocabulary.build(*self.counts[name].result(), min_count) for name in self.fields}


@dataclass
class Vocabulary:
    """One field's kept keys (sorted) and their ids; what was counted, for the feature map."""

    keys: np.ndarray  # [K] int64, sorted
    key_ids: np.ndarray  # [K] int32 id of each key (FIRST_ID.. by decreasing count)
    distinct: int  # distinct keys in train
    dropped_values: int  # distinct keys below min_count (they map to OOV_ID)
    dropped_rows: int  # train rows holding such a key

    @classmethod
    def build(cls, keys: list[np.ndarray], counts: np.ndarray, min_count: int) -> Vocabulary:
        keys_sorted = keys[0]
        keep = counts >= min_count
        kept, kept_counts = keys_sorted[keep], counts[keep]
        rank = np.empty(len(kept), np.int64)
        rank[np.lexsort((kept, -kept_counts))] = np.arange(len(kept))  # by count desc, then key
        return cls(
            keys=kept,
            key_ids=(rank + FIRST_ID).astype(np.int32),
            distinct=len(keys_sorted),
            dropped_values=int(np.count_nonzero(~keep)),
            dropped_rows=int(counts[~keep].sum()),
        )

    @property
    def size(self) -> int:
        """Rows of the embedding table: missing, OOV and the kept values."""
        return len(self.keys) + FIRST_ID

    def ids(self, keys: np.ndarray, missing: np.ndarray | None = None) -> np.ndarray:
        """int32 ids of int64 ``keys``: kept -> its id, otherwise ``OOV_ID``; ``MISSING_ID`` where ``missing``."""
        if len(self.keys) == 0:
            ids = np.full(len(keys), OOV_ID, np.int32)
        else:
            position = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
            ids = np.where(self.keys[position] == keys, self.key_ids[position], OOV_ID).astype(np.int32)
        if missing is not None:
            ids[missing] = MISSING_ID
        return ids

    def facts(self) -> dict:
        return {
            "kept_values": len(self.keys),
            "train_distinct_values": self.distinct,
            "values_below_min_count": self.dropped_values,
            "train_rows_below_min_count": self.dropped_rows,
        }


__all__ = ["FIRST_ID", "OOV_ID", "VocabCounter", "Vocabulary", "hash_column", "hash_values"]
