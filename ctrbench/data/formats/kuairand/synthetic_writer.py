"""Writing a generated KuaiRand-Pure ``data/`` directory: the feature files, then the standard log chunk by chunk of
users from a ``LogProfile`` (``synthetic.MULTITASK`` by default, ``synthetic_long.LONG_HISTORY``), with the facts of
what was written. The equations of each profile live in its module."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from ctrbench.atomic import atomic_path
from ctrbench.data.formats.kuairand.synthetic import (
    CHUNK_USERS,
    LABELS,
    LOG_COLUMNS,
    LOG_FILE,
    LOG_HEADER,
    MULTITASK,
    N_TAGS,
    LogProfile,
    make_latents,
)
from ctrbench.data.formats.kuairand.synthetic_features import write_feature_files


def write_synthetic_kuairand(
    directory: str | Path, rows: int, seed: int = 0, *, profile: LogProfile = MULTITASK
) -> dict:
    """Write a KuaiRand-Pure ``data/`` directory whose standard log has ``rows`` rows into ``directory``.

    Returns facts: ``rows``, ``seed``, the sizes (``users``, ``videos``, ``authors``, ``music``, ``tags``),
    ``requests``, ``files`` (rows and bytes of each), ``rates`` (realised rate of each label), ``late_rows``
    (rows whose date/hourmin is the hour after their time_ms), ``absent`` (users and videos of the log missing
    from each feature file) and ``planted`` (``profile.planted``: by default the parameters of the equations in
    ``synthetic.py``'s docstring).
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    directory = Path(directory)
    lat = make_latents(rows, seed, profile.events_per_user)
    n_users = lat.sizes["users"]
    files = write_feature_files(directory, lat, seed)
    positives = np.zeros(len(LABELS), np.int64)
    seen_videos = np.zeros(lat.sizes["videos"], bool)
    late_rows = requests = 0
    base, rem = divmod(rows, n_users)  # rows per chunk: each user rows // users, the first rows % users one more
    bounds = np.append(np.arange(0, n_users, CHUNK_USERS), n_users)
    cum = bounds * base + np.minimum(bounds, rem)
    schema = pa.schema([(c, pa.int64()) for c in LOG_COLUMNS])
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    with atomic_path(directory / LOG_FILE) as temp:
        temp.write_bytes((LOG_HEADER + "\n").encode())  # pyarrow would quote the names
        with open(temp, "ab") as handle, pa_csv.CSVWriter(handle, schema, write_options=options) as writer:
            for k in range(len(bounds) - 1):
                chunk_rng = np.random.default_rng([seed, 1, k])
                log = profile.simulate(lat, chunk_rng, int(bounds[k]), int(np.diff(bounds)[k]), int(np.diff(cum)[k]))
                writer.write_table(pa.table([log[c] for c in LOG_COLUMNS], schema=schema))
                positives += [int(log[label].sum()) for label in LABELS]
                seen_videos[log["video_id"]] = True
                late_rows += int(log["late"].sum())
                new_request = (np.diff(log["time_ms"], prepend=-1) != 0) | (np.diff(log["user_id"], prepend=-1) != 0)
                requests += int(new_request.sum())
    files[LOG_FILE] = {"rows": rows, "bytes": (directory / LOG_FILE).stat().st_size}
    return {
        "rows": rows,
        "seed": seed,
        **lat.sizes,
        "tags": N_TAGS,
        "requests": requests,
        "files": files,
        "rates": {label: int(p) / rows for label, p in zip(LABELS, positives, strict=True)},
        "late_rows": late_rows,
        "absent": {
            "users": int(lat.absent_users.sum()),  # every user has log rows
            "videos_basic": int((seen_videos & lat.absent_basic).sum()),
            "videos_statistic": int((seen_videos & lat.absent_statistic).sum()),
            "videos_both": int((seen_videos & lat.absent_basic & lat.absent_statistic).sum()),
        },
        "planted": profile.planted(lat),
    }
