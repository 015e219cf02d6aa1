"""Benchmark: preprocess_tenrec on generated Tenrec files of N and 2N rows (N defaults to QB-Video's 2.4 M).

    python bench/preprocess_tenrec.py [--rows 2400000] [--bucket-bytes N] [--keep]

Each file is generated in a child process and preprocessed in another (as ``bench/preprocess_userbehavior.py``),
so each preprocessing's peak RSS (its VmHWM) is its own. Printed per size: rows/s, MB/s, peak RSS, buckets and
history events; then the ratio of the two peaks, measured in this one invocation. Memory is bounded by a read
block, the bucket buffer and one user bucket (about ``bucket_bytes`` of input), not by the input: once both
sizes fill their buckets (``--bucket-bytes`` well below the file size), doubling the input leaves it about flat
(QK-Video has 490 M rows).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from _child import run_child  # bench/ is sys.path[0] when run as a script

from ctrbench.data.formats.tenrec.preprocess import DEFAULT_BUCKET_BYTES

GENERATE = """
import json, sys
from ctrbench.data.formats.tenrec.synthetic import write_synthetic_tenrec
print(json.dumps(write_synthetic_tenrec(sys.argv[1], int(sys.argv[2]), seed=0)))
"""

PREPROCESS = """
import json, sys, time
from ctrbench.data.formats.tenrec.preprocess import preprocess_tenrec
from ctrbench.data.outputs import output_paths
start = time.perf_counter()
manifest = preprocess_tenrec(sys.argv[1], outputs=output_paths(sys.argv[2], None), bucket_bytes=int(sys.argv[3]),
                             progress=False)
elapsed = time.perf_counter() - start
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": elapsed, "vmhwm_bytes": hwm, "rows": manifest["rows"],
                  "buckets": manifest["options"]["buckets"], "events": manifest["details"]["history_events"]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_400_000)
    parser.add_argument("--bucket-bytes", type=int, default=DEFAULT_BUCKET_BYTES)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ctrbench-bench-"))
    peaks = []
    for rows in (args.rows, 2 * args.rows):
        raw = work / f"tenrec_{rows}.csv"
        facts, seconds = run_child(GENERATE, str(raw), str(rows))
        print(f"generated {rows:,} rows ({facts['users']:,} users), {facts['bytes'] / 1e6:.0f} MB in {seconds:.1f} s")
        child, _ = run_child(PREPROCESS, str(raw), str(work / f"out_{rows}"), str(args.bucket_bytes))
        peaks.append(child["vmhwm_bytes"])
        print(
            f"  preprocess: {child['seconds']:.1f} s, {rows / child['seconds']:,.0f} rows/s, "
            f"{facts['bytes'] / 1e6 / child['seconds']:.0f} MB/s, peak RSS {child['vmhwm_bytes'] / 2**20:.0f} MiB, "
            f"{child['buckets']} buckets, history events {child['events']}"
        )
        if not args.keep:
            raw.unlink()
            shutil.rmtree(work / f"out_{rows}")
    print(f"peak RSS at 2N / at N: {peaks[1] / peaks[0]:.2f}x")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
