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


@pytest.mark.slow
def test_processes_with_an_empty_share_of_a_streamed_grouped_valid_split_stay_in_step(tiny_processed, tmp_path):
    """The valid split in one row group, streamed: process 1 gets no validation rows, yet every process takes
    part in every gather (gAUC's groups included) and the run ends with the metrics of the whole split."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ctrbench.data.schema import FeatureMap

    fm = FeatureMap.load(tiny_processed["feature_map"])
    grouped = FeatureMap(dataset=fm.dataset, tasks=fm.tasks, features=fm.features, group_by="user")
    paths = dict(tiny_processed)
    paths["feature_map"] = tmp_path / "feature_map.json"
    grouped.save(paths["feature_map"])
    for split in ("train", "valid"):
        table = pq.read_table(tiny_processed[split])
        table = table.append_column("user", pa.array(table.column("c0").to_numpy().astype("int64")))
        paths[split] = tmp_path / f"{split}.parquet"
        pq.write_table(table, paths[split], row_group_size=256 if split == "train" else 10_000)
    folder = tmp_path / "run"
    folder.mkdir()
    outputs = TrainOutputs(folder / "checkpoint.pt", folder / "train_metrics.json", folder / "train_log.jsonl")
    training = {**TRAINING, "loader": {"kind": "streaming", "shuffle_buffer_rows": 512}, "distributed": {"processes": 2}}
    train_job(threads=2, train_path=paths["train"], valid_path=paths["valid"], feature_map_path=paths["feature_map"],
              arch="dcnv2", params=PARAMS, training=training, seed=7, outputs=outputs, progress=False)  # fmt: skip
    record = read_record(outputs.metrics, TrainRecord)
    assert record.cost.processes == 2 and record.cost.loader == "streaming"
    assert record.best_valid["label"].rows == 512 and record.best_valid["label"].gauc is not None
