"""Field parsing of the TaobaoAd_x1 layout: the stable hash behind every categorical id, and ``click_sequence``.

``stable_hash`` is FNV-1a 64 over the value's bytes followed by the murmur3 ``fmix64`` finaliser; the local id is
``1 + stable_hash(value) % (hash_bins - 1)``, empty -> 0 (``MISSING_ID``). ``click_sequence`` ids go through the
very same function as ``adgroup_id`` values, so a clicked item and the same target item get the same id.

The sequence is split with ``pyarrow.compute.split_pattern`` and placed into a ``[rows, max_len]`` matrix by index
arithmetic on the list offsets (the last ``max_len`` ids, right-aligned, left-padded with 0). An empty id inside a
sequence (``1^^2``, ``^1``, ``1^``) and a non-integer id make the row bad. No per-row Python anywhere.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ctrbench.data.fields import binary_views
from ctrbench.data.reading import describe_value
from ctrbench.data.schema import MISSING_ID

SEQUENCE_SEPARATOR = "^"

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_FMIX = (np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53))


def _fnv1a_fmix(starts: np.ndarray, lens: np.ndarray, data: np.ndarray) -> np.ndarray:
    """uint64 ``stable_hash`` of the byte strings ``data[start:start + len]``, vectorised.

    The FNV loop runs over byte positions, each step over the strings still that long (sorted
    longest first, so they are a prefix): the work is the total byte count, whatever the mix of
    lengths.
    """
    n = len(starts)
    if n == 0:
        return np.empty(0, np.uint64)
    order = np.argsort(-lens.astype(np.int64), kind="stable")  # longest first
    s = starts[order].astype(np.int64)
    neg = -lens[order].astype(np.int64)  # ascending
    h = np.full(n, _FNV_OFFSET, np.uint64)
    for j in range(int(-neg[0])):
        k = int(np.searchsorted(neg, -j, side="left"))  # strings longer than j
        h[:k] ^= data[s[:k] + j]
        h[:k] *= _FNV_PRIME
    h ^= h >> np.uint64(33)
    h *= _FMIX[0]
    h ^= h >> np.uint64(33)
    h *= _FMIX[1]
    h ^= h >> np.uint64(33)
    out = np.empty(n, np.uint64)
    out[order] = h
    return out


def stable_hash(values: pa.Array | list) -> np.ndarray:
    """uint64 ``fmix64(FNV-1a 64)`` of each value's bytes (str values as UTF-8); fixed forever."""
    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values, pa.binary())
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_string(values.type):
        values = values.cast(pa.binary())
    offsets, padded = binary_views(values)
    return _fnv1a_fmix(offsets[:-1], np.diff(offsets), padded)


def _local_ids(hashes: np.ndarray, hash_bins: int) -> np.ndarray:
    return (np.uint64(1) + hashes % np.uint64(hash_bins - 1)).astype(np.int32)


def hash_categorical(arr: pa.Array, hash_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw bytes -> (int32 local ids, 0 for empty; uint64 stable hashes, 0 for empty)."""
    offsets, padded = binary_views(arr)
    lens = np.diff(offsets)
    present = np.flatnonzero(lens > 0)
    hashes = np.zeros(len(arr), np.uint64)
    hashes[present] = _fnv1a_fmix(offsets[:-1][present], lens[present], padded)
    ids = np.full(len(arr), MISSING_ID, np.int32)
    ids[present] = _local_ids(hashes[present], hash_bins)
    return ids, hashes


def parse_sequence(arr: pa.Array, hash_bins: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """``^``-joined ids -> (int32 [n, max_len] right-aligned local ids, bad rows)."""
    n = len(arr)
    out = np.zeros((n, max_len), np.int32)
    if n == 0:
        return out, np.zeros(0, bool)
    field_len = np.diff(binary_views(arr)[0])
    lists = pc.split_pattern(arr, SEQUENCE_SEPARATOR)
    list_offsets = np.asarray(lists.offsets).astype(np.int64)
    list_offsets -= list_offsets[0]  # flatten() below starts at the first list's first token
    counts = np.diff(list_offsets)
    token_offsets, token_data = binary_views(lists.flatten())
    token_lens = np.diff(token_offsets)
    row = np.repeat(np.arange(n), counts)
    real = field_len[row] > 0  # "" splits into one empty token: an empty field is an empty sequence
    # a token is bad when empty or holding a byte other than 0-9
    used = token_data[: token_offsets[-1]]
    non_digit = np.flatnonzero((used - np.uint8(ord("0"))) > 9)
    bad_token = token_lens == 0
    bad_token[np.searchsorted(token_offsets, non_digit, side="right") - 1] = True
    bad = np.zeros(n, bool)
    bad[row[bad_token & real]] = True
    # keep the last max_len ids of each good row, the last one in the last column
    index_in_row = np.arange(len(row)) - list_offsets[row]
    from_end = counts[row] - 1 - index_in_row
    keep = np.flatnonzero(real & ~bad[row] & (from_end < max_len))
    ids = _local_ids(_fnv1a_fmix(token_offsets[:-1][keep], token_lens[keep], token_data), hash_bins)
    out[row[keep], max_len - 1 - from_end[keep]] = ids
    return out, bad


def sequence_problem(value: bytes) -> str:
    """Why a click_sequence value is bad (for the few messages that are shown)."""
    for i, token in enumerate(value.split(SEQUENCE_SEPARATOR.encode()), start=1):
        if not token:
            return f"has an empty id at position {i}"
        if not token.isdigit():
            return f"has id {describe_value(token)} at position {i}, not an integer"
    return "is not ^-joined integer ids"


__all__ = ["SEQUENCE_SEPARATOR", "hash_categorical", "parse_sequence", "sequence_problem", "stable_hash"]
