"""The categorical features of a sample, by local user and video id: what the feature files become.

``FeatureTables`` holds one int32 id array per feature, indexed by local user id (user side) or local video id
(video side; index 0 = padding, and the id 0 = missing everywhere), with each feature's vocabulary size and what
the manifest and the feature map record about it (tokens, bucket edges, how many keys lacked a row).

- user side: ``user_id`` (the local id itself) and the ``layout.USER_FEATURES``: tokens by their sorted strings,
  codes by their sorted values (``-124``, the release's missing code, and empty values -> 0);
- video side: ``video_id``, ``author_id``, ``music_id`` (sorted raw ids of the videos the logs show), ``video_type``,
  ``upload_type``, ``tag`` (the first of the list) as tokens, ``music_type`` as a code, ``duration`` and
  ``stat_<column>`` as quantile buckets (``vocab.quantile_edges``): edges at the 1/n .. (n-1)/n quantiles of the
  values of the distinct videos shown on a train day (each video once, unweighted by exposures; equal edges merged),
  so no valid or gold video shapes them; id 1 .. len(edges) + 1, 0 where the value is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctrbench.data.formats.kuairand.layout import MISSING_CODE, USER_FEATURES
from ctrbench.data.formats.kuairand.sides import SideTable
from ctrbench.data.formats.kuairand.vocab import MISSING_INT, bucketize, id_vocabulary, quantile_edges


def compact(ids: np.ndarray, size: int) -> np.ndarray:
    """``ids`` (< ``size``) in the smallest integer type that holds them: the video tables have a row per video shown
    (32 M in KuaiRand-27K), so a byte per feature counts."""
    for dtype in (np.uint8, np.int16, np.int32):
        if size <= np.iinfo(dtype).max + 1:
            return ids.astype(dtype, copy=False)
    raise ValueError(f"{size} ids do not fit int32")


@dataclass
class FeatureTables:
    user: dict[str, np.ndarray] = field(default_factory=dict)  # feature -> int32 [users + 1]
    video: dict[str, np.ndarray] = field(default_factory=dict)  # feature -> int32 [videos + 1]
    sizes: dict[str, int] = field(default_factory=dict)  # feature -> vocab_size (id 0 included)
    tokens: dict[str, list[str]] = field(default_factory=dict)  # token features: the token of id 1, 2, ...
    edges: dict[str, list[float]] = field(default_factory=dict)  # bucketed features: their edges
    user_found: np.ndarray | None = None  # [users + 1] a user_features row was read
    basic_found: np.ndarray | None = None  # [videos + 1] a video_features_basic row was read
    statistic_found: np.ndarray | None = None  # [videos + 1] a video_features_statistic row was read

    def _categorical(self, side: dict, name: str, table: SideTable, missing_code: int | None = None) -> None:
        values = table.values.pop(name)  # the raw values go as their ids come: one video-sized array at a time
        if name in table.tokens:
            ids, tokens = table.tokens[name].final(values)
            self.tokens[name] = tokens
            side[name], self.sizes[name] = compact(ids, len(tokens) + 1), len(tokens) + 1
            return
        if missing_code is not None:
            values = np.where(values == missing_code, MISSING_INT, values)
        ids, n = id_vocabulary(values)
        side[name], self.sizes[name] = compact(ids, n + 1), n + 1

    def _bucketed(self, name: str, values: np.ndarray, train: np.ndarray, buckets: int) -> None:
        edges = quantile_edges(values[train], buckets)
        self.video[name] = compact(bucketize(values, edges), len(edges) + 2)
        self.edges[name] = edges.tolist()
        self.sizes[name] = len(edges) + 2


def user_tables(features: FeatureTables, users: SideTable) -> None:
    """The user side of ``features`` from the user_features table."""
    features.user["user_id"] = np.arange(users.size + 1, dtype=np.int32)
    features.sizes["user_id"] = users.size + 1
    for name in USER_FEATURES:
        features._categorical(features.user, name, users, missing_code=MISSING_CODE)
    features.user_found = users.found


def video_tables(features: FeatureTables, basic: SideTable, train_videos: np.ndarray, buckets: int) -> None:
    """The video side of ``features`` from the video_features_basic table (emptied on the way); ``train_videos``
    [videos + 1] marks the videos shown on a train day."""
    features.video["video_id"] = np.arange(basic.size + 1, dtype=np.int32)
    features.sizes["video_id"] = basic.size + 1
    for name in ("author_id", "music_id", "video_type", "upload_type", "music_type", "tag"):
        features._categorical(features.video, name, basic)
    features._bucketed("duration", basic.values.pop("video_duration"), train_videos, buckets)
    features.basic_found = basic.found


def statistic_tables(features: FeatureTables, statistics: SideTable, train_videos: np.ndarray, buckets: int) -> None:
    """The ``stat_<column>`` features from the video_features_statistic table (emptied on the way)."""
    for name in statistics.columns:
        features._bucketed(f"stat_{name}", statistics.values.pop(name), train_videos, buckets)
    features.statistic_found = statistics.found


__all__ = ["FeatureTables", "compact", "statistic_tables", "user_tables", "video_tables"]
