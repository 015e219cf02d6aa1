"""Data-parallel training: samples/s of 1 and 2 CPU processes (torchrun, gloo) training DCNv2 on the same data,
through the same launcher the train rule uses. On a CPU this shows the overhead of DDP (two processes share the
cores); on a GPU machine the same script, with --device cuda and --processes N, shows the speed-up.

    python bench/distributed.py [--rows 200000] [--processes 2] [--device cpu] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile

from _child import run_child  # bench/ is sys.path[0] when run as a script

TRAIN = """
import json, sys
from pathlib import Path
from ctrbench.data.formats.criteo_dac.preprocess import preprocess_criteo
from ctrbench.data.formats.criteo_dac.synthetic import write_synthetic_criteo
from ctrbench.results import TrainRecord, read_record
from ctrbench.train.launch import train_job
from ctrbench.train.trainer import TrainOutputs
work, rows, processes, device, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
if not (work / "data" / "manifest.json").exists():
    write_synthetic_criteo(work / "raw.txt", rows, 0)
    preprocess_criteo(work / "raw.txt", work / "data", options={"hash_bins": 100_000, "splits": {"train": 0.9, "valid": 0.05, "gold": 0.05}}, progress=False)
out = work / f"run{processes}"
out.mkdir()
training = {"device": device, "batch_size": 4096, "steps_per_epoch": None, "max_epochs": 1, "patience": 1, "eval_batch_size": 16384,
            "optimizer": {"embedding": {"name": "sgd", "lr": 1.0}, "dense": {"name": "adamw", "lr": 0.001}},
            "distributed": {"processes": processes}}
train_job(threads=threads, train_path=work / "data/train.parquet", valid_path=work / "data/valid.parquet",
          feature_map_path=work / "data/feature_map.json", arch="dcnv2", params={"embedding_dim": 16}, training=training,
          seed=0, outputs=TrainOutputs(out / "c.pt", out / "m.json", out / "l.jsonl"), progress=False)
record = read_record(out / "m.json", TrainRecord)
print(json.dumps({"samples_per_s": record.cost.train_samples_per_s, "auc": record.best_valid["label"].auc,
                  "peak_bytes": record.cost.peak_memory_bytes}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the job, split between its processes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctrbench-ddp-") as scratch:
        figures = {n: run_child(TRAIN, scratch, str(args.rows), str(n), args.device, str(args.threads))[0] for n in (1, args.processes)}
    one = figures[1]
    print(f"DCNv2, {args.rows:,} generated Criteo rows (90% train), batch 4096 (global), one epoch, {args.device}, "
          f"{args.threads} threads in all")
    print(f"{'processes':>10}{'samples/s':>12}{'vs 1':>7}{'valid AUC':>11}{'peak MiB (job)':>18}")
    for n, f in figures.items():
        print(f"{n:>10}{f['samples_per_s']:>12,.0f}{f['samples_per_s'] / one['samples_per_s']:>7.2f}{f['auc']:>11.4f}"
              f"{f['peak_bytes'] / 2**20:>18.0f}")
    print(json.dumps({str(k): v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
