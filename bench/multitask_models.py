"""Training throughput and peak memory of the multi-task family on the default data, against Shared-Bottom.

Writes the default config's ``kuairand_synthetic`` data (same generator, size, tasks and histories), preprocesses
it with the real reader, then trains every model of that dataset for a fixed number of steps, each in a child
process of its own so that its peak RSS is its own (the data's share is the same in every child). Prints samples/s,
peak RSS and the ratios to Shared-Bottom measured in this invocation, one thread per model (as a default-run job).

    python bench/multitask_models.py [--steps 40] [--batch-size 1024] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from _child import run_child  # bench/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]
DATASET = "kuairand_synthetic"
BASELINE = "shared_bottom"

PREPARE = """
import json, sys, yaml
from pathlib import Path
from ctrbench.data.formats import FORMATS
work, config = Path(sys.argv[1]), yaml.safe_load(open(sys.argv[2]))
dataset = config["datasets"][sys.argv[3]]
fmt = FORMATS[dataset["format"]]
fmt.write_synthetic(work / "raw", rows=dataset["synthetic"]["rows"], seed=dataset["synthetic"]["seed"])
outputs = {k: work / "data" / f"{k}.{'json' if k in ('feature_map', 'manifest') else 'parquet'}"
           for k in ("train", "valid", "gold", "events", "feature_map", "manifest")}
manifest = fmt.preprocess(work / "raw", outputs=outputs, dataset_name=sys.argv[3], options=fmt.options.of_entry(dataset), progress=False)
print(json.dumps({"rows": manifest["splits"]["train"]["rows"]}))
"""

TRAIN = """
import json, sys, time, yaml, torch
from pathlib import Path
from ctrbench.config import model_training
from ctrbench.data.batch import TensorDataset
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import EpochSampler
from ctrbench.models.registry import build_model
from ctrbench.train.optim import GroupedOptimizer, embeddings_are_sparse
from ctrbench.train.step import train_step
from ctrbench.train.trainer import seed_everything
work, config, dataset, name = Path(sys.argv[1]), yaml.safe_load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
steps, batch_size = int(sys.argv[5]), int(sys.argv[6])
torch.set_num_threads(int(sys.argv[7]))
fm = FeatureMap.load(work / "data" / "feature_map.json")
data = TensorDataset.from_parquet(work / "data" / "train.parquet", fm)
spec, optimizer_config = config["models"][name], model_training(config, name, dataset)["optimizer"]
seed_everything(0)
model = build_model(spec["arch"], fm, spec.get("params", {}), sparse_embeddings=embeddings_are_sparse(optimizer_config))
optimizer = GroupedOptimizer(model.parameter_groups(), optimizer_config, model.no_weight_decay())
sampler, device = EpochSampler(len(data), batch_size, seed=0), torch.device("cpu")
model.train()
for step in range(steps + 3):  # 3 warm-up steps are not timed
    if step == 3:
        start = time.perf_counter()
    train_step(model, model, optimizer, data.batch(sampler.next_batch()), device)
rate = steps * batch_size / (time.perf_counter() - start)
hwm = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"samples_per_s": rate, "peak_rss": hwm, "params": sum(p.numel() for p in model.parameters())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    config_path = REPO / "config" / "config.yaml"
    names = yaml.safe_load(config_path.read_text())["datasets"][DATASET]["models"]
    with tempfile.TemporaryDirectory(prefix="ctrbench-mtbench-") as scratch:
        prepared, _ = run_child(PREPARE, scratch, str(config_path), DATASET)
        figures = {
            name: run_child(TRAIN, scratch, str(config_path), DATASET, name, str(args.steps), str(args.batch_size), str(args.threads))[0]
            for name in names
        }
    base = figures[BASELINE]
    print(f"{DATASET}: {prepared['rows']} train rows; CPU, {args.threads} thread(s), batch {args.batch_size}, {args.steps} timed steps")
    print(f"{'model':<16}{'params':>10}{'train samples/s':>17}{'vs ' + BASELINE:>18}{'peak RSS MiB':>14}{'vs ' + BASELINE:>18}")
    for name, f in figures.items():
        print(f"{name:<16}{f['params']:>10,}{f['samples_per_s']:>17,.0f}{f['samples_per_s'] / base['samples_per_s']:>18.2f}"
              f"{f['peak_rss'] / 2**20:>14,.0f}{f['peak_rss'] / base['peak_rss']:>18.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
