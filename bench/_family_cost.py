"""Training throughput and peak memory of one default dataset's models against a baseline model, each in a child
process of its own so that its peak memory is its own (the data's share is the same in every child).

Used by ``multitask_models.py`` and ``llm_ctr_cost.py``: the dataset is written by its format's generator at the
default config's size and preprocessed by the real reader; every model trains for a fixed number of steps with the
optimizer settings it has in the config (after 3 untimed warm-up steps); ratios are to the baseline measured in the
same invocation. On CUDA the peak is ``torch.cuda.max_memory_allocated``, else the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml
from _child import run_child  # bench/ is sys.path[0] when run as a script

REPO = Path(__file__).resolve().parents[1]

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
from ctrbench.train.cost import PeakMemory
from ctrbench.train.optim import GroupedOptimizer, embeddings_are_sparse
from ctrbench.train.step import train_step
from ctrbench.train.trainer import seed_everything
work, config, dataset, name = Path(sys.argv[1]), yaml.safe_load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
steps, batch_size, device, precision = int(sys.argv[5]), int(sys.argv[6]), torch.device(sys.argv[8]), sys.argv[9]
overrides = json.loads(sys.argv[10])
torch.set_num_threads(int(sys.argv[7]))
fm = FeatureMap.load(work / "data" / "feature_map.json")
data = TensorDataset.from_parquet(work / "data" / "train.parquet", fm)
spec, optimizer_config = config["models"][name], model_training(config, name, dataset)["optimizer"]
params = {**spec.get("params", {}), **overrides.get(spec["arch"], {})}
seed_everything(0)
memory = PeakMemory(device)
model = build_model(spec["arch"], fm, params, sparse_embeddings=embeddings_are_sparse(optimizer_config)).to(device)
optimizer = GroupedOptimizer(model.parameter_groups(), optimizer_config, model.no_weight_decay())
sampler = EpochSampler(len(data), batch_size, seed=0)
model.train()
for step in range(steps + 3):  # 3 warm-up steps are not timed
    if step == 3:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
    train_step(model, model, optimizer, data.batch(sampler.next_batch()).to(device), device, precision)
if device.type == "cuda":
    torch.cuda.synchronize()
rate = steps * batch_size / (time.perf_counter() - start)
groups = model.parameter_groups()
trainable = sum(p.numel() for g, ps in groups.items() if g != "frozen" for p in ps)
print(json.dumps({"samples_per_s": rate, "peak": memory.peak_bytes(), "kind": memory.kind,
                  "params": sum(p.numel() for p in model.parameters()), "trainable": trainable}))
"""


def arguments(description: str, batch_size: int, steps: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    return parser


def measure(dataset: str, baseline: str, args, models: list[str] | None = None, overrides: dict | None = None) -> None:
    """Train each model of ``dataset`` (default: its config list) and print figures with ratios to ``baseline``;
    ``overrides``: ``{arch: params}`` merged over the config's params (e.g. another LM shape)."""
    config_path = REPO / "config" / "config.yaml"
    names = models or yaml.safe_load(config_path.read_text())["datasets"][dataset]["models"]
    with tempfile.TemporaryDirectory(prefix="ctrbench-familybench-") as scratch:
        prepared, _ = run_child(PREPARE, scratch, str(config_path), dataset)
        figures = {
            name: run_child(
                TRAIN, scratch, str(config_path), dataset, name, str(args.steps), str(args.batch_size), str(args.threads),
                args.device, args.precision, json.dumps(overrides or {}),
            )[0]
            for name in names
        }  # fmt: skip
    base = figures[baseline]
    kind = "peak CUDA MiB" if base["kind"] == "cuda_max_allocated" else "peak RSS MiB"
    print(f"{dataset}: {prepared['rows']} train rows; {args.device}, {args.precision}, {args.threads} thread(s), "
          f"batch {args.batch_size}, {args.steps} timed steps")  # fmt: skip
    print(f"{'model':<16}{'params':>14}{'trainable':>14}{'train samples/s':>17}{'vs ' + baseline:>18}{kind:>15}{'vs ' + baseline:>18}")
    for name, f in figures.items():
        print(f"{name:<16}{f['params']:>14,}{f['trainable']:>14,}{f['samples_per_s']:>17,.0f}"
              f"{f['samples_per_s'] / base['samples_per_s']:>18.2f}{f['peak'] / 2**20:>15,.0f}{f['peak'] / base['peak']:>18.2f}")  # fmt: skip
