"""From events to ids and draws: distinct-key counting, the vocabularies, the user subsample, negatives.

- ``DistinctCounts`` (``ctrbench.data.distinct``): pass 1 counts the distinct users and the (item, category)
  pairs with it;
- ``Vocab``: raw id -> local id (1..V, 0 = padding) of users, items and categories, with each item's
  event count and most frequent category;
- ``user_sampled``: the seeded user subsample, a splitmix64 hash of ``(seed, raw user id)``;
- ``NegativeSampler``: negatives by popularity or uniformly, keyed by a hash of
  ``(seed, source line, k, attempt)``, so the draws depend neither on the block size nor on the bucket count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctrbench.data.distinct import DistinctCounts


@dataclass
class Vocab:
    """Raw id -> local id (1..V, 0 = padding) for users, items, categories; item facts."""

    users: np.ndarray  # sorted distinct raw ids
    items: np.ndarray
    categories: np.ndarray
    item_counts: np.ndarray  # [V_items] events per item (in range, every behaviour)
    item_category: np.ndarray  # [V_items] local category id of each item (most frequent, ties -> smallest)
    items_with_several_categories: int

    @classmethod
    def build(cls, users: np.ndarray, pair_keys: list[np.ndarray], pair_counts: np.ndarray) -> Vocab:
        item, cat = pair_keys  # sorted by (item, category)
        first = np.flatnonzero(np.r_[True, item[1:] != item[:-1]]) if len(item) else np.zeros(0, np.int64)
        items = item[first]
        item_counts = np.add.reduceat(pair_counts, first) if len(item) else np.zeros(0, np.int64)
        # most frequent category per item, ties -> smallest id: sort by (item, -count, category)
        order = np.lexsort((cat, -pair_counts, item))
        best = cat[order][first]
        categories = np.unique(cat)
        return cls(
            users=users,
            items=items,
            categories=categories,
            item_counts=item_counts,
            item_category=(np.searchsorted(categories, best) + 1).astype(np.int32),
            items_with_several_categories=int(np.count_nonzero(np.diff(first, append=len(item)) > 1)),
        )

    @staticmethod
    def local(sorted_ids: np.ndarray, raw: np.ndarray) -> np.ndarray:
        return (np.searchsorted(sorted_ids, raw) + 1).astype(np.int32)


_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arithmetic wraps; numpy does not warn for arrays)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def user_sampled(users: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Bool mask: raw user ids kept by the ``fraction`` user subsample under ``seed``.

    Kept iff ``mix(mix(seed * GOLDEN + 2) ^ (user * GOLDEN))``, top 53 bits read as U[0, 1), is
    below ``fraction`` (stream 2; the negatives use stream 1): one hash per id, no state, so the
    same id is kept in every block and bucket. Part of the output format: changing it changes
    which users a given (fraction, seed) keeps.
    """
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & (2**64 - 1)) * _GOLDEN + np.uint64(2))
        h = _mix(h ^ (users.astype(np.uint64) * _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fraction


def _uniform(seed: int, lines: np.ndarray, k: int, attempt: int) -> np.ndarray:
    """U[0, 1) keyed by (seed, source line, negative index k, attempt): no generator state."""
    with np.errstate(over="ignore"):
        h = _mix(np.uint64(seed & (2**64 - 1)) * _GOLDEN + np.uint64(1))
        h = _mix(h ^ (lines.astype(np.uint64) * _GOLDEN))
        h = _mix(h ^ np.uint64(((k & 0xFFFFFFFF) << 32) | (attempt & 0xFFFFFFFF)))
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53


class NegativeSampler:
    """``negatives`` items per positive, never the positive item, by popularity or uniformly."""

    MAX_ATTEMPTS = 10_000

    def __init__(self, vocab: Vocab, negatives: int, sampling: str, seed: int):
        self.n_items = len(vocab.items)
        self.cum = np.cumsum(vocab.item_counts).astype(np.float64) if sampling == "popularity" else None
        self.item_category = vocab.item_category
        self.negatives = negatives
        self.seed = seed

    def _draw(self, lines: np.ndarray, k: int, attempt: int) -> np.ndarray:
        u = _uniform(self.seed, lines, k, attempt)
        if self.cum is None:
            index = (u * self.n_items).astype(np.int64)
        else:
            index = np.searchsorted(self.cum, u * self.cum[-1], side="right")
        return np.minimum(index, self.n_items - 1).astype(np.int32) + 1  # local item ids

    def sample(self, lines: np.ndarray, positive_items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """([n, negatives] local item ids, [n, negatives] their local category ids)."""
        items = np.empty((len(lines), self.negatives), np.int32)
        for k in range(self.negatives):
            drawn = self._draw(lines, k + 1, 0)
            clash = np.flatnonzero(drawn == positive_items)
            attempt = 1
            while len(clash):
                if attempt > self.MAX_ATTEMPTS:
                    raise RuntimeError("negative sampling keeps drawing the positive item")
                drawn[clash] = self._draw(lines[clash], k + 1, attempt)
                clash = clash[drawn[clash] == positive_items[clash]]
                attempt += 1
            items[:, k] = drawn
        return items, self.item_category[items - 1]


__all__ = ["DistinctCounts", "NegativeSampler", "Vocab", "user_sampled"]
