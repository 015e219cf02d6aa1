"""Data-parallel training: 2 gloo processes under torchrun against 1 process with the same global batch."""

import pytest

from ctrbench.results import TrainRecord, read_record
from ctrbench.train.distributed import sparse_problem
from ctrbench.train.launch import train_job
from ctrbench.train.trainer import TrainOutputs

# no dropout: each process draws its own dropout masks, which one process cannot reproduce
PARAMS = {"embedding_dim": 4, "mlp_hidden": [16], "dropout": 0.0}
TRAINING = {"device": "cpu", "batch_size": 256, "steps_per_epoch": None, "max_epochs": 2, "patience": 2,
            "eval_batch_size": 100,
            "optimizer": {"embedding": {"name": "sgd", "lr": 5.0}, "dense": {"name": "adamw", "lr": 0.003}}}  # fmt: skip
# DDP averages the two halves' gradients, so the steps are the single process's up to the order of floating-point
# sums (an all-reduce of two partial means against one mean of float32 values). Measured over these 16 steps: the
# same validation AUC, logloss 3e-9 and mean train loss 3e-8 apart; 1e-6 leaves room for another CPU's kernels
# while any real difference (a batch seen twice or not at all, unsynchronised weights) moves them by 1e-3 or more.
TOLERANCE = 1e-6


def _run(paths, folder, processes):
    folder.mkdir()
    outputs = TrainOutputs(folder / "checkpoint.pt", folder / "train_metrics.json", folder / "train_log.jsonl")
    training = {**TRAINING, "distributed": {"processes": processes}}
    train_job(threads=2, train_path=paths["train"], valid_path=paths["valid"], feature_map_path=paths["feature_map"],
              arch="dcnv2", params=PARAMS, training=training, seed=7, outputs=outputs, progress=False)  # fmt: skip
    return read_record(outputs.metrics, TrainRecord), folder


@pytest.mark.slow
def test_two_gloo_processes_train_like_one_with_the_same_global_batch(tiny_processed, tmp_path):
    one, _ = _run(tiny_processed, tmp_path / "one", 1)
    two, folder = _run(tiny_processed, tmp_path / "two", 2)
    assert (one.cost.processes, two.cost.processes) == (1, 2)
    assert two.cost.sparse_embeddings  # sparse gradients are all-reduced by gloo
    for a, b in zip(one.epochs, two.epochs, strict=True):
        assert b.valid["label"].auc == pytest.approx(a.valid["label"].auc, abs=TOLERANCE)
        assert b.valid["label"].logloss == pytest.approx(a.valid["label"].logloss, abs=TOLERANCE)
        assert b.train_loss == pytest.approx(a.train_loss, abs=TOLERANCE)
    assert two.best_epoch == one.best_epoch
    # written once, by rank 0, and nothing else left behind
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt", "train_log.jsonl", "train_metrics.json"]
    assert len((folder / "train_log.jsonl").read_text().splitlines()) == len(two.epochs)


def test_sparse_embeddings_under_nccl_are_refused_with_the_way_out():
    assert sparse_problem("gloo", True) is None and sparse_problem("nccl", False) is None
    assert "adam or adamw" in sparse_problem("nccl", True)
