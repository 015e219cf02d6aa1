"""CUDA paths: run where a GPU is present (the GPU machines of the project), skipped elsewhere."""

import pytest
import torch

from ctrbench.evaluate import evaluate_gold
from ctrbench.train.trainer import TrainOutputs, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

TRAINING = {"device": "cuda", "batch_size": 256, "steps_per_epoch": None, "max_epochs": 2, "patience": 2,
            "eval_batch_size": 1000,
            "optimizer": {"embedding": {"name": "sgd", "lr": 1.0}, "dense": {"name": "adamw", "lr": 0.003}}}


@pytest.mark.parametrize("arch", ["dcnv2", "autoint", "ft_transformer", "deepfm"])
def test_cuda_training_accounts_cuda_memory_and_scores_like_cpu(tiny_processed, tmp_path, arch):
    outputs = TrainOutputs(tmp_path / "ckpt.pt", tmp_path / "metrics.json", tmp_path / "log.jsonl")
    metrics = train(train_path=tiny_processed["train"], valid_path=tiny_processed["valid"],
                    feature_map_path=tiny_processed["feature_map"], arch=arch, params={}, training=TRAINING,
                    seed=0, outputs=outputs, progress=False)
    cost = metrics.cost
    assert cost.device == "cuda" and cost.peak_memory_kind == "cuda_max_allocated"
    # at least the weights themselves were on the GPU at the peak
    assert cost.peak_memory_bytes >= sum(g.bytes for g in cost.parameter_groups.values())
    on_gpu = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"],
                           output_path=tmp_path / "gpu.json", device="cuda")
    on_cpu = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"],
                           output_path=tmp_path / "cpu.json", device="cpu")
    assert on_gpu.tasks["label"].auc == pytest.approx(on_cpu.tasks["label"].auc, abs=1e-4)
    assert on_gpu.tasks["label"].logloss == pytest.approx(on_cpu.tasks["label"].logloss, abs=1e-4)
