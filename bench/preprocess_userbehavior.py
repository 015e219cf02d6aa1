"""Benchmark: preprocess_userbehavior on a synthetic 1M-event UserBehavior file, against pyarrow.csv.read_csv alone.

    python bench/preprocess_userbehavior.py [--rows 1000000] [--path FILE] [--block-bytes N] [--keep]

As ``bench/preprocess_criteo.py``: the preprocessing runs in a child process so that its peak RSS
is its own (the child reports its VmHWM; ``getrusage(RUSAGE_CHILDREN)`` is printed beside it as a
cross-check), the data is generated in another child, and the parent afterwards times
``pyarrow.csv.read_csv`` alone on the same file (typed columns, threads on): the cost of merely
parsing the input, a floor for any reader. The preprocessing does much more than parse (two
passes, user buckets on disk, sorting, a 50-event history gather per target, negatives, three
parquet files), so the ratio says how much that costs on top of the parse.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from _child import run_child  # bench/ is sys.path[0] when run as a script

GENERATE = """
import json, sys
from ctrbench.data.formats.taobao_userbehavior.synthetic import write_synthetic_userbehavior
print(json.dumps(write_synthetic_userbehavior(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))
"""

PREPROCESS = """
import json, sys, time
from ctrbench.data.formats.taobao_userbehavior.preprocess import preprocess_userbehavior
start = time.perf_counter()
manifest = preprocess_userbehavior(sys.argv[1], sys.argv[2], block_bytes=int(sys.argv[3]), progress=False)
elapsed = time.perf_counter() - start
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": elapsed, "vmhwm_bytes": hwm, "rows": manifest["rows"], "events": manifest["details"]["events"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--path", type=Path, help="raw file to use; generated there first if missing")
    parser.add_argument("--block-bytes", type=int, default=32 << 20)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ctrbench-bench-"))
    raw = args.path or work / "UserBehavior.csv"
    if not raw.exists():
        facts, seconds = run_child(GENERATE, str(raw), str(args.rows), str(args.seed))
        print(
            f"generated {facts['rows']:,} events ({facts['users']:,} users, {facts['distinct_items']:,} items, "
            f"{facts['categories']:,} categories), {facts['bytes'] / 1e6:.0f} MB in {seconds:.1f} s: {raw}"
        )
    size = raw.stat().st_size

    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    child, wall = run_child(PREPROCESS, str(raw), str(work / "out"), str(args.block_bytes))
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    events = child["rows"]["read"]
    written = child["rows"]["written"]

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from ctrbench.data.formats.taobao_userbehavior.reader import COLUMNS

    types = dict(zip(COLUMNS, [pa.int64(), pa.int64(), pa.int64(), pa.string(), pa.int64()]))
    start = time.perf_counter()
    table = pa_csv.read_csv(
        raw,
        read_options=pa_csv.ReadOptions(column_names=COLUMNS, use_threads=True),
        parse_options=pa_csv.ParseOptions(delimiter=",", quote_char=False),
        convert_options=pa_csv.ConvertOptions(column_types=types),
    )
    arrow_seconds = time.perf_counter() - start
    assert table.num_rows == events
    del table

    seconds, rss = child["seconds"], child["vmhwm_bytes"]
    print(
        f"input: {raw} ({size / 1e6:.0f} MB, {events:,} events), {os.cpu_count()} cores, "
        f"block {args.block_bytes >> 20} MiB; output {written:,} rows"
    )
    print(
        f"preprocess_userbehavior:  {seconds:6.2f} s  ({events / seconds / 1e6:.2f} M events/s, "
        f"{written / seconds / 1e6:.2f} M output rows/s, {size / seconds / 1e6:.0f} MB/s); "
        f"child wall incl. start-up {wall:.2f} s"
    )
    print(f"pyarrow.csv.read_csv:     {arrow_seconds:6.2f} s  ({events / arrow_seconds / 1e6:.2f} M events/s)")
    print(f"ratio preprocess / read_csv: {seconds / arrow_seconds:.2f}x")
    rusage = f"{after / 2**20:.0f} MiB" if after > before else "n/a (not above an earlier child's)"
    print(f"peak RSS of the child: {rss / 2**20:.0f} MiB (VmHWM); RUSAGE_CHILDREN max {rusage}")
    if args.keep:
        print(f"kept {work}")
    else:
        for path in sorted(work.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
