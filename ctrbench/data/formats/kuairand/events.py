"""Pass 1 of preprocessing: stream the logs, bucket the exposures by user on disk, count what the ids need.

``bucket_logs`` reads every log file of the run (``LogReader``), appends each block's exposures to
``user_id % n_buckets`` parquet files (``KeyBuckets``) and accumulates, block by block in bounded memory
(``DistinctCounts``): the distinct users, the distinct videos with the first Beijing day each was shown (which
videos the statistics' quantile edges are taken over), the distinct ``tab`` values, and the time span.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ctrbench.data.buckets import KeyBuckets
from ctrbench.data.distinct import DistinctCounts
from ctrbench.data.formats.kuairand.layout import BEIJING_OFFSET_MS, DAY_MS
from ctrbench.data.formats.kuairand.logs import LogReader, bucket_schema


@dataclass
class LoggedEvents:
    """What pass 1 found: the bucket files, the sorted distinct raw ``users``, ``videos`` (with
    ``video_first_day``, Beijing days since 1970) and ``tabs``, the exposures read and their ``time_ms`` span."""

    bucket_paths: list[Path]
    users: np.ndarray
    videos: np.ndarray
    video_first_day: np.ndarray
    tabs: np.ndarray
    exposures: int
    t_min: int
    t_max: int


def beijing_day(time_ms: np.ndarray) -> np.ndarray:
    return (time_ms + BEIJING_OFFSET_MS) // DAY_MS


def bucket_logs(reader: LogReader, work: Path, n_buckets: int, opened: list, *, progress: bool) -> LoggedEvents:
    """Pass 1 over ``reader``'s files (see the module docstring); the bucket writers are appended to ``opened``."""
    schema = bucket_schema(reader.labels)
    buckets = KeyBuckets(work, n_buckets, schema, opened=opened)
    users, videos, tabs = DistinctCounts(1), DistinctCounts(1, track_min=True), DistinctCounts(1)
    exposures, t_min, t_max = 0, None, None
    total = sum(p.stat().st_size for p in reader.paths)
    with tqdm(total=total, unit="B", unit_scale=True, desc="logs", disable=not progress) as bar:
        reader.on_bytes = bar.update
        for block in reader:
            exposures += len(block)
            low, high = int(block.time_ms.min()), int(block.time_ms.max())
            t_min, t_max = (
                min(low, t_min if t_min is not None else low),
                max(high, t_max if t_max is not None else high),
            )
            users.add(block.user)
            videos.add(block.video, values=beijing_day(block.time_ms))
            tabs.add(block.tab)
            buckets.add(block.to_arrow(schema), block.user)
    buckets.close()
    (video_ids,), _ = videos.result()
    return LoggedEvents(
        bucket_paths=buckets.paths,
        users=users.result()[0][0],
        videos=video_ids,
        video_first_day=videos.minimum().astype(np.int32),
        tabs=tabs.result()[0][0],
        exposures=exposures,
        t_min=t_min,
        t_max=t_max,
    )


__all__ = ["LoggedEvents", "beijing_day", "bucket_logs"]
