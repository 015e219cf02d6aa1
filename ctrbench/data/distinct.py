"""Distinct keys with summed counts, accumulated block by block in bounded memory (the vocabularies of the
formats that map raw ids to dense local ids: UserBehavior, Tenrec)."""

from __future__ import annotations

import numpy as np


class DistinctCounts:
    """Distinct keys (tuples of int64 columns, sorted lexicographically) with summed counts.

    Blocks are reduced with a sort on arrival and merged with the running result only when the
    unmerged parts outgrow it, so merging costs O(total log total) over the whole file.
    """

    MERGE_ROWS = 1 << 20  # unmerged rows tolerated before merging, at least

    def __init__(self, n_keys: int):
        self.n_keys = n_keys
        self.merged: tuple[list[np.ndarray], np.ndarray] | None = None
        self.parts: list[tuple[list[np.ndarray], np.ndarray]] = []
        self.part_rows = 0

    @staticmethod
    def _reduce(keys: list[np.ndarray], counts: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        if len(counts) == 0:
            return keys, counts
        order = np.lexsort(keys[::-1])  # first key primary
        keys = [k[order] for k in keys]
        change = np.zeros(len(counts), bool)
        change[0] = True
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
        starts = np.flatnonzero(change)
        return [k[starts] for k in keys], np.add.reduceat(counts[order], starts)

    def add(self, *keys: np.ndarray) -> None:
        part = self._reduce(list(keys), np.ones(len(keys[0]), np.int64))
        self.parts.append(part)
        self.part_rows += len(part[1])
        if self.part_rows > max(self.MERGE_ROWS, len(self.merged[1]) if self.merged else 0):
            self._merge()

    def _merge(self) -> None:
        parts = self.parts + ([self.merged] if self.merged else [])
        if not parts:
            self.merged = ([np.zeros(0, np.int64) for _ in range(self.n_keys)], np.zeros(0, np.int64))
        else:
            keys = [np.concatenate([p[0][i] for p in parts]) for i in range(self.n_keys)]
            self.merged = self._reduce(keys, np.concatenate([p[1] for p in parts]))
        self.parts, self.part_rows = [], 0

    def result(self) -> tuple[list[np.ndarray], np.ndarray]:
        self._merge()
        return self.merged


__all__ = ["DistinctCounts"]
