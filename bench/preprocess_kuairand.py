"""Benchmark: preprocess_kuairand on a generated KuaiRand-27K-layout directory, and its peak RSS when the log doubles.

    python bench/preprocess_kuairand.py [--events 10000000] [--videos N] [--seed 0] [--keep]

Two directories are generated (in a child process each, numpy + ``pyarrow.csv``): ``--events`` exposures and twice
as many, in the 27K layout: 19 integer log columns split into ``_part1``/``_part2``, 27,285 users, one video per 10
exposures (322 M exposures of 32 M videos in the release; ``--videos`` fixes their number for both runs, to
tell the log's share of the memory from the video tables), requests of 1..4 videos sharing a ``time_ms``, 31 days;
``user_features``, ``video_features_basic`` (quoted tag lists, empty values) and ``video_features_statistic`` (52
columns, in three parts) for every user and video. Each directory is then preprocessed with the default options in
a child process of its own, which reports its peak RSS (VmHWM), so the two figures and their ratio come from the same
invocation. The log is read once per run (two passes: the second over the user buckets on disk), so the events/s
figure is exposures over the whole preprocessing, feature files included.

Measured on 2 shared cores: 10 M exposures (758 MB of logs, 1.2 GB in all) in 46 s, 0.22 M exposures/s, peak RSS
671 MiB; 20 M in 94 s at 772 MiB (ratio 1.15, of which the 1 M more videos' tables are most: with ``--videos
400000`` fixed, 4 M -> 8 M exposures gave 643 -> 712 MiB). What grows with the log itself is the shared split
check's byte per row id and the user buckets' size (``bucket_bytes`` of input each, ~64 MB). (The 10 M run predates
the Arrow IPC user buckets; rerun since at 2 M -> 4 M: 7.6 s -> 12.8 s, 552 -> 636 MiB, against 9.0 s -> 14.0 s,
577 -> 652 MiB before.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from _child import run_child  # bench/ is sys.path[0] when run as a script

GENERATE = r"""
import json, sys
from pathlib import Path
import numpy as np, pyarrow as pa, pyarrow.csv as pa_csv
from ctrbench.data.formats.kuairand.layout import LOG_COLUMNS, STATISTIC_COLUMNS, USER_COLUMNS

out, events, seed, videos = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out.mkdir(parents=True)
rng = np.random.default_rng(seed)
users, videos, start = 27_285, videos or max(events // 10, 100), 1649347200000  # 2022-04-08 00:00 Beijing

def write(name, columns, mode="wb"):
    # as the release: a bare header line; Arrow quotes every string value (the release only those with a comma)
    with open(out / name, mode) as handle:
        if mode == "wb":
            handle.write((",".join(columns) + "\n").encode())
        pa_csv.write_csv(pa.table(columns), handle, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))

def log_chunk(n, t0, t1):
    # n exposures in requests of 1..4 sharing a time_ms, in time order over [t0, t1); popular videos by a Zipf-like draw
    sizes = rng.integers(1, 5, n // 2 + 1)
    request = np.repeat(np.arange(len(sizes)), sizes)[:n]
    log = {c: np.zeros(n, np.int64) for c in LOG_COLUMNS}
    log["user_id"] = rng.integers(0, users, len(sizes))[request]
    log["time_ms"] = np.sort(rng.integers(t0, t1, len(sizes)))[request]
    log["video_id"] = (rng.pareto(1.2, n) * videos / 50).astype(np.int64) % videos
    click = rng.random(n) < 0.4
    log["is_click"] = click
    log["is_like"] = click & (rng.random(n) < 0.05)
    log["is_follow"] = click & (rng.random(n) < 0.01)
    log["is_comment"] = click & (rng.random(n) < 0.01)
    log["is_forward"] = rng.random(n) < 0.005
    log["is_hate"] = rng.random(n) < 0.002
    log["long_view"] = rng.random(n) < np.where(click, 0.6, 0.1)
    log["is_profile_enter"] = rng.random(n) < 0.01
    log["play_time_ms"] = rng.integers(0, 200_000, n)
    log["duration_ms"] = rng.integers(1_000, 300_000, n)
    log["tab"] = rng.choice([0, 1, 2, 4, 6], n)
    local = log["time_ms"] + 8 * 3_600_000
    day = local // 86_400_000
    log["date"] = 20220408 + day - (start + 8 * 3_600_000) // 86_400_000  # (April-May arithmetic aside)
    log["hourmin"] = local // 3_600_000 % 24 * 100
    return {c: log[c].astype(np.int64) for c in LOG_COLUMNS}

# 31 days in two parts, written a chunk of 1 M exposures at a time (bounded memory)
chunks = max(1, events // 1_000_000)
bounds = np.linspace(0, events, chunks + 1).astype(np.int64)
times = np.linspace(start, start + 31 * 86_400_000, chunks + 1).astype(np.int64)
for i in range(chunks):
    part = 1 if i < chunks // 2 or chunks == 1 else 2
    name = f"log_standard_4_08_to_5_08_27k_part{part}.csv"
    write(name, log_chunk(int(bounds[i + 1] - bounds[i]), times[i], times[i + 1]), "ab" if (out / name).exists() else "wb")

user = {c: rng.integers(0, 3, users) for c in USER_COLUMNS}
user["user_id"] = np.arange(users)
for c, values in (("user_active_degree", ["full_active", "high_active", "UNKNOWN"]),
                  ("follow_user_num_range", ["0", "(0,10]", "(10,50]", "500+"]),
                  ("fans_user_num_range", ["0", "[1,10)", "[100,1k)"]), ("friend_user_num_range", ["0", "[1,5)"]),
                  ("register_days_range", ["31-60", "730+"])):
    user[c] = np.array(values)[rng.integers(0, len(values), users)]
user["is_live_streamer"] = rng.choice([0, 1, -124], users)
user["onehot_feat4"] = pa.array(rng.integers(0, 15, users).astype(float), mask=rng.random(users) < 0.01)
write("user_features_27k.csv", user)

ids = np.arange(videos)
tags = np.array(["", "7", "12,54,60", "20,67", "39"])[rng.integers(0, 5, videos)]
write("video_features_basic_27k.csv", {
    "video_id": ids, "author_id": rng.integers(0, videos // 3 + 1, videos),
    "video_type": np.where(rng.random(videos) < 0.05, "AD", "NORMAL"), "upload_dt": np.full(videos, "2022-04-10"),
    "upload_type": np.array(["ShortImport", "LongImport", "Web", "Kmovie"])[rng.integers(0, 4, videos)],
    "visible_status": np.zeros(videos), "video_duration": pa.array(rng.integers(5_000, 300_000, videos).astype(float),
    mask=rng.random(videos) < 0.07), "server_width": np.full(videos, 720.0), "server_height": np.full(videos, 1280.0),
    "music_id": rng.integers(0, 10**10, videos), "music_type": pa.array(rng.choice([4.0, 8.0, 9.0], videos),
    mask=rng.random(videos) < 0.04), "tag": tags,
})
for part, rows in enumerate(np.array_split(ids, 3), start=1):
    stats = {"video_id": rows, "counts": rng.integers(1, 100, len(rows))}
    stats |= {c: np.round(rng.pareto(1.5, len(rows)) * 10, 3) for c in STATISTIC_COLUMNS[1:]}
    write(f"video_features_statistic_27k_part{part}.csv", stats)
sizes = {p.name: p.stat().st_size for p in out.iterdir()}
print(json.dumps({"events": events, "videos": videos, "log_bytes": sum(v for k, v in sizes.items() if k.startswith("log")),
                  "bytes": sum(sizes.values())}))
"""

PREPROCESS = """
import json, sys, time
from ctrbench.data.formats.kuairand.preprocess import preprocess_kuairand
start = time.perf_counter()
manifest = preprocess_kuairand(sys.argv[1], sys.argv[2], progress=False)
elapsed = time.perf_counter() - start
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": elapsed, "vmhwm_bytes": hwm, "rows": manifest["rows"],
                  "buckets": manifest["options"]["buckets"], "events": sum(manifest["details"]["history_events"].values())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--videos", type=int, default=0, help="videos of both runs (default: one per 10 exposures)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ctrbench-bench-kuairand-"))
    results = {}
    try:
        for scale in (1, 2):
            events = args.events * scale
            raw = work / f"data_{scale}x"
            facts, seconds = run_child(GENERATE, str(raw), str(events), str(args.seed), str(args.videos))
            print(
                f"generated {events:,} exposures of {facts['videos']:,} videos: logs {facts['log_bytes'] / 1e6:.0f} MB, "
                f"all files {facts['bytes'] / 1e6:.0f} MB, in {seconds:.0f} s"
            )
            child, wall = run_child(PREPROCESS, str(raw), str(work / f"out_{scale}x"))
            results[scale] = child
            read, written = child["rows"]["read"], child["rows"]["written"]
            assert read == written == events, child["rows"]
            print(
                f"{scale}x: preprocess_kuairand {child['seconds']:7.1f} s, {read / child['seconds'] / 1e6:.2f} M "
                f"exposures/s ({facts['log_bytes'] / child['seconds'] / 1e6:.0f} MB/s of logs), "
                f"{child['buckets']} user buckets, {child['events']:,} history events; "
                f"peak RSS {child['vmhwm_bytes'] / 2**20:.0f} MiB (VmHWM); child wall {wall:.1f} s"
            )
            shutil.rmtree(raw)  # disk: the next scale's files
        ratio = results[2]["vmhwm_bytes"] / results[1]["vmhwm_bytes"]
        print(f"peak RSS 2x / 1x log: {ratio:.2f} ({os.cpu_count()} cores)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
