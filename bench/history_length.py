"""Histories by reference against history length: the peak RSS of a 5-step BST training job (batch 16) on the
default synthetic UserBehavior data at max_len 20 and 1,000, the processed data's size on disk, and the in-memory
loader's training samples/s when it gathers 50, 1,000 and 10,000 events per row (padding where a user has fewer:
the gather's cost is the slots it fills). One processed dataset serves every
length (training.history_max_len); each job runs in a child process of its own.

    python bench/history_length.py [--rows 80000]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from _child import run_child  # bench/ is sys.path[0] when run as a script

PREPARE = """
import json, sys, yaml
from pathlib import Path
from ctrbench.data.formats import FORMATS
work, rows = Path(sys.argv[1]), int(sys.argv[2])
dataset = yaml.safe_load(open(sys.argv[3]))["datasets"]["userbehavior_synthetic"]
fmt = FORMATS[dataset["format"]]
fmt.write_synthetic(work / "raw.csv", rows=rows, seed=dataset["synthetic"]["seed"])
outputs = {k: work / "data" / f"{k}.{'json' if k in ('feature_map', 'manifest') else 'parquet'}" for k in ("train", "valid", "gold", "events", "feature_map", "manifest")}
manifest = fmt.preprocess(work / "raw.csv", outputs=outputs, dataset_name="userbehavior_synthetic", options=fmt.options.of_entry(dataset), progress=False)
print(json.dumps({"bytes": sum(p.stat().st_size for p in (work / "data").iterdir()), "rows": manifest["splits"]}))
"""

TRAIN = """
import json, sys, torch
from pathlib import Path
from ctrbench.train.trainer import TrainOutputs, train
work, max_len = Path(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(1)
out = work / f"bst{max_len}-{sys.argv[3]}"; out.mkdir()
training = {"device": "cpu", "batch_size": 16, "steps_per_epoch": 5, "max_epochs": 1, "patience": 1, "eval_batch_size": 16,
            "history_max_len": {"history": max_len}, "loader": {"kind": "memory"},
            "optimizer": {"embedding": {"name": "adam", "lr": 0.003}, "dense": {"name": "adamw", "lr": 0.003}}}
record = train(train_path=work / "data/train.parquet", valid_path=work / "data/valid.parquet",
               feature_map_path=work / "data/feature_map.json", arch="bst",
               params={"embedding_dim": 16, "d_model": 32, "num_heads": 2, "mlp_hidden": [128, 64], "dropout": float(sys.argv[3])},
               training=training, seed=0, outputs=TrainOutputs(out / "c.pt", out / "m.json", out / "l.jsonl"), progress=False)
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"vmhwm_bytes": hwm}))
"""

LOADER = """
import json, sys
from pathlib import Path
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import open_source
work, max_len = Path(sys.argv[1]), int(sys.argv[2])
fm = FeatureMap.load(work / "data/feature_map.json").with_max_lens({"history": max_len})
train = open_source(work / "data/train.parquet", fm, {"kind": "memory"})
valid = open_source(work / "data/valid.parquet", fm, {"kind": "memory"})
batches = train.train_batches(16, seed=0)
for _ in range(5):
    next(batches)
for batch in valid.eval_batches(16):
    pass
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"vmhwm_bytes": hwm}))
"""

GATHER = """
import json, sys, time
from pathlib import Path
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import InMemorySource
work, max_len = Path(sys.argv[1]), int(sys.argv[2])
fm = FeatureMap.load(work / "data/feature_map.json").with_max_lens({"history": max_len})
source = InMemorySource(work / "data/train.parquet", fm)
batches = source.train_batches(1024, seed=0)
steps = max(10, 100 * 50 // max_len)  # fewer batches of the longest histories: ~160 MB of ids each at 10,000
start = time.perf_counter()
for _ in range(steps):
    batch = next(batches)
print(json.dumps({"samples_per_s": steps * 1024 / (time.perf_counter() - start), "width": batch.sequences["item_history"].shape[1]}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=80_000)
    args = parser.parse_args()
    config = str(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    with tempfile.TemporaryDirectory(prefix="ctrbench-history-") as scratch:
        data, _ = run_child(PREPARE, scratch, str(args.rows), config)
        rows = {name: split["rows"] for name, split in data["rows"].items()}
        # BST with and without dropout: with attention dropout, SDPA on a CPU takes its math path and materialises
        # every [batch, heads, L, L] attention matrix for backward (the model's own cost, growing with L^2)
        memory = {(n, p): run_child(TRAIN, scratch, str(n), str(p))[0]["vmhwm_bytes"] for n in (20, 1000) for p in (0.0, 0.1)}
        loader = {n: run_child(LOADER, scratch, str(n))[0]["vmhwm_bytes"] for n in (20, 1000)}
        gather = {n: run_child(GATHER, scratch, str(n))[0] for n in (50, 1000, 10_000)}
    mib = 2**20
    total = sum(rows.values())
    print(f"default synthetic UserBehavior ({args.rows:,} events): {rows} rows; processed data on disk "
          f"{data['bytes'] / mib:.1f} MiB for every history length (histories by reference)")
    print(f"  fixed-size histories would hold 2 x 4 bytes x max_len per row: {total * 8 * 1000 / mib:,.0f} MiB "
          f"in memory at max_len 1,000")
    print(f"the data side alone (both splits loaded, 5 training batches and a validation pass of batch 16): peak RSS "
          f"{loader[20] / mib:.0f} MiB at max_len 20, {loader[1000] / mib:.0f} MiB at 1,000 ({loader[1000] / loader[20]:.2f}x)")
    for p in (0.0, 0.1):
        low, high = memory[(20, p)], memory[(1000, p)]
        why = "the model's activations" if p == 0 else "attention dropout's L x L weights on the CPU math path"
        print(f"5-step BST training job, batch 16, dropout {p}: peak RSS {low / mib:.0f} MiB at max_len 20, "
              f"{high / mib:.0f} MiB at 1,000 ({high / low:.2f}x; the data side is flat, the growth is {why})")
    base = gather[50]["samples_per_s"]
    for n, figures in gather.items():
        print(f"  in-memory loader, {n:>6,} events per row: {figures['samples_per_s']:>11,.0f} samples/s ({figures['samples_per_s'] / base:.2f}x of 50)")


if __name__ == "__main__":
    main()
