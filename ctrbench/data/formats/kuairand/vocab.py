"""Raw values -> categorical ids (0 = missing / padding): sorted-id vocabularies, tokens, whole-number codes and
quantile buckets.

Every vocabulary orders its values (raw ids and codes numerically, tokens by their bytes) and numbers them from 1,
so the ids depend only on the set of values, never on the order of the files or the block size.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctrbench.data.fields import parse_float, per_chunk

MISSING_INT = np.iinfo(np.int64).min  # a raw id or code that is not there
_EXACT = 2.0**53  # whole numbers written as floats are exact below this


def local_ids(sorted_ids: np.ndarray, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int64 position of each raw id in ``sorted_ids``, whether it is there at all)."""
    if len(sorted_ids) == 0:
        return np.zeros(len(raw), np.int64), np.zeros(len(raw), bool)
    position = np.minimum(np.searchsorted(sorted_ids, raw), len(sorted_ids) - 1)
    return position, sorted_ids[position] == raw


def id_vocabulary(raw: np.ndarray) -> tuple[np.ndarray, int]:
    """Raw ids (``MISSING_INT`` = missing) -> (int32 ids 1..V, 0 where missing; V)."""
    present = raw != MISSING_INT
    values, inverse = np.unique(raw[present], return_inverse=True)
    ids = np.zeros(len(raw), np.int32)
    ids[present] = inverse.astype(np.int32) + 1
    return ids, len(values)


def whole_numbers(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whole numbers, written as integers or floats (``87433.0``) -> (int64 values, ``MISSING_INT`` where empty;
    missing; bad: not a number, or not whole, or beyond 2**53)."""
    values, missing, bad = per_chunk(column, parse_float)
    bad |= ~missing & ((values != np.floor(values)) | (np.abs(values) >= _EXACT))
    ints = np.where(missing | bad, 0, values).astype(np.int64)
    ints[missing] = MISSING_INT
    return ints, missing, bad


class TokenVocab:
    """Strings (raw bytes) -> categorical ids, fed block by block; the empty string is missing.

    ``encode`` gives provisional ids (order of first appearance, so a block needs no global state but this small
    dict); ``final`` maps them to the ids of the sorted tokens, 1..V.
    """

    def __init__(self):
        self.provisional: dict[bytes, int] = {}

    def encode(self, column: pa.ChunkedArray) -> np.ndarray:
        """int32 provisional ids (0 = empty) of a block's values: one dictionary encoding, a dict lookup per
        distinct value."""
        parts = []
        for chunk in column.chunks or [pa.array([], pa.binary())]:
            encoded = pc.dictionary_encode(chunk)
            keys = [
                self.provisional.setdefault(v, len(self.provisional) + 1) if v else 0
                for v in encoded.dictionary.to_pylist()
            ]
            parts.append(np.asarray(keys, np.int32)[encoded.indices.to_numpy(zero_copy_only=False)])
        return np.concatenate(parts)

    def final(self, provisional_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """(int32 final ids of ``provisional_ids``, the tokens in id order from 1)."""
        tokens = sorted(self.provisional)
        remap = np.zeros(len(self.provisional) + 1, np.int32)
        for final_id, token in enumerate(tokens, start=1):
            remap[self.provisional[token]] = final_id
        return remap[provisional_ids], [t.decode("utf-8", errors="replace") for t in tokens]


def quantile_edges(values: np.ndarray, buckets: int) -> np.ndarray:
    """The distinct 1/buckets .. (buckets-1)/buckets quantiles of ``values`` (NaN left out; none if all are)."""
    values = values[~np.isnan(values)]
    if not len(values):
        return np.zeros(0, np.float64)
    return np.unique(np.quantile(values.astype(np.float64), np.arange(1, buckets) / buckets))


def bucketize(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """int32 bucket ids: 1 for values <= edges[0], k + 1 for edges[k-1] < value <= edges[k], len(edges) + 1 above
    the last edge; 0 for NaN (missing)."""
    ids = (np.searchsorted(edges, values, side="left") + 1).astype(np.int32)
    ids[np.isnan(values)] = 0
    return ids


__all__ = ["MISSING_INT", "TokenVocab", "bucketize", "id_vocabulary", "local_ids", "quantile_edges", "whole_numbers"]
