"""Pass 1 of preprocessing: stream the raw file, filter its events, write them to user buckets, count.

``bucket_events`` validates the events (``UserBehaviorReader``), drops those outside the time window
and, with ``user_fraction < 1``, those of users outside the subsample, appends the rest to bucket
files by ``user_id % n_buckets`` (``ctrbench.data.buckets``), and returns what it found
(``BucketedEvents``): the events by fate, the kept events' time span and the vocabularies built from
the kept users' events.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ctrbench.data.buckets import BUCKET_COMPRESSION, KeyBuckets
from ctrbench.data.formats.taobao_userbehavior.reader import BUCKET_SCHEMA, UserBehaviorFormatError, UserBehaviorReader
from ctrbench.data.formats.taobao_userbehavior.vocab import DistinctCounts, Vocab, user_sampled


@dataclass
class BucketedEvents:
    """What pass 1 found: the bucket files, the input's sha256 (None unless hashed), the events by fate
    (``in_range`` = ``kept`` + ``sampled_out``), the kept events' time span, the users in range, the vocabularies."""

    bucket_paths: list[Path]
    sha256: str | None = None
    in_range: int = 0
    out_of_range: int = 0
    sampled_out: int = 0
    kept: int = 0
    t_min: int | None = None
    t_max: int | None = None
    users_in_range: int = 0
    vocab: Vocab | None = None

    def distinct(self) -> dict[str, int]:
        """Distinct users, items and categories of the kept events (the vocabulary sizes, padding excluded)."""
        vocab = self.vocab
        return {"users": len(vocab.users), "items": len(vocab.items), "categories": len(vocab.categories)}


def bucket_events(
    reader: UserBehaviorReader,
    work: Path,
    n_buckets: int,
    opened: list,
    *,
    hist_codes: np.ndarray,
    target_codes: np.ndarray,
    window: tuple[int, int] | None,
    time_range: list[str] | None,
    sample_users: bool,
    fraction: float,
    seed: int,
    hasher,
    progress: bool,
) -> BucketedEvents:
    """Pass 1: validate, filter by time (``window``: [lo, hi) unix seconds; ``time_range`` names it in errors) and
    by user, bucket by user, count.

    The events of history or target behaviours go to ``n_buckets`` bucket files in ``work`` by
    ``user_id % n_buckets`` (their writers appended to ``opened``); the distinct users and the per-(item,
    category) event counts are accumulated on the way and become the vocabularies (``_vocabulary``).
    """
    raw_path = reader.path
    buckets = KeyBuckets(work, n_buckets, BUCKET_SCHEMA, opened=opened)
    found = BucketedEvents(bucket_paths=buckets.paths)
    users = DistinctCounts(1)
    pairs = DistinctCounts(2)
    useful_codes = np.union1d(hist_codes, target_codes)
    with tqdm(
        total=raw_path.stat().st_size, unit="B", unit_scale=True, desc=raw_path.name, disable=not progress
    ) as bar:
        reader.on_bytes = bar.update
        for block in reader:
            if window is not None:
                inside = (block.timestamp >= window[0]) & (block.timestamp < window[1])
                found.out_of_range += len(block) - int(inside.sum())
                block = block.take(inside)
            if not len(block):
                continue
            found.in_range += len(block)
            # every in-range user (the kept ones are picked from these after the pass: the hash is
            # a function of the id alone), so the manifest can report the realised fraction
            users.add(block.user)
            if sample_users:
                # Only the kept users' events reach the vocabularies, the popularity table of the
                # negatives and the item -> category map: the outputs are then those of a file
                # holding only the kept users, every id has rows that train its embedding (most
                # items of a small subsample's dropped users would never be seen), and negatives
                # follow the popularity the model trains on rather than items absent from its data.
                sampled = user_sampled(block.user, fraction, seed)
                found.sampled_out += len(block) - int(sampled.sum())
                block = block.take(sampled)
                if not len(block):
                    continue
            found.kept += len(block)
            found.t_min = min(int(block.timestamp.min()), found.t_min if found.t_min is not None else 2**63)
            found.t_max = max(int(block.timestamp.max()), found.t_max if found.t_max is not None else -(2**63))
            pairs.add(block.item, block.category)
            block = block.take(np.isin(block.behavior, useful_codes))
            buckets.add(block.to_arrow(), block.user)
    buckets.close()
    found.sha256 = hasher.hexdigest() if hasher is not None else None
    if found.in_range == 0:
        raise UserBehaviorFormatError(
            f"{raw_path}: no events inside time_range {time_range} ({found.out_of_range} outside)"
        )
    found.users_in_range, found.vocab = _vocabulary(raw_path, users, pairs, found, sample_users, fraction, seed)
    return found


def _vocabulary(
    raw_path: Path,
    users: DistinctCounts,
    pairs: DistinctCounts,
    found: BucketedEvents,
    sample_users: bool,
    fraction: float,
    seed: int,
) -> tuple[int, Vocab]:
    """(users in range, the vocabularies of the kept users' events), checked: some user kept, ids that fit
    int32, at least 2 items to sample negatives from."""
    all_users = users.result()[0][0]
    n_users_in_range = len(all_users)
    kept_users = all_users[user_sampled(all_users, fraction, seed)] if sample_users else all_users
    if found.kept == 0:
        raise ValueError(
            f"{raw_path}: user_fraction={fraction} (seed {seed}) keeps none of the {len(all_users)} users "
            f"({found.sampled_out} events dropped); use a larger user_fraction"
        )
    vocab = Vocab.build(kept_users, *pairs.result())
    for name, ids in (("users", vocab.users), ("items", vocab.items), ("categories", vocab.categories)):
        if len(ids) >= 2**31 - 1:
            raise ValueError(f"{raw_path}: {len(ids)} distinct {name} do not fit int32 ids")
    if len(vocab.items) < 2:
        raise ValueError(f"{raw_path}: negative sampling needs at least 2 distinct items, found {len(vocab.items)}")
    return n_users_in_range, vocab


__all__ = ["BUCKET_COMPRESSION", "BucketedEvents", "bucket_events"]
