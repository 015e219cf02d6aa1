import json

import pytest
import torch

from ctrbench.data.schema import FeatureMap
from ctrbench.evaluate import evaluate_gold
from ctrbench.models.registry import build_model
from ctrbench.provenance import sha256_file
from ctrbench.train.optim import GroupedOptimizer, embeddings_are_sparse, split_parameters
from ctrbench.data.batch import TensorDataset
from ctrbench.inference import predict
from ctrbench.metrics import binary_metrics
from ctrbench.train.trainer import TrainOutputs, load_checkpoint, train

OPTIMIZER = {"embedding": {"name": "sgd", "lr": 5.0}, "dense": {"name": "adamw", "lr": 0.003, "weight_decay": 1e-5}}
TRAINING = {"device": "cpu", "batch_size": 256, "steps_per_epoch": None, "max_epochs": 3, "patience": 2,
            "eval_batch_size": 1000, "optimizer": OPTIMIZER}


def _train(paths, out_dir, arch="dcnv2", training=TRAINING, seed=1):
    outputs = TrainOutputs(out_dir / "checkpoint.pt", out_dir / "train_metrics.json", out_dir / "train_log.jsonl")
    params = {"embedding_dim": 4, "mlp_hidden": [16]} if arch == "dcnv2" else {}
    metrics = train(train_path=paths["train"], valid_path=paths["valid"], feature_map_path=paths["feature_map"],
                    arch=arch, params=params, training=training, seed=seed, outputs=outputs, progress=False)
    return metrics, outputs


def _one_step(model, optimizer_config):
    optimizer = GroupedOptimizer(model, optimizer_config)
    categorical = torch.randint(0, 20, (8, 3))
    from ctrbench.data.batch import Batch
    batch = Batch(labels=torch.rand(8, 1).round(), categorical=categorical, dense=torch.randn(8, 2))
    loss = model.loss(model(batch), batch)
    loss.backward()
    optimizer.step()
    return optimizer


def test_embeddings_take_sgd_without_state_and_dense_weights_adamw(tiny_processed):
    fm = FeatureMap.load(tiny_processed["feature_map"])
    model = build_model("dcnv2", fm, {"embedding_dim": 4}, sparse_embeddings=embeddings_are_sparse(OPTIMIZER))
    groups = split_parameters(model)
    assert groups["embedding"] and groups["dense"]
    optimizer = _one_step(model, OPTIMIZER)
    assert isinstance(optimizer.optimizers["embedding"], torch.optim.SGD)
    assert isinstance(optimizer.optimizers["dense"], torch.optim.AdamW)
    adamw_state = optimizer.optimizers["dense"].state
    assert all(id(p) not in map(id, adamw_state) for p in groups["embedding"])
    assert all(p in adamw_state for p in groups["dense"])
    sizes = optimizer.state_bytes()
    assert sizes["embedding"] == 0
    # AdamW keeps two fp32 moments per dense weight, plus a step counter per tensor
    dense_numel = sum(p.numel() for p in groups["dense"])
    assert 2 * 4 * dense_numel <= sizes["dense"] <= 2 * 4 * dense_numel + 8 * len(groups["dense"])


def test_adam_on_embeddings_costs_two_moments_per_table_entry(tiny_processed):
    fm = FeatureMap.load(tiny_processed["feature_map"])
    config = {**OPTIMIZER, "embedding": {"name": "adam", "lr": 0.001}}
    assert not embeddings_are_sparse(config)
    model = build_model("dcnv2", fm, {"embedding_dim": 4}, sparse_embeddings=False)
    sizes = _one_step(model, config).state_bytes()
    table_numel = sum(p.numel() for p in split_parameters(model)["embedding"])
    assert sizes["embedding"] >= 2 * 4 * table_numel


def test_training_learns_and_writes_outputs(tiny_processed, tmp_path):
    metrics, outputs = _train(tiny_processed, tmp_path)
    assert metrics["best_valid"]["auc"] > 0.75  # the planted signal is strong
    log_lines = [json.loads(line) for line in outputs.log_jsonl.read_text().splitlines()]
    assert [r["epoch"] for r in log_lines] == [e["epoch"] for e in metrics["epochs"]]
    assert metrics["cost"]["optimizer_state_bytes_by_group"]["embedding"] == 0
    assert metrics["cost"]["params_embedding"] == 3 * 20 * 4
    assert metrics["cost"]["peak_memory_kind"] == "cpu_peak_rss" and metrics["cost"]["peak_memory_bytes"] > 0
    written = json.loads(outputs.metrics.read_text())
    assert written["best_epoch"] == metrics["best_epoch"]
    # the kept checkpoint is the best epoch's: re-scoring it on valid gives exactly best_valid
    model, _ = load_checkpoint(outputs.checkpoint, torch.device("cpu"))
    fm = FeatureMap.load(tiny_processed["feature_map"])
    scored = predict(model, TensorDataset.from_parquet(tiny_processed["valid"], fm), 1000, torch.device("cpu"))
    assert binary_metrics(scored["labels"][:, 0], scored["probs"][:, 0]) == metrics["best_valid"]
    assert not list(tmp_path.glob(".*partial"))


def test_same_seed_gives_identical_metrics_and_other_seed_differs(tiny_processed, tmp_path):
    runs = []
    for i, seed in enumerate([3, 3, 4]):
        out = tmp_path / f"run{i}"
        out.mkdir()
        metrics, _ = _train(tiny_processed, out, seed=seed)
        runs.append([(e["train_loss"], e["valid_logloss"], e["valid_auc"]) for e in metrics["epochs"]])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_early_stopping_keeps_the_best_epoch(tiny_processed, tmp_path):
    # a high learning rate makes validation AUC stop improving quickly
    training = {**TRAINING, "max_epochs": 8, "patience": 1,
                "optimizer": {"embedding": {"name": "sgd", "lr": 20.0}, "dense": {"name": "adamw", "lr": 0.05}}}
    metrics, _ = _train(tiny_processed, tmp_path, training=training)
    aucs = [e["valid_mean_auc"] for e in metrics["epochs"]]
    assert metrics["best_epoch"] == 1 + aucs.index(max(aucs))
    assert metrics["stopped_early"] and len(aucs) - metrics["best_epoch"] == 1


def test_divergence_is_reported_not_scored(tiny_processed, tmp_path):
    training = {**TRAINING, "optimizer": {"embedding": {"name": "sgd", "lr": 1e6}, "dense": {"name": "adamw", "lr": 10.0}}}
    with pytest.raises(FloatingPointError, match="diverged in epoch"):
        _train(tiny_processed, tmp_path, training=training)
    assert not (tmp_path / "train_metrics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feature_map.json", "gold.parquet", "train.parquet", "valid.parquet"]


def test_gold_eval_scores_the_best_checkpoint(tiny_processed, tmp_path):
    metrics, outputs = _train(tiny_processed, tmp_path)
    result = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"],
                           output_path=tmp_path / "gold_eval.json", device="cpu")
    assert result["rows"] == 512
    assert result["gold_sha256"] == sha256_file(tiny_processed["gold"])
    assert result["checkpoint_epoch"] == metrics["best_epoch"]
    assert result["metrics"]["auc"] > 0.75
    assert json.loads((tmp_path / "gold_eval.json").read_text())["metrics"] == result["metrics"]


def test_unknown_optimizer_is_refused(tiny_processed, tmp_path):
    training = {**TRAINING, "optimizer": {**OPTIMIZER, "dense": {"name": "lion", "lr": 0.1}}}
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        _train(tiny_processed, tmp_path, training=training)
