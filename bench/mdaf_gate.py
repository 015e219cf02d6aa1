"""MDAF-BST's gate in its first steps on the default's synthetic UserBehavior data, with and without branch
normalisation (``branch_norm``): the gate logit's mean over one fixed training batch (evaluation mode) every
5 steps, and how far the gate's bias moved. Without normalisation the logit runs away through the gate's weights (the
branch outputs' non-zero batch means make each weight act as a bias) while the bias barely moves.

``--epochs N`` trains on for N epochs (the default config trains 2) and prints the gold AUC of the fused
prediction and of the head on each branch alone (``f(h_s)``, ``f(h_q)``) and the gate's gold mean.
Same data, params and training settings as the default config; one thread.

    python bench/mdaf_gate.py [--seed 2024] [--steps 20] [--epochs 0]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import torch
import yaml

from ctrbench.data.formats import FORMATS
from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import open_source
from ctrbench.metrics import roc_auc
from ctrbench.models.registry import build_model
from ctrbench.train.optim import GroupedOptimizer, embeddings_are_sparse
from ctrbench.train.step import train_step
from ctrbench.train.trainer import seed_everything

REPO = Path(__file__).resolve().parents[1]
DATASET, MODEL = "userbehavior_synthetic", "mdaf_bst"


def prepare(config: dict, work: Path) -> dict[str, Path]:
    entry = config["datasets"][DATASET]
    data_format = FORMATS[entry["format"]]
    raw = work / "raw.txt"
    data_format.write_synthetic(raw, rows=entry["synthetic"]["rows"], seed=entry["synthetic"]["seed"])
    paths = {k: work / f"{k}.parquet" for k in ("train", "valid", "gold")}
    paths |= {k: work / f"{k}.json" for k in ("feature_map", "manifest")}
    data_format.preprocess(
        raw, outputs=paths, dataset_name=DATASET, options=data_format.options.of_entry(entry), progress=False
    )
    return paths


def gold_scores(model, gold) -> str:
    model.eval()
    parts = {"labels": [], "fused": [], "static": [], "sequence": [], "gate": []}
    with torch.no_grad():
        for batch in gold.eval_batches(8192):
            h_s, h_q = model.static_branch(batch), model.sequence_branch(batch)
            out = model(batch)
            for key, value in (("labels", batch.labels), ("fused", out.logits), ("static", model.head(h_s)),
                               ("sequence", model.head(h_q)), ("gate", out.aux["gate"])):  # fmt: skip
                parts[key].append(value)
    model.train()
    got = {k: torch.cat(v).numpy() for k, v in parts.items()}
    auc = {k: roc_auc(got["labels"][:, 0], got[k][:, 0]) for k in ("fused", "static", "sequence")}
    return f"gold AUC {auc['fused']:.3f} (f(h_s) alone {auc['static']:.3f}, f(h_q) alone {auc['sequence']:.3f}), gate mean {got['gate'].mean():.3f}"


def run(paths: dict[str, Path], config: dict, branch_norm: bool, seed: int, steps: int, epochs: int) -> None:
    torch.set_num_threads(1)
    seed_everything(seed)
    training = {**config["training"], **config["datasets"][DATASET].get("training", {})}
    feature_map = FeatureMap.load(paths["feature_map"])
    train, gold = open_source(paths["train"], feature_map, None), open_source(paths["gold"], feature_map, None)
    params = {**config["models"][MODEL]["params"], "branch_norm": branch_norm}
    model = build_model("mdaf", feature_map, params, sparse_embeddings=embeddings_are_sparse(training["optimizer"]))
    optimizer = GroupedOptimizer(model.parameter_groups(), training["optimizer"], model.no_weight_decay())
    batch_size = min(int(training["batch_size"]), train.rows)
    batches = train.train_batches(batch_size, seed)
    probe = next(train.train_batches(batch_size, seed + 1))
    trace = []
    total = max(steps, epochs * math.ceil(train.rows / batch_size))
    for step in range(total + 1):
        if step <= steps and step % 5 == 0:
            model.eval()
            with torch.no_grad():
                h = torch.cat([model.static_branch(probe), model.sequence_branch(probe)], dim=1)
                trace.append(f"{model.gate(h).mean().item():+.2f}")
            model.train()
        if step == steps:
            print(f"branch_norm={branch_norm}: gate logit at steps 0, 5, .., {steps}: {' '.join(trace)}; "
                  f"gate bias {model.gate.bias.item():+.3f}")  # fmt: skip
        if step < total:
            train_step(model, model, optimizer, next(batches), torch.device("cpu"))
    if epochs:
        print(f"  after {epochs} epochs ({total} steps): {gold_scores(model, gold)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=0)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        paths = prepare(config, Path(tmp))
        for branch_norm in (False, True):
            run(paths, config, branch_norm, args.seed, args.steps, args.epochs)


if __name__ == "__main__":
    main()
