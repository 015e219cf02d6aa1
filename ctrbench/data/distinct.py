"""Distinct keys of a stream, with their counts (and optionally the least of a value per key), in bounded memory:
the vocabularies of the formats that map raw ids to dense local ids (UserBehavior, Tenrec, KuaiRand).

Preprocessing passes count the distinct users, items or (item, category) pairs of files far larger than memory:
each block is reduced with a sort on arrival and merged with the running result only when the unmerged parts
outgrow it, so merging costs O(total log total) over the whole file and memory follows the distinct keys, not the
rows.
"""

from __future__ import annotations

import numpy as np


class DistinctCounts:
    """Distinct keys (tuples of int64 columns, sorted lexicographically) with summed counts.

    With ``track_min``, ``add`` also takes a value per row and ``minimum()`` gives each key's least value (e.g. the
    first day a video was shown).
    """

    MERGE_ROWS = 1 << 20  # unmerged rows tolerated before merging, at least

    def __init__(self, n_keys: int, track_min: bool = False):
        self.n_keys = n_keys
        self.track_min = track_min
        # (keys, counts, minima or None)
        self.merged: tuple[list[np.ndarray], np.ndarray, np.ndarray | None] | None = None
        self.parts: list[tuple[list[np.ndarray], np.ndarray, np.ndarray | None]] = []
        self.part_rows = 0

    @staticmethod
    def _reduce(keys: list[np.ndarray], counts: np.ndarray, minima: np.ndarray | None):
        if len(counts) == 0:
            return keys, counts, minima
        order = np.lexsort(keys[::-1])  # first key primary
        keys = [k[order] for k in keys]
        change = np.zeros(len(counts), bool)
        change[0] = True
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
        starts = np.flatnonzero(change)
        least = np.minimum.reduceat(minima[order], starts) if minima is not None else None
        return [k[starts] for k in keys], np.add.reduceat(counts[order], starts), least

    def add(self, *keys: np.ndarray, values: np.ndarray | None = None) -> None:
        if self.track_min != (values is not None):
            raise ValueError("give values exactly when the minimum is tracked")
        part = self._reduce(list(keys), np.ones(len(keys[0]), np.int64), values)
        self.parts.append(part)
        self.part_rows += len(part[1])
        if self.part_rows > max(self.MERGE_ROWS, len(self.merged[1]) if self.merged else 0):
            self._merge()

    def _merge(self) -> None:
        parts = self.parts + ([self.merged] if self.merged else [])
        if not parts:
            empty = np.zeros(0, np.int64)
            self.merged = ([empty] * self.n_keys, empty, empty if self.track_min else None)
        else:
            keys = [np.concatenate([p[0][i] for p in parts]) for i in range(self.n_keys)]
            minima = np.concatenate([p[2] for p in parts]) if self.track_min else None
            self.merged = self._reduce(keys, np.concatenate([p[1] for p in parts]), minima)
        self.parts, self.part_rows = [], 0

    def result(self) -> tuple[list[np.ndarray], np.ndarray]:
        """(the key columns, sorted lexicographically; each key's count)."""
        self._merge()
        return self.merged[0], self.merged[1]

    def minimum(self) -> np.ndarray:
        """Each key's least value, aligned with ``result()``'s keys."""
        if not self.track_min:
            raise ValueError("the minimum was not tracked")
        self._merge()
        return self.merged[2]


__all__ = ["DistinctCounts"]
