"""BST, Mamba4Rec, MDAF, DIN and sum pooling: shapes, padding and empty histories, the gate, and learning a sequential signal."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, SequenceGroup, tasks_of
from ctrbench.models.registry import build_model
from ctrbench.train.checkpoint import load_checkpoint
from ctrbench.train.trainer import TrainOutputs, train

L = 6
ITEMS, CATEGORIES, USERS = 40, 8, 10


def sequence_map(n_labels: int = 1) -> FeatureMap:
    return FeatureMap(
        dataset="tiny_seq",
        tasks=tasks_of([f"y{i}" for i in range(n_labels)]),
        features=[
            Feature("user_id", "categorical", vocab_size=USERS),
            Feature("item_id", "categorical", vocab_size=ITEMS),
            Feature("category_id", "categorical", vocab_size=CATEGORIES),
            Feature("hour", "categorical", vocab_size=25),
            Feature("price", "dense"),
            Feature("item_history", "sequence", vocab_size=ITEMS, shares_vocab_with="item_id", group="history"),
            Feature("category_history", "sequence", vocab_size=CATEGORIES, shares_vocab_with="category_id", group="history"),
        ],
        sequence_groups=[SequenceGroup("history", L)],
        group_by="user_id",
    )


FM = sequence_map()

# small CPU sizes for every model; MDAF once per sequence encoder
CONFIGS = {
    "bst": ("bst", {"embedding_dim": 8, "num_heads": 2, "mlp_hidden": [16]}),
    "bst_mean": ("bst", {"embedding_dim": 8, "num_heads": 2, "pooling": "mean", "d_model": 12, "mlp_hidden": [16]}),
    "mamba4rec": ("mamba4rec", {"embedding_dim": 8, "d_model": 8, "d_state": 4, "num_layers": 2, "mlp_hidden": [16]}),
    "mdaf_mamba": ("mdaf", {"sequence_encoder": "mamba", "static_embedding_dim": 4, "sequence_embedding_dim": 8,
                            "d_model": 8, "d_state": 4, "fusion_dim": 16, "mlp_hidden": [16, 8]}),
    "mdaf_bst": ("mdaf", {"sequence_encoder": "bst", "static_embedding_dim": 4, "sequence_embedding_dim": 8,
                          "d_model": 8, "num_heads": 2, "fusion_dim": 16, "mlp_hidden": [16, 8]}),
    "din": ("din", {"embedding_dim": 8, "attention_hidden": [8], "mlp_hidden": [16]}),
    "din_softmax_dice": ("din", {"embedding_dim": 8, "attention_hidden": [8], "use_softmax": True, "mlp_activation": "dice",
                                 "mlp_hidden": [16]}),
    "sum_pooling": ("sum_pooling", {"embedding_dim": 8, "mlp_hidden": [16]}),
    "mean_pooling": ("sum_pooling", {"embedding_dim": 8, "pooling": "mean", "mlp_hidden": [16]}),
}  # fmt: skip


def histories(lengths: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-aligned histories (most recent last) of the given lengths, left-padded with 0."""
    g = torch.Generator().manual_seed(seed)
    items = torch.zeros(len(lengths), L, dtype=torch.long)
    for row, n in enumerate(lengths):
        if n:
            items[row, L - n :] = torch.randint(1, ITEMS, (n,), generator=g)
    return items, torch.where(items > 0, items % (CATEGORIES - 1) + 1, 0)


def make_batch(lengths=(0, 1, 3, L, L, 2), seed=0, n_labels=1) -> Batch:
    g = torch.Generator().manual_seed(seed + 100)
    size = len(lengths)
    items, categories = histories(list(lengths), seed)
    target = torch.randint(1, ITEMS, (size,), generator=g)
    categorical = torch.stack(
        [torch.randint(1, USERS, (size,), generator=g), target, target % (CATEGORIES - 1) + 1,
         torch.randint(1, 25, (size,), generator=g)], dim=1,
    )  # fmt: skip
    return Batch(
        labels=torch.randint(0, 2, (size, n_labels), generator=g).float(),
        categorical=categorical,
        dense=torch.randn(size, 1, generator=g),
        sequences={"item_history": items, "category_history": categories},
        group=categorical[:, 0],
    )


def build(name: str, fm: FeatureMap = FM):
    torch.manual_seed(0)
    arch, params = CONFIGS[name]
    return build_model(arch, fm, params)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense_grad", "sparse_grad"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_backward_with_padded_and_empty_histories(name, sparse):
    torch.manual_seed(0)
    arch, params = CONFIGS[name]
    model = build_model(arch, FM, params, sparse_embeddings=sparse)
    batch = make_batch()
    out = model(batch)
    assert out.logits.shape == (6, 1) and torch.isfinite(out.logits).all()
    loss = model.loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss)
    dense = lambda g: g.coalesce().values() if g.is_sparse else g
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(dense(p.grad)).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad}"


@pytest.mark.parametrize("name", list(CONFIGS))
def test_several_labels(name):
    model = build(name, sequence_map(n_labels=3))
    assert model(make_batch(n_labels=3)).logits.shape == (6, 3)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_padding_is_ignored(name):
    """The padding row of the item and category tables never reaches the output: the events are all there is."""
    model = build(name).eval()
    batch = make_batch()
    before = model(batch).logits
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                tokens = model.tokens
                table = tokens.embedding
                if module is table.embedding:
                    for _, field in tokens.pairs:
                        module.weight[table.offsets[table.field_index[field]]] += 3.0  # row of id 0 of the field
    torch.testing.assert_close(model(batch).logits, before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_history_events_matter(name):
    """The most recent event, and an older one, change the prediction (nothing is masked by mistake)."""
    model = build(name).eval()
    batch = make_batch(lengths=(L, L, 3))
    base = model(batch).logits
    for position in (L - 1, L - 3):
        changed = make_batch(lengths=(L, L, 3))
        changed.sequences["item_history"][:, position] = changed.sequences["item_history"][:, position] % (ITEMS - 1) + 1
        assert (model(changed).logits - base).abs().max() > 1e-6, position


def test_mamba_reads_the_last_real_event_not_the_padding():
    """Mamba4Rec's state is taken at the last event, so padding after a history behaves like no padding."""
    model = build("mamba4rec").eval()
    encoder = model.encoder
    x = torch.randn(2, L, model.tokens.token_dim)
    mask = torch.tensor([[False, False, True, True, True, True], [False] * L])
    state = encoder(x, mask)
    # the same four events alone, without padding
    alone = encoder(x[:1, 2:], mask[:1, 2:])
    torch.testing.assert_close(state[:1], alone, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(state[1], encoder.empty.detach())  # empty history -> the learned vector


@pytest.mark.parametrize("name", ["mdaf_mamba", "mdaf_bst"])
def test_mdaf_gate_is_in_open_unit_interval(name):
    model = build(name)
    assert (model(make_batch()).aux["gate"] == 0.5).all()  # starts balanced: both branches learn
    with torch.no_grad():
        model.gate.weight.normal_(std=0.5)  # as after training: the gate depends on the sample
    gate = model(make_batch()).aux["gate"]
    assert gate.shape == (6,)
    assert ((gate > 0) & (gate < 1)).all() and gate.std() > 0
    # the gate mixes the branches: forced to one side it gives that branch's head alone
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        model.gate.weight.zero_()
        for bias, branch in ((50.0, model.static_branch), (-50.0, model.sequence_branch)):
            model.gate.bias.fill_(bias)
            torch.testing.assert_close(model(batch).logits, model.head(branch(batch)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["mamba4rec", "mdaf_mamba", "bst"])
def test_mixed_precision_forward_backward(name):
    """Under autocast (bf16 here, as AMP on a GPU) the CPU scan still runs in float32 and trains."""
    model = build(name)
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch)
        loss = model.loss(out, batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_inference_scan_equals_the_training_scan():
    """Without gradients the scan keeps one state instead of all of them; the outputs are the same."""
    model = build("mamba4rec").eval()
    batch = make_batch()
    with torch.no_grad():
        inference = model(batch).logits
    training = model(batch).logits  # grad enabled: the recurrent Function with its saved states
    torch.testing.assert_close(inference, training.detach(), rtol=1e-6, atol=1e-7)


def test_model_info_records_the_mamba_backend():
    assert build("mamba4rec").model_info() == {"sequence_encoder": "mamba", "mamba_backend": "torch"}
    assert build("mdaf_mamba").model_info() == {"sequence_encoder": "mamba", "mamba_backend": "torch"}
    assert build("mdaf_bst").model_info() == {"sequence_encoder": "bst"}


def test_mdaf_sequence_table_starts_like_its_standalone_model():
    """MDAF's sequence branch is initialised as BST or Mamba4Rec alone (N(0, 0.05) and N(0, 0.02)):
    with Mamba4Rec's init, MDAF-BST's transformer sat on BST's early plateau in the default run."""
    for name, standalone in (("mdaf_bst", "bst"), ("mdaf_mamba", "mamba4rec")):
        branch_std = build(name).tokens.embedding.embedding.weight.std().item()
        standalone_std = build(standalone).tokens.embedding.embedding.weight.std().item()
        assert branch_std == pytest.approx(standalone_std, rel=0.15), name
    assert build("mdaf_bst").tokens.embedding.embedding.weight.std() > 2 * build("mdaf_mamba").tokens.embedding.embedding.weight.std()


def test_flat_dataset_is_refused_with_a_clear_error():
    flat = FeatureMap(dataset="criteo", tasks=tasks_of(["label"]), features=[Feature("C1", "categorical", vocab_size=5)])
    for arch in ("bst", "mamba4rec", "mdaf"):
        with pytest.raises(ValueError, match="no behaviour sequence"):
            build_model(arch, flat)
    with pytest.raises(ValueError, match="sequence_encoder"):
        build_model("mdaf", FM, {"sequence_encoder": "lstm"})


def random_histories(rng: np.random.Generator, rows: int, min_length: int = 0):
    """Left-padded histories of ``min_length``..L random events and uniform targets: (lengths, items, categories,
    target), each event's category a function of its item as the target's is."""
    lengths = rng.integers(min_length, L + 1, rows)
    items = rng.integers(1, ITEMS, (rows, L))
    items[np.arange(L)[None, :] < (L - lengths)[:, None]] = 0
    categories = np.where(items > 0, items % (CATEGORIES - 1) + 1, 0)
    return lengths, items, categories, rng.integers(1, ITEMS, rows)


def write_history_split(path, rng: np.random.Generator, label, items, categories, target) -> None:
    """One processed split of FM's layout from ``random_histories``' arrays and the labels; the other fields random."""
    rows = len(label)
    table = pa.table({
        "row_id": np.arange(1, rows + 1), "y0": np.asarray(label, np.float32),
        "user_id": rng.integers(1, USERS, rows).astype(np.int32), "item_id": target.astype(np.int32),
        "category_id": (target % (CATEGORIES - 1) + 1).astype(np.int32), "hour": rng.integers(1, 25, rows).astype(np.int32),
        "price": rng.normal(size=rows).astype(np.float32),
        "item_history": pa.FixedSizeListArray.from_arrays(pa.array(items.reshape(-1).astype(np.int32)), L),
        "category_history": pa.FixedSizeListArray.from_arrays(pa.array(categories.reshape(-1).astype(np.int32)), L),
    })  # fmt: skip
    pq.write_table(table, path)


def write_sequence_split(path, rows: int, seed: int) -> None:
    """Click iff the most recent event's category is even (10% of labels flipped; an empty history never
    clicks): a signal only the history carries; the target's ids are uniform and independent of it."""
    rng = np.random.default_rng(seed)
    lengths, items, categories, target = random_histories(rng, rows)
    recent = (categories[:, -1] % 2 == 0) & (lengths > 0)
    label = np.where(rng.random(rows) < 0.9, recent, ~recent)
    write_history_split(path, rng, label, items, categories, target)


@pytest.fixture(scope="module")
def sequence_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seq")
    paths = {"feature_map": root / "feature_map.json", "train": root / "train.parquet", "valid": root / "valid.parquet"}
    FM.save(paths["feature_map"])
    write_sequence_split(paths["train"], 4000, seed=1)
    write_sequence_split(paths["valid"], 1000, seed=2)
    return paths


TRAINING = {
    "device": "cpu", "batch_size": 128, "steps_per_epoch": None, "max_epochs": 2, "patience": 2, "eval_batch_size": 2000,
    "optimizer": {"embedding": {"name": "adam", "lr": 0.01}, "dense": {"name": "adamw", "lr": 0.003, "weight_decay": 0.0}},
}  # fmt: skip


def _fit(paths, out_dir, arch, params):
    outputs = TrainOutputs(out_dir / "checkpoint.pt", out_dir / "metrics.json", out_dir / "log.jsonl")
    metrics = train(train_path=paths["train"], valid_path=paths["valid"], feature_map_path=paths["feature_map"],
                    arch=arch, params=params, training=TRAINING, seed=3, outputs=outputs, progress=False)  # fmt: skip
    return metrics, outputs


@pytest.mark.parametrize("name", ["bst", "mamba4rec", "mdaf_mamba", "mdaf_bst"])
def test_sequence_models_learn_what_only_the_history_shows(sequence_data, tmp_path, name):
    arch, params = CONFIGS[name]
    metrics, outputs = _fit(sequence_data, tmp_path, arch, params)
    assert metrics.best_valid["y0"].auc > 0.8, metrics.best_valid
    model, ckpt = load_checkpoint(outputs.checkpoint, torch.device("cpu"))
    assert type(model).__name__.lower().startswith(arch[:3])
    if "mamba" in name:
        assert metrics.model_info["mamba_backend"] == "torch" == ckpt["model_info"]["mamba_backend"]


def test_static_dcnv3_cannot_see_the_history_signal(sequence_data, tmp_path):
    """The control: a static model on the same data stays near chance, so the test above measures the history."""
    metrics, _ = _fit(sequence_data, tmp_path, "dcnv3", {"embedding_dim": 4})
    assert metrics.best_valid["y0"].auc < 0.62, metrics.best_valid


@pytest.mark.parametrize("name", ["bst", "mamba4rec", "mdaf_bst", "din", "sum_pooling"])
def test_history_group_picks_one_of_several_histories(name):
    """On a dataset with two sequence groups a one-history model reads the group its ``history_group`` names (the
    other group's ids never reach the output) and refuses to guess without one."""
    fm = sequence_map()
    other = [Feature("recent_items", "sequence", vocab_size=ITEMS, shares_vocab_with="item_id", group="recent")]
    fm = FeatureMap(dataset=fm.dataset, tasks=fm.tasks, features=fm.features + other,
                    sequence_groups=fm.sequence_groups + [SequenceGroup("recent", L)], group_by="user_id")  # fmt: skip
    arch, params = CONFIGS[name]
    with pytest.raises(ValueError, match="several sequence groups .*choose one with the model's history_group"):
        build_model(arch, fm, params)
    torch.manual_seed(0)
    model = build_model(arch, fm, {**params, "history_group": "history"}).eval()
    assert model.history_groups_read() == ["history"]  # what the train record keeps the length of
    batch = make_batch()
    batch.sequences["recent_items"] = histories([L] * 6, seed=5)[0]
    changed = Batch(**{**batch.__dict__, "sequences": {**batch.sequences, "recent_items": histories([2] * 6, seed=9)[0]}})
    assert torch.equal(model(batch).logits, model(changed).logits)
    swapped = Batch(**{**batch.__dict__, "sequences": {**batch.sequences, "item_history": histories([L] * 6, seed=9)[0]}})
    assert not torch.equal(model(batch).logits, model(swapped).logits)


def test_the_groups_a_model_reads():
    """Flat models read no history; INFNet and the multi-task models read every group."""
    import test_infnet

    assert build_model("dcnv2", FM, {"embedding_dim": 4, "mlp_hidden": [8]}).history_groups_read() == []
    infnet = test_infnet.build()
    assert infnet.history_groups_read() == [g.name for g in infnet.feature_map.sequence_groups] != []
    mmoe = build_model("mmoe", infnet.feature_map, {"embedding_dim": 4, "num_experts": 2, "expert_hidden": [8]})
    assert mmoe.history_groups_read() == infnet.history_groups_read()


def test_time_gap_buckets_are_log2_of_one_plus_the_gap():
    """bucket = min(floor(log2(1 + gap_s)), buckets - 1): 0 s and 1 s apart, an hour in bucket 11, clamped at the top."""
    from ctrbench.models.sequence import TimeGapEmbedding

    layer = TimeGapEmbedding(4, buckets=16)
    gaps = torch.tensor([[0, 1, 2, 3, 3600, 86_400, 10**9]])
    assert layer.bucket(gaps).tolist() == [[0, 1, 1, 2, 11, 15, 15]]
    assert torch.equal(layer(gaps)[0, 4], layer.table[11])
