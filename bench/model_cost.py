"""Training cost per model and embedding optimizer: samples/s, peak memory, optimizer state.

Generates a synthetic Criteo-format file, preprocesses it with the real pipeline, then trains
every model for a fixed number of steps twice: embeddings on sparse SGD (the default, no state)
and on dense Adam. Prints each figure and the Adam / SGD ratio measured in the same invocation.
Runs on CPU, or on CUDA when available (peak memory is then CUDA's peak allocated bytes).

    python bench/model_cost.py [--rows 200000] [--hash-bins 100000] [--steps 50] [--batch-size 4096]
                               [--preset criteo_dac] [--device auto] [--models dcnv2 ...] [--scratch DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from ctrbench.data.formats.criteo_dac.preprocess import preprocess_criteo
from ctrbench.data.formats.criteo_dac.synthetic import write_synthetic_criteo
from ctrbench.train.trainer import TrainOutputs, train

REPO = Path(__file__).resolve().parents[1]

EMBEDDING_OPTIMIZERS = {"sgd": {"name": "sgd", "lr": 1.0}, "adam": {"name": "adam", "lr": 0.001}}


def model_params(preset: str | None) -> dict:
    path = REPO / "config" / ("config.yaml" if preset is None else f"presets/{preset}.yaml")
    return {name: spec.get("params", {}) | {"arch": spec["arch"]} for name, spec in yaml.safe_load(path.read_text())["models"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--hash-bins", type=int, default=100_000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--preset", default=None, help="take model sizes from config/presets/<name>.yaml")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--scratch", default=None, help="folder for data and checkpoints (seed-size checkpoints are GBs)")
    args = parser.parse_args()

    models = model_params(args.preset)
    with tempfile.TemporaryDirectory(prefix="ctrbench-cost-", dir=args.scratch) as scratch:
        work = Path(scratch)
        write_synthetic_criteo(work / "raw.txt", rows=args.rows, seed=1)
        preprocess_criteo(work / "raw.txt", work / "data", options={"hash_bins": args.hash_bins, "splits": {"train": 0.9, "valid": 0.05, "gold": 0.05}}, progress=False)
        rows = []
        for name, params in models.items():
            if args.models and name not in args.models:
                continue
            params = dict(params)
            arch = params.pop("arch")
            figures = {}
            for opt_name, embedding_opt in EMBEDDING_OPTIMIZERS.items():
                training = {
                    "device": args.device, "batch_size": args.batch_size, "steps_per_epoch": args.steps,
                    "max_epochs": 1, "patience": 1, "eval_batch_size": 16384,
                    "optimizer": {"embedding": embedding_opt, "dense": {"name": "adamw", "lr": 0.001}},
                }
                out = work / f"{name}-{opt_name}"
                out.mkdir()
                record = train(
                    train_path=work / "data/train.parquet", valid_path=work / "data/valid.parquet",
                    feature_map_path=work / "data/feature_map.json", arch=arch, params=params, training=training,
                    seed=0, outputs=TrainOutputs(out / "ckpt.pt", out / "metrics.json", out / "log.jsonl"), progress=False,
                )
                figures[opt_name] = record.cost
            rows.append((name, figures))

    cost = rows[0][1]["sgd"]
    print(f"device: {cost.device_name}; {args.rows} rows, hash_bins {args.hash_bins}, "
          f"batch {args.batch_size}, {args.steps} steps; peak memory = {cost.peak_memory_kind}")
    header = f"{'model':<16}{'emb opt':>8}{'params':>12}{'opt state MiB':>15}{'peak MiB':>10}{'samples/s':>12}"
    print(header)
    for name, figures in rows:
        for opt_name, c in figures.items():
            print(f"{name:<16}{opt_name:>8}{c.params():>12,}{c.optimizer_state_bytes / 2**20:>15.1f}"
                  f"{c.peak_memory_bytes / 2**20:>10.0f}{c.train_samples_per_s:>12,.0f}")
        sgd, adam = figures["sgd"], figures["adam"]
        print(f"{'':<16}{'adam/sgd':>8}{'':>12}{'(+%.1f MiB)' % ((adam.optimizer_state_bytes - sgd.optimizer_state_bytes) / 2**20):>15}"
              f"{adam.peak_memory_bytes / sgd.peak_memory_bytes:>10.2f}{adam.train_samples_per_s / sgd.train_samples_per_s:>12.2f}")


if __name__ == "__main__":
    main()
