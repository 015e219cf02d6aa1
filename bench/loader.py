"""Batch sources: training samples/s of the in-memory and the streaming source on the same split, and the
streaming source's peak RSS when the split grows tenfold (each measured in a child process of its own).

    python bench/loader.py [--rows 1000000] [--batch-size 4096] [--buffer-rows 262144]

The split is Criteo-shaped (label, 13 dense, 26 categorical columns, zstd parquet in 131,072-row groups, as
the Criteo reader writes). Prints figures and ratios; it is not a test.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _child import run_child  # bench/ is sys.path[0] when run as a script

WRITE = """
import json, sys
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
rows = int(sys.argv[2]); rng = np.random.default_rng(0)
columns = {"row_id": np.arange(rows, dtype=np.int64), "label": (rng.random(rows) < 0.25).astype(np.float32)}
columns |= {f"I{i}": rng.normal(size=rows).astype(np.float32) for i in range(1, 14)}
columns |= {f"C{i}": rng.integers(0, 100_000, rows, dtype=np.int32) for i in range(1, 27)}
pq.write_table(pa.table(columns), sys.argv[1], row_group_size=1 << 17, compression="zstd")
print(json.dumps({"rows": rows}))
"""

READ = """
import json, sys, time
from ctrbench.data.schema import Feature, FeatureMap, tasks_of
from ctrbench.data.sources import InMemorySource, StreamingSource
fm = FeatureMap(dataset="bench", tasks=tasks_of(["label"]),
                features=[Feature(f"I{i}", "dense") for i in range(1, 14)]
                + [Feature(f"C{i}", "categorical", vocab_size=100_000) for i in range(1, 27)])
path, kind, batch, buffer = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
start = time.perf_counter()
source = InMemorySource(path, fm) if kind == "memory" else StreamingSource(path, fm, shuffle_buffer_rows=buffer)
batches = source.train_batches(batch, seed=0)
steps = source.rows // batch  # one pass
first = time.perf_counter()
for _ in range(steps):
    next(batches)
end = time.perf_counter()
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"samples_per_s": steps * batch / (end - first), "open_seconds": first - start,
                  "pass_seconds": end - start, "vmhwm_bytes": hwm}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--buffer-rows", type=int, default=1 << 18)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctrbench-loader-") as scratch:
        small, large = Path(scratch) / "small.parquet", Path(scratch) / "large.parquet"
        run_child(WRITE, str(small), str(args.rows))
        run_child(WRITE, str(large), str(10 * args.rows))
        common = [str(args.batch_size), str(args.buffer_rows)]
        memory, _ = run_child(READ, str(small), "memory", *common)
        streaming, _ = run_child(READ, str(small), "streaming", *common)
        streaming_large, _ = run_child(READ, str(large), "streaming", *common)
    mib = 2**20
    print(f"{args.rows:,}-row Criteo-shaped split, batch {args.batch_size}, shuffle buffer {args.buffer_rows:,} rows; one pass each")
    print(f"{'source':<28}{'samples/s':>12}{'vs memory':>11}{'pass s':>9}{'peak RSS MiB':>14}")
    for name, figures in (("in memory", memory), ("streaming", streaming), (f"streaming, {10 * args.rows:,} rows", streaming_large)):
        print(f"{name:<28}{figures['samples_per_s']:>12,.0f}{figures['samples_per_s'] / memory['samples_per_s']:>11.2f}"
              f"{figures['pass_seconds']:>9.1f}{figures['vmhwm_bytes'] / mib:>14.0f}")
    print(f"streaming peak RSS, 10x rows / 1x rows: {streaming_large['vmhwm_bytes'] / streaming['vmhwm_bytes']:.2f}; "
          f"in memory / streaming at 1x: {memory['vmhwm_bytes'] / streaming['vmhwm_bytes']:.2f}")


if __name__ == "__main__":
    main()
