import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ctrbench.data.schema import FeatureMap
from ctrbench.data.sources import InMemorySource
from ctrbench.evaluate import evaluate_gold
from ctrbench.inference import predict
from ctrbench.metrics import binary_metrics
from ctrbench.models.base import FROZEN
from ctrbench.models.registry import build_model
from ctrbench.provenance import sha256_file
from ctrbench.results import GoldRecord, TrainRecord, read_record
from ctrbench.train.checkpoint import load_checkpoint
from ctrbench.train.cost import parameter_cost
from ctrbench.train.optim import GroupedOptimizer, check_groups, embeddings_are_sparse
from ctrbench.train.step import train_step
from ctrbench.train.trainer import TrainOutputs, train

OPTIMIZER = {"embedding": {"name": "sgd", "lr": 5.0}, "dense": {"name": "adamw", "lr": 0.003, "weight_decay": 1e-5}}
TRAINING = {"device": "cpu", "batch_size": 256, "steps_per_epoch": None, "max_epochs": 3, "patience": 2,
            "eval_batch_size": 1000, "optimizer": OPTIMIZER}  # fmt: skip


def _train(paths, out_dir, arch="dcnv2", training=TRAINING, seed=1, params=None):
    outputs = TrainOutputs(out_dir / "checkpoint.pt", out_dir / "train_metrics.json", out_dir / "train_log.jsonl")
    params = params if params is not None else ({"embedding_dim": 4, "mlp_hidden": [16]} if arch == "dcnv2" else {})
    record = train(train_path=paths["train"], valid_path=paths["valid"], feature_map_path=paths["feature_map"],
                   arch=arch, params=params, training=training, seed=seed, outputs=outputs, progress=False)  # fmt: skip
    return record, outputs


def _one_step(model, optimizer_config):
    from ctrbench.data.batch import Batch

    optimizer = GroupedOptimizer(model.parameter_groups(), optimizer_config, model.no_weight_decay())
    batch = Batch(labels=torch.rand(8, 1).round(), categorical=torch.randint(0, 20, (8, 3)), dense=torch.randn(8, 2))
    train_step(model, model, optimizer, batch, torch.device("cpu"))
    return optimizer


def test_embeddings_take_sgd_without_state_and_dense_weights_adamw(tiny_processed):
    fm = FeatureMap.load(tiny_processed["feature_map"])
    model = build_model("dcnv2", fm, {"embedding_dim": 4}, sparse_embeddings=embeddings_are_sparse(OPTIMIZER))
    groups = model.parameter_groups()
    assert groups["embedding"] and groups["dense"] and not groups[FROZEN]
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
    table_numel = sum(p.numel() for p in model.parameter_groups()["embedding"])
    assert sizes["embedding"] >= 2 * 4 * table_numel


def test_frozen_parameters_stay_in_the_bill_and_are_not_trained(tiny_processed):
    """A model may freeze a part (a pretrained backbone): it is counted as frozen, never optimised, never changed."""
    fm = FeatureMap.load(tiny_processed["feature_map"])
    model = build_model("dcnv2", fm, {"embedding_dim": 4, "mlp_hidden": [16]}, sparse_embeddings=True)
    for param in model.cross.parameters():
        param.requires_grad_(False)
    before = [p.detach().clone() for p in model.cross.parameters()]
    groups = model.parameter_groups()
    assert {id(p) for p in groups[FROZEN]} == {id(p) for p in model.cross.parameters()}
    optimizer = _one_step(model, OPTIMIZER)
    assert FROZEN not in optimizer.optimizers
    assert all(torch.equal(a, b) for a, b in zip(before, model.cross.parameters()))
    cost = parameter_cost(groups)
    assert cost[FROZEN]["params"] == sum(p.numel() for p in model.cross.parameters()) > 0
    assert sum(c["params"] for c in cost.values()) == sum(p.numel() for p in model.parameters())


def test_a_model_declares_its_own_groups_and_an_extra_group_trains_with_dense_settings(tiny_processed):
    fm = FeatureMap.load(tiny_processed["feature_map"])
    model = build_model("dcnv2", fm, {"embedding_dim": 4, "mlp_hidden": [16]}, sparse_embeddings=True)
    default = model.parameter_groups()
    head = list(model.head.parameters())
    groups = {"embedding": default["embedding"], "head": head, "dense": [p for p in default["dense"] if all(p is not h for h in head)], FROZEN: []}
    check_groups(model, groups)
    optimizer = GroupedOptimizer(groups, {**OPTIMIZER, "head": {"name": "sgd", "lr": 0.5}}, model.no_weight_decay())
    assert isinstance(optimizer.optimizers["head"], torch.optim.SGD)
    assert GroupedOptimizer(groups, OPTIMIZER, set()).names["head"] == "adamw"  # no settings of its own: dense's
    with pytest.raises(ValueError, match="leaves out"):
        check_groups(model, {**groups, "head": []})
    with pytest.raises(ValueError, match="in two groups"):
        check_groups(model, {**groups, FROZEN: head})


def test_training_learns_and_writes_outputs(tiny_processed, tmp_path):
    record, outputs = _train(tiny_processed, tmp_path)
    assert record.best_valid["label"].auc > 0.75  # the planted signal is strong
    log_lines = [json.loads(line) for line in outputs.log_jsonl.read_text().splitlines()]
    assert [r["epoch"] for r in log_lines] == [e.epoch for e in record.epochs]
    groups = record.cost.parameter_groups
    assert groups["embedding"].optimizer_state_bytes == 0 and groups["embedding"].params == 3 * 20 * 4
    assert record.cost.peak_memory_kind == "cpu_peak_rss" and record.cost.peak_memory_bytes > 0
    assert record.cost.precision == "fp32" and record.cost.processes == 1 and record.cost.loader == "memory"
    assert read_record(outputs.metrics, TrainRecord) == record
    # the kept checkpoint is the best epoch's: re-scoring it on valid gives exactly best_valid
    model, _ = load_checkpoint(outputs.checkpoint, torch.device("cpu"))
    fm = FeatureMap.load(tiny_processed["feature_map"])
    scored = predict(model, InMemorySource(tiny_processed["valid"], fm).eval_batches(1000), torch.device("cpu"))
    assert binary_metrics(scored["labels"][:, 0], scored["probs"][:, 0]) == record.best_valid["label"].model_dump()
    assert not list(tmp_path.glob(".*partial"))


def test_same_seed_gives_identical_metrics_and_other_seed_differs(tiny_processed, tmp_path):
    runs = []
    for i, seed in enumerate([3, 3, 4]):
        out = tmp_path / f"run{i}"
        out.mkdir()
        record, _ = _train(tiny_processed, out, seed=seed)
        runs.append([(e.train_loss, e.valid["label"].logloss, e.valid["label"].auc) for e in record.epochs])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_early_stopping_keeps_the_best_epoch(tiny_processed, tmp_path):
    # a high learning rate makes validation AUC stop improving quickly
    training = {**TRAINING, "max_epochs": 8, "patience": 1,
                "optimizer": {"embedding": {"name": "sgd", "lr": 20.0}, "dense": {"name": "adamw", "lr": 0.05}}}  # fmt: skip
    record, _ = _train(tiny_processed, tmp_path, training=training)
    aucs = [e.monitored for e in record.epochs]
    assert record.best_epoch == 1 + aucs.index(max(aucs))
    assert record.stopped_early and len(aucs) - record.best_epoch == 1


def test_divergence_is_reported_not_scored(tiny_processed, tmp_path):
    training = {**TRAINING, "optimizer": {"embedding": {"name": "sgd", "lr": 1e6}, "dense": {"name": "adamw", "lr": 10.0}}}
    with pytest.raises(FloatingPointError, match="diverged in epoch"):
        _train(tiny_processed, tmp_path, training=training)
    assert not (tmp_path / "train_metrics.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet", "feature_map.json", "gold.parquet", "train.parquet", "valid.parquet"]


def test_gold_eval_scores_the_best_checkpoint(tiny_processed, tmp_path):
    record, outputs = _train(tiny_processed, tmp_path)
    result = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"],
                           output_path=tmp_path / "gold_eval.json", device="cpu")  # fmt: skip
    assert result.rows == 512
    assert result.gold_sha256 == sha256_file(tiny_processed["gold"])
    assert result.checkpoint_epoch == record.best_epoch
    assert result.tasks["label"].auc > 0.75
    assert result.precision == "fp32" and result.extra_outputs == []
    assert read_record(tmp_path / "gold_eval.json", GoldRecord) == result


def test_unknown_optimizer_is_refused(tiny_processed, tmp_path):
    training = {**TRAINING, "optimizer": {**OPTIMIZER, "dense": {"name": "lion", "lr": 0.1}}}
    with pytest.raises(ValueError, match="unknown optimizer 'lion'"):
        _train(tiny_processed, tmp_path, training=training)


def test_bf16_trains_under_autocast_and_says_so(tiny_processed, tmp_path):
    (tmp_path / "fp32").mkdir(), (tmp_path / "bf16").mkdir()
    fp32, _ = _train(tiny_processed, tmp_path / "fp32")
    bf16, outputs = _train(tiny_processed, tmp_path / "bf16", training={**TRAINING, "precision": "bf16"})
    assert bf16.cost.precision == "bf16"
    # the same model and data in bf16: close to fp32, not equal (it ran in another precision)
    assert bf16.epochs[0].train_loss != fp32.epochs[0].train_loss
    assert abs(bf16.epochs[0].train_loss - fp32.epochs[0].train_loss) < 0.02
    assert bf16.best_valid["label"].auc > 0.75
    gold = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"],
                         output_path=tmp_path / "gold.json", device="cpu")  # fmt: skip
    assert gold.precision == "bf16"  # scored in the precision it trained in


def test_streaming_loader_trains_like_in_memory(tiny_processed, tmp_path):
    """The trainer does not know its source: streaming row groups through a shuffle buffer learns the same signal."""
    import pyarrow.parquet as pq

    split = tmp_path / "train_groups.parquet"
    pq.write_table(pq.read_table(tiny_processed["train"]), split, row_group_size=256)
    paths = {**tiny_processed, "train": split}
    training = {**TRAINING, "loader": {"kind": "streaming", "shuffle_buffer_rows": 512}}
    record, _ = _train(paths, tmp_path, training=training)
    assert record.cost.loader == "streaming"
    assert record.best_valid["label"].auc > 0.75


def test_masked_labels_change_neither_the_loss_nor_the_metrics(tmp_path):
    """Rows where a task's label is unknown (mask 0) may hold any label: the model trains and scores the same."""
    import numpy as np
    import pyarrow as pa
    from conftest import write_processed_split

    from ctrbench.data.schema import Feature, Task

    fm = FeatureMap(
        dataset="masked", tasks=[Task("label", mask="label_known"), Task("other")],
        features=[Feature("d0", "dense")] + [Feature(f"c{i}", "categorical", vocab_size=20) for i in range(2)],
    )  # fmt: skip
    runs = {}
    for flip in (False, True):
        folder = tmp_path / f"flip{flip}"
        folder.mkdir()
        paths = {"feature_map": folder / "feature_map.json"}
        fm.save(paths["feature_map"])
        for i, (split, rows) in enumerate({"train": 1024, "valid": 512}.items()):
            paths[split] = folder / f"{split}.parquet"
            write_processed_split(paths[split], fm, rows, seed=i)
            table = pq_read(paths[split])
            rng = np.random.default_rng(10 + i)
            known = rng.random(rows) < 0.6
            label = table.column("label").to_numpy().copy()
            if flip:  # the unknown rows' labels flipped: must not matter
                label[~known] = 1 - label[~known]
            table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(label))
            table = table.append_column("label_known", pa.array(known.astype(np.float32)))
            table = table.append_column("other", pa.array(rng.integers(0, 2, rows).astype(np.float32)))
            pq_write(table, paths[split])
        runs[flip], _ = _train(paths, folder, training={**TRAINING, "max_epochs": 2})
    assert [e.train_loss for e in runs[False].epochs] == [e.train_loss for e in runs[True].epochs]
    assert runs[False].best_valid == runs[True].best_valid
    assert 0 < runs[False].best_valid["label"].rows < 512  # scored on the known rows only
    assert runs[False].best_valid["other"].rows == 512


def pq_read(path):
    import pyarrow.parquet as pq

    return pq.read_table(path)


def pq_write(table, path):
    import pyarrow.parquet as pq

    pq.write_table(table, path)


def test_task_weights_weight_the_tasks_losses():
    from ctrbench.data.batch import Batch
    from ctrbench.data.schema import Feature, Task

    fm = FeatureMap(dataset="w", tasks=[Task("a", weight=3.0), Task("b", weight=1.0)], features=[Feature("d", "dense")])
    model = build_model("dcnv2", fm, {"mlp_hidden": []})
    batch = Batch(labels=torch.tensor([[1.0, 0.0], [0.0, 0.0]]), dense=torch.randn(2, 1))
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    bce = nn.functional.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none").mean(0)
    expected = (3 * bce[0] + bce[1]) / 4
    from ctrbench.models.base import ModelOutput

    torch.testing.assert_close(model.loss(ModelOutput(logits), batch), expected)


@pytest.mark.parametrize("arch, params", [("dcnv2", {"embedding_dim": 4, "mlp_hidden": [16], "batch_norm": True}),
                                          ("ft_transformer", {"d_token": 8, "num_layers": 1})])  # fmt: skip
def test_norms_and_biases_get_no_weight_decay(tiny_processed, arch, params):
    """AdamW with a large decay and zero gradients: decayed weights shrink, norms and biases stay as they were."""
    fm = FeatureMap.load(tiny_processed["feature_map"])
    model = build_model(arch, fm, params)
    named = dict(model.named_parameters())
    norms = {f"{m}.{p}" for m, module in model.named_modules() if isinstance(module, (nn.LayerNorm, nn.BatchNorm1d))
             for p, _ in module.named_parameters(recurse=False)}  # fmt: skip
    expected = {name for name in named if name.endswith("bias")} | norms
    assert norms and {name for name, p in named.items() if id(p) in model.no_weight_decay()} == expected
    embedding_ids = {id(p) for p in model.parameter_groups()["embedding"]}  # adam: no decay at all
    # a given decay, and AdamW's own default (0.01) when the config names none
    for dense in ({"name": "adamw", "lr": 0.1, "weight_decay": 0.5}, {"name": "adamw", "lr": 0.1}):
        optimizer = GroupedOptimizer(model.parameter_groups(), {"embedding": {"name": "adam", "lr": 0.1}, "dense": dense},
                                     model.no_weight_decay())  # fmt: skip
        before = {name: p.detach().clone() for name, p in named.items()}
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        for name, param in named.items():
            if id(param) not in embedding_ids:
                assert (not torch.equal(param, before[name])) == (name not in expected), (dense, name)


def test_forward_flops_per_sample_counts_a_forward_pass_and_leaves_the_model_as_it_was():
    """2 x in x out per sample for one linear map; INFNet (whose task tokens are views of parameters, which the
    counter's module tracker refused under no_grad) is counted too, and training mode and gradients are untouched."""
    import sys

    from ctrbench.train.cost import forward_flops_per_sample

    linear = torch.nn.Linear(12, 5, bias=False)
    assert forward_flops_per_sample(linear, torch.randn(7, 12)) == 2 * 12 * 5
    assert linear.training and linear.weight.grad is None

    class Attention(torch.nn.Module):  # softmax(Q K^T) V over L = 8 tokens of width 4: 2 L^2 d each product
        def forward(self, x):
            return torch.nn.functional.scaled_dot_product_attention(x, x, x)

    # counted on SDPA's math path: on a CPU the flash kernel it would take has no formula and counted as nothing
    assert forward_flops_per_sample(Attention(), torch.randn(3, 1, 8, 4)) == 2 * (2 * 8 * 8 * 4)
    sys.path.insert(0, str(Path(__file__).parent))
    import test_infnet

    model = test_infnet.build()
    model.train()
    assert forward_flops_per_sample(model, test_infnet.make_batch()) > 0
    assert model.training and all(p.grad is None for p in model.parameters())
