"""Training and inference throughput of the behaviour-sequence models on the default data.

Writes the default config's ``userbehavior_synthetic`` data (same generator, size and history
length), preprocesses it with the real reader, then times every model of that dataset for a fixed
number of training steps and a pass of inference over the gold split, all in this process, one
thread by default (as a default-run job). Prints samples/s and the ratio to the static DCNv3 measured
here, and for Mamba4Rec the recurrent CPU scan (the default) against autograd through the step loop.

    python bench/sequence_models.py [--steps 40] [--batch-size 1024] [--threads 1] [--device auto]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

from ctrbench.config import model_training
from ctrbench.data.batch import TensorDataset
from ctrbench.data.formats import FORMATS
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import EpochSampler
from ctrbench.inference import predict
from ctrbench.models.mamba import MambaMixer
from ctrbench.models.registry import build_model
from ctrbench.train.cost import resolve_device
from ctrbench.train.optim import GroupedOptimizer, embeddings_are_sparse
from ctrbench.train.step import train_step
from ctrbench.train.trainer import seed_everything, sync

REPO = Path(__file__).resolve().parents[1]
DATASET = "userbehavior_synthetic"
BASELINE = "dcnv3"


def train_rate(model, optimizer, data: TensorDataset, steps: int, batch_size: int, device) -> float:
    sampler = EpochSampler(len(data), batch_size, seed=0)
    model.train()
    for step in range(steps + 3):  # 3 warm-up steps (allocator, first-call overheads) are not timed
        if step == 3:
            sync(device)
            start = time.perf_counter()
        train_step(model, model, optimizer, data.batch(sampler.next_batch()).to(device), device)
    sync(device)
    return steps * batch_size / (time.perf_counter() - start)


def infer_rate(model, data: TensorDataset, batch_size: int, device) -> float:
    sync(device)
    start = time.perf_counter()
    predict(model, data.iter_batches(batch_size), device)
    sync(device)
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    dataset = config["datasets"][DATASET]
    names = dataset["models"]
    data_format = FORMATS[dataset["format"]]
    with tempfile.TemporaryDirectory(prefix="ctrbench-seqbench-") as scratch:
        work = Path(scratch)
        data_format.write_synthetic(work / "raw.csv", rows=dataset["synthetic"]["rows"], seed=dataset["synthetic"]["seed"])
        outputs = {k: work / f"{k}.{'json' if k in ('feature_map', 'manifest') else 'parquet'}"
                   for k in ("train", "valid", "gold", "feature_map", "manifest")}  # fmt: skip
        data_format.preprocess(work / "raw.csv", outputs=outputs, dataset_name=DATASET, options=data_format.options.of_entry(dataset), progress=False)
        fm = FeatureMap.load(outputs["feature_map"])
        train_set = TensorDataset.from_parquet(outputs["train"], fm)
        gold_set = TensorDataset.from_parquet(outputs["gold"], fm)

        variants = [(name, None) for name in names] + [("mamba4rec", "loop")]
        figures = {}
        for name, scan in variants:
            spec = config["models"][name]
            optimizer_config = model_training(config, name, DATASET)["optimizer"]
            seed_everything(0)
            model = build_model(spec["arch"], fm, spec.get("params", {}), sparse_embeddings=embeddings_are_sparse(optimizer_config))
            model = model.to(device)
            if scan is not None:
                for module in model.modules():
                    if isinstance(module, MambaMixer):
                        module.scan_method = scan
            optimizer = GroupedOptimizer(model.parameter_groups(), optimizer_config, model.no_weight_decay())
            label = name if scan is None else f"{name} ({scan} scan)"
            figures[label] = (
                train_rate(model, optimizer, train_set, args.steps, args.batch_size, device),
                infer_rate(model, gold_set, 8192, device),
                sum(p.numel() for p in model.parameters()),
                model.model_info().get("mamba_backend", ""),
            )

    base_train, base_infer = figures[BASELINE][:2]
    print(f"{DATASET}: {len(train_set)} train / {len(gold_set)} gold rows, history {fm.max_len(fm.sequences[0])}; "
          f"device {device}, {args.threads} thread(s), batch {args.batch_size}, {args.steps} timed steps")  # fmt: skip
    print(f"{'model':<28}{'params':>10}{'train samples/s':>17}{'vs ' + BASELINE:>10}{'infer samples/s':>17}{'vs ' + BASELINE:>10}  backend")
    for label, (train_sps, infer_sps, params, backend) in figures.items():
        print(f"{label:<28}{params:>10,}{train_sps:>17,.0f}{train_sps / base_train:>10.2f}"
              f"{infer_sps:>17,.0f}{infer_sps / base_infer:>10.2f}  {backend}")  # fmt: skip
    recurrent, loop = figures["mamba4rec"][0], figures["mamba4rec (loop scan)"][0]
    print(f"Mamba4Rec training, recurrent scan / autograd loop: {recurrent / loop:.2f}x")


if __name__ == "__main__":
    main()
