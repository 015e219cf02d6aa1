"""Every model of the embedded default config (ctrbench 0.1, before the v2 core), on smaller synthetic data, through
the package's own preprocess -> train -> gold-eval path. tests/data/pinned_gold_metrics.json holds what this gave
before the v2 core; test_pinned_metrics.py checks the current code gives the same."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import yaml

from ctrbench.config import dataset_models, model_training

REPO = Path(__file__).resolve().parents[1]
PINNED = REPO / "tests" / "data" / "pinned_gold_metrics.json"

# the default config as it was when the metrics were pinned (models, params, per-dataset training)
PINNED_CONFIG = yaml.safe_load(
    """
seed: 2024
benchmark: {datasets: [criteo_synthetic, userbehavior_synthetic], models: [dcnv2, autoint, ft_transformer, deepfm]}
datasets:
  criteo_synthetic: {format: criteo_dac, synthetic: {rows: 8000, seed: 7}, hash_bins: 10000,
                     splits: {train: 0.8, valid: 0.1, gold: 0.1}}
  userbehavior_synthetic:
    format: taobao_userbehavior
    synthetic: {rows: 12000, seed: 7}
    history: {max_len: 20}
    targets: {negatives: 1, sampling: popularity}
    time_split: {valid_days: 1, gold_days: 1}
    models: [dcnv3, bst, mamba4rec, mdaf_mamba, mdaf_bst]
    training:
      batch_size: 1024
      max_epochs: 3
      optimizer:
        embedding: {name: adam, lr: 0.003}
        dense: {name: adamw, lr: 0.003, weight_decay: 1.0e-5}
models:
  dcnv2: {arch: dcnv2, params: {embedding_dim: 16, num_cross_layers: 3, cross_type: full, structure: parallel, mlp_hidden: [256, 128], dropout: 0.1}}
  # arch `autoint` when pinned: the post-LN field Transformer, renamed when the paper's AutoInt took that arch
  autoint: {arch: field_transformer, params: {embedding_dim: 16, num_layers: 2, num_heads: 2, dropout: 0.1}}
  ft_transformer: {arch: ft_transformer, params: {d_token: 16, num_layers: 2, num_heads: 2, dense_tokens: single, pooling: cls}}
  deepfm: {arch: deepfm, params: {embedding_dim: 16, mlp_hidden: [256, 128], dropout: 0.1}}
  dcnv3: {arch: dcnv3, params: {embedding_dim: 16, num_heads: 2, num_lcn_layers: 3, num_ecn_layers: 3}}
  bst: {arch: bst, params: {embedding_dim: 16, d_model: 32, num_layers: 1, num_heads: 2, pooling: concat, mlp_hidden: [128, 64]}}
  mamba4rec: {arch: mamba4rec, params: {embedding_dim: 16, d_model: 16, num_layers: 1, d_state: 8, mlp_hidden: [128, 64]}}
  # branch_norm: false, MDAF as it was pinned (the batch-normalised branches came later, on purpose)
  mdaf_mamba: {arch: mdaf, params: {sequence_encoder: mamba, static_embedding_dim: 8, sequence_embedding_dim: 16, d_model: 16,
                                    d_state: 8, fusion_dim: 128, mlp_hidden: [128, 64], dropout: 0.2, branch_norm: false}}
  mdaf_bst: {arch: mdaf, params: {sequence_encoder: bst, static_embedding_dim: 8, sequence_embedding_dim: 16, d_model: 32,
                                  num_heads: 2, fusion_dim: 128, mlp_hidden: [128, 64], dropout: 0.2, branch_norm: false}}
training:
  device: cpu
  batch_size: 1024
  steps_per_epoch: null
  max_epochs: 2
  patience: 2
  eval_batch_size: 8192
  optimizer:
    embedding: {name: sgd, lr: 1.0}
    dense: {name: adamw, lr: 0.001, weight_decay: 1.0e-5}
"""
)
# two epochs everywhere (the default runs up to 6 and 3): the pin is about the code path, not the budget
PINNED_CONFIG["datasets"]["userbehavior_synthetic"]["training"]["max_epochs"] = 2


def run_pinned(work: Path) -> dict[str, dict]:
    """Gold metrics (logloss, auc, gauc, accuracy) of every (dataset, model) of PINNED_CONFIG, one thread."""
    from ctrbench.data.formats import FORMATS
    from ctrbench.evaluate import evaluate_gold
    from ctrbench.train.trainer import TrainOutputs, train

    torch.set_num_threads(1)
    config = copy.deepcopy(PINNED_CONFIG)
    results = {}
    for dataset in config["benchmark"]["datasets"]:
        entry = config["datasets"][dataset]
        data_format = FORMATS[entry["format"]]
        raw = work / dataset / "raw.txt"
        raw.parent.mkdir(parents=True)
        data_format.write_synthetic(raw, rows=entry["synthetic"]["rows"], seed=entry["synthetic"]["seed"])
        paths = {k: work / dataset / "data" / f"{k}.parquet" for k in ("train", "valid", "gold")}
        paths |= {k: work / dataset / "data" / f"{k}.json" for k in ("feature_map", "manifest")}
        options = data_format.options.of_entry(entry)
        data_format.preprocess(raw, outputs=paths, dataset_name=dataset, options=options, progress=False)
        for model in dataset_models(config, dataset):
            spec, folder = config["models"][model], work / dataset / model
            train(
                train_path=paths["train"], valid_path=paths["valid"], feature_map_path=paths["feature_map"],
                arch=spec["arch"], params=spec.get("params", {}), training=model_training(config, model, dataset),
                seed=config["seed"], progress=False, meta={"dataset": dataset, "model": model, "config_sha256": None},
                outputs=TrainOutputs(folder / "checkpoint.pt", folder / "train_metrics.json", folder / "train_log.jsonl"),
            )  # fmt: skip
            gold = evaluate_gold(
                checkpoint_path=folder / "checkpoint.pt", gold_path=paths["gold"], output_path=folder / "gold_eval.json",
                device="cpu", meta={"dataset": dataset, "model": model, "config_sha256": None},
            )
            metrics = gold.tasks["label"]
            results[f"{dataset}/{model}"] = {k: getattr(metrics, k) for k in ("logloss", "auc", "gauc", "accuracy")}
    return results
