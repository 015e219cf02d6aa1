"""Shared-Bottom, OMoE, MMoE and PLE on a 3-task feature map with categorical, dense and two sequence groups
(one stored in the rows, one by reference): shapes and gradients, empty histories and padding, the pooled
input, the experts, gates and CGC levels against their equations written out here, masked labels, seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ctrbench.data.batch import Batch, EventTable, TensorDataset
from ctrbench.data.schema import Feature, FeatureMap, SequenceGroup, Task
from ctrbench.inference import predict
from ctrbench.models.multitask import ParallelLinear
from ctrbench.models.registry import build_model
from ctrbench.train.checkpoint import load_checkpoint
from ctrbench.train.trainer import TrainOutputs, train

TASKS = ("click", "like", "long_view")
USERS, VIDEOS, AUTHORS, TAGS, TABS = 6, 12, 5, 7, 4
CLICK_LEN, LIKE_LEN = 5, 3


def multitask_map(click_len: int = CLICK_LEN, like_len: int = LIKE_LEN) -> FeatureMap:
    """Like KuaiRand's: histories per behaviour, the click group in the rows with a tag of its own vocabulary,
    the like group by reference over an event table's video_id and author_id; ``like`` is known where ``like_known``."""
    seq = lambda name, vocab, group, **kw: Feature(name, "sequence", vocab_size=vocab, group=group, **kw)
    return FeatureMap(
        dataset="tiny_mtl",
        tasks=[Task("click"), Task("like", weight=2.0, mask="like_known"), Task("long_view")],
        features=[
            Feature("user_id", "categorical", vocab_size=USERS),
            Feature("video_id", "categorical", vocab_size=VIDEOS),
            Feature("author_id", "categorical", vocab_size=AUTHORS),
            Feature("tab", "categorical", vocab_size=TABS),
            Feature("duration", "dense"),
            Feature("play_ratio", "dense"),
            seq("click_video", VIDEOS, "click", shares_vocab_with="video_id"),
            seq("click_author", AUTHORS, "click", shares_vocab_with="author_id"),
            seq("click_tag", TAGS, "click"),  # no categorical field: a table of its own
            seq("like_video", VIDEOS, "like", shares_vocab_with="video_id", event_column="video_id"),
            seq("like_author", AUTHORS, "like", shares_vocab_with="author_id", event_column="author_id"),
        ],
        sequence_groups=[
            SequenceGroup("click", click_len),
            SequenceGroup("like", like_len, storage="events", start="like_start", end="like_end"),
        ],
        group_by="user_id",
    )


FM = multitask_map()
SMALL = {"embedding_dim": 4, "tower_hidden": [5]}
CONFIGS = {
    "shared_bottom": ("shared_bottom", {**SMALL, "bottom_hidden": [8, 6]}),
    "omoe": ("omoe", {**SMALL, "num_experts": 3, "expert_hidden": [8, 6]}),
    "mmoe": ("mmoe", {**SMALL, "num_experts": 3, "expert_hidden": [8, 6]}),
    "ple": (
        "ple",
        {**SMALL, "num_levels": 2, "num_specific_experts": 2, "num_shared_experts": 1, "expert_hidden": [6]},
    ),
    "mmoe_bn_gate_mlp": ("mmoe", {**SMALL, "num_experts": 2, "gate_hidden": [4], "batch_norm": True, "dropout": 0.1}),
    "ple_one_level": (
        "ple",
        {**SMALL, "num_levels": 1, "num_shared_experts": 2, "gate_hidden": [4], "batch_norm": True},
    ),
}


def build(name: str, fm: FeatureMap = FM, seed: int = 0, **kw):
    torch.manual_seed(seed)
    arch, params = CONFIGS[name]
    return build_model(arch, fm, params, **kw)


def right_aligned(lengths, max_len: int, vocab: int, g: torch.Generator) -> torch.Tensor:
    """Histories of the given lengths, most recent last, left-padded with 0; real ids in 1..vocab-1."""
    ids = torch.randint(1, vocab, (len(lengths), max_len), generator=g)
    return torch.where(torch.arange(max_len) >= max_len - torch.tensor(lengths).view(-1, 1), ids, 0)


def make_batch(
    click=(0, 1, 3, CLICK_LEN, 2, CLICK_LEN), like=(0, 2, LIKE_LEN, 0, 1, LIKE_LEN), seed=0, holes=False
) -> Batch:
    """``holes``: real events with a missing id (0) in some feature (a video without a tag, an unknown video of a
    known author): still events of their history, and the only history ids that read the tables' row 0."""
    g = torch.Generator().manual_seed(seed)
    B = len(click)
    clicks = right_aligned(click, CLICK_LEN, VIDEOS, g)
    likes = right_aligned(like, LIKE_LEN, VIDEOS, g)
    categorical = torch.stack([torch.randint(1, v, (B,), generator=g) for v in (USERS, VIDEOS, AUTHORS, TABS)], dim=1)
    sequences = {
        "click_video": clicks, "click_author": torch.where(clicks > 0, clicks % (AUTHORS - 1) + 1, 0),
        "click_tag": torch.where(clicks > 0, clicks % (TAGS - 1) + 1, 0),
        "like_video": likes, "like_author": torch.where(likes > 0, likes % (AUTHORS - 1) + 1, 0),
    }  # fmt: skip
    if holes:
        sequences["click_video"][3, 1] = 0  # a real event: its author and tag are known
        sequences["click_tag"][5, -1] = 0
        sequences["like_video"][2, 0] = 0
    return Batch(
        labels=torch.randint(0, 2, (B, 3), generator=g).float(),
        label_mask=torch.rand(B, 3, generator=g) > 0.3,
        categorical=categorical,  # ids >= 1: the padding rows (id 0) are read by histories only
        dense=torch.randn(B, 2, generator=g),
        sequences=sequences,
        group=categorical[:, 0],
    )


def dense_grad(p: torch.nn.Parameter) -> torch.Tensor:
    return p.grad.to_dense() if p.grad.is_sparse else p.grad


@pytest.mark.parametrize("sparse", [False, True], ids=["dense_grad", "sparse_grad"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_backward_shapes(name, sparse):
    model = build(name, sparse_embeddings=sparse)
    batch = make_batch()
    out = model(batch)
    assert out.logits.shape == (6, 3) and torch.isfinite(out.logits).all()
    if "gates" in out.aux:
        gates = out.aux["gates"]
        assert gates.shape[:2] == (6, 3) and torch.allclose(gates.sum(-1), torch.ones(6, 3)) and (gates > 0).all()
    model.loss(out, batch).backward()
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(dense_grad(p)).all()]
    assert not bad, f"parameters without a finite gradient: {bad}"
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    assert len(tables) == 2 and all(t.weight.grad.is_sparse == sparse for t in tables)  # shared fields + click_tag


def test_input_is_embeddings_dense_and_masked_mean_of_each_history_written_out():
    model = build("mmoe")
    batch = make_batch(holes=True)
    emb = model.inputs.embedding
    table = lambda field, i: emb.embedding.weight[emb.offsets[emb.field_index[field]] + i]
    tags = model.inputs.own_table.weight
    expected = []
    for b in range(len(batch)):
        row = [table(f.name, batch.categorical[b, j]) for j, f in enumerate(FM.categorical)] + [batch.dense[b]]
        for group, features in (
            ("click", ("click_video", "click_author", "click_tag")),
            ("like", ("like_video", "like_author")),
        ):
            real = [
                t for t in range(FM.sequence_group(group).max_len) if any(batch.sequences[f][b, t] for f in features)
            ]
            for f in features:
                field = {
                    "click_video": "video_id",
                    "like_video": "video_id",
                    "click_author": "author_id",
                    "like_author": "author_id",
                }.get(f)
                vectors = [
                    table(field, batch.sequences[f][b, t]) if field else tags[batch.sequences[f][b, t]] for t in real
                ]
                row.append(torch.stack(vectors).mean(0) if vectors else torch.zeros(4))
        expected.append(torch.cat(row))
    torch.testing.assert_close(model.inputs(batch), torch.stack(expected))
    assert model.inputs.output_dim == 4 * 4 + 2 + (3 + 2) * 4


@pytest.mark.parametrize("name", list(CONFIGS))
def test_empty_histories(name):
    model = build(name)
    batch = make_batch(click=(0,) * 4, like=(0,) * 4)
    out = model(batch)
    assert torch.isfinite(out.logits).all()
    assert (model.inputs(batch)[:, 4 * 4 + 2 :] == 0).all()  # every pooled history is 0
    model.loss(out, batch).backward()
    assert all(torch.isfinite(dense_grad(p)).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", ["shared_bottom", "mmoe", "ple"])
def test_padding_never_reaches_the_output(name):
    """Padding is id 0 in a Batch, so what can change at a padded position is the padding rows (id 0) of the
    tables the histories read, and how much padding there is: neither changes the output; a real event does."""
    model = build(name).eval()
    batch = make_batch()
    before = model(batch).logits
    emb = model.inputs.embedding
    with torch.no_grad():
        for field in ("video_id", "author_id"):
            emb.embedding.weight[emb.offsets[emb.field_index[field]]] += 3.0
        model.inputs.own_table.weight[0] += 3.0
    torch.testing.assert_close(model(batch).logits, before, rtol=0, atol=1e-6)

    # the same histories with twice the padding, the same weights (no parameter depends on max_len)
    longer = build(name, multitask_map(2 * CLICK_LEN, 2 * LIKE_LEN)).eval()
    longer.load_state_dict(model.state_dict())
    padded = dataclasses.replace(
        batch, sequences={k: torch.nn.functional.pad(v, (v.shape[1], 0)) for k, v in batch.sequences.items()}
    )
    torch.testing.assert_close(longer(padded).logits, before, rtol=0, atol=1e-6)

    changed = make_batch()
    changed.sequences["like_video"][:, -1] = changed.sequences["like_video"][:, -1] % (VIDEOS - 1) + 1  # a real event
    assert ((model(changed).logits - before).abs().max(dim=1).values > 1e-7).sum() >= 4


def test_padding_rows_get_no_gradient_from_histories():
    model = build("mmoe")
    batch = make_batch()
    model.loss(model(batch), batch).backward()
    emb = model.inputs.embedding
    for field in ("video_id", "author_id"):  # categorical ids are >= 1, so only the histories could touch row 0
        assert (emb.embedding.weight.grad[emb.offsets[emb.field_index[field]]] == 0).all()
    assert (model.inputs.own_table.weight.grad[0] == 0).all()
    assert (model.inputs.own_table.weight.grad[1:].abs().sum(1) > 0).any()


def mlp_written_out(parallel_mlp, j: int, h: torch.Tensor, *, final_linear: bool) -> torch.Tensor:
    """The j-th MLP of a ParallelMLP, one layer at a time: ``relu(h W + b)``, the last plain ``h W (+ b)`` if ``final_linear``."""
    layers = [m for m in parallel_mlp if isinstance(m, ParallelLinear)]
    for i, layer in enumerate(layers):
        h = h @ layer.weight[j] + (0 if layer.bias is None else layer.bias[j])
        if not (final_linear and i == len(layers) - 1):
            h = torch.relu(h)
    return h


def towers_written_out(model, inputs: list[torch.Tensor]) -> torch.Tensor:
    """``y_k = h^k(input_k)``, ``[B, T]``."""
    return torch.cat([mlp_written_out(model.towers, k, inputs[k], final_linear=True) for k in range(3)], dim=1)


def test_mmoe_matches_its_equations():
    """f^k(x) = sum_i g^k(x)_i f_i(x), g^k(x) = softmax(W_gk x), y_k = h^k(f^k(x))."""
    model = build("mmoe").eval()
    batch = make_batch()
    x = model.inputs(batch)
    f = [mlp_written_out(model.moe.experts, i, x, final_linear=False) for i in range(3)]  # f_i(x), [B, H]
    g = [torch.softmax(x @ model.moe.gates[0].weight[k], dim=1) for k in range(3)]  # g^k(x), [B, E]; no bias
    f_k = [sum(g[k][:, i : i + 1] * f[i] for i in range(3)) for k in range(3)]
    out = model(batch)
    torch.testing.assert_close(out.logits, towers_written_out(model, f_k))
    torch.testing.assert_close(out.aux["gates"], torch.stack(g, dim=1))
    assert not torch.allclose(g[0], g[1])  # one gate per task


def test_omoe_uses_one_gate_for_every_task():
    """f(x) = sum_i g(x)_i f_i(x), y_k = h^k(f(x)): one gate network, the same weights for every task."""
    model = build("omoe").eval()
    batch = make_batch()
    assert model.moe.gates[0].weight.shape[0] == 1
    x = model.inputs(batch)
    g = torch.softmax(x @ model.moe.gates[0].weight[0], dim=1)
    f = sum(g[:, i : i + 1] * mlp_written_out(model.moe.experts, i, x, final_linear=False) for i in range(3))
    out = model(batch)
    torch.testing.assert_close(out.logits, towers_written_out(model, [f] * 3))
    torch.testing.assert_close(out.aux["gates"], g.unsqueeze(1).expand(-1, 3, -1))


def test_shared_bottom_towers_differ_only_after_the_bottom():
    model = build("shared_bottom").eval()
    batch = make_batch()
    bottom = model.bottom(model.inputs(batch))
    torch.testing.assert_close(model(batch).logits, towers_written_out(model, [bottom] * 3))
    with torch.no_grad():  # tower 2 made a copy of tower 0: the same prediction, since the input is shared
        for layer in model.towers:
            if isinstance(layer, ParallelLinear):
                layer.weight[2] = layer.weight[0]
                layer.bias[2] = layer.bias[0]
    logits = model(batch).logits
    torch.testing.assert_close(logits[:, 2], logits[:, 0])
    assert not torch.allclose(logits[:, 1], logits[:, 0])

    # task 0's loss alone trains the bottom and tower 0, never another task's tower
    model.train()
    batch.label_mask = torch.zeros(6, 3, dtype=torch.bool)
    batch.label_mask[:, 0] = True
    model.loss(model(batch), batch).backward()
    assert model.bottom[0].weight.grad.abs().sum() > 0
    for layer in (m for m in model.towers if isinstance(m, ParallelLinear)):
        assert layer.weight.grad[0].abs().sum() > 0 and (layer.weight.grad[1:] == 0).all()


def test_ple_matches_the_cgc_equations():
    """Per level: y_k = sum_i g^k(x_k)_i [E_k(x_k); E_s(x_s)]_i, y_s = sum_i g^s(x_s)_i [E_1(x_1); ...; E_T(x_T);
    E_s(x_s)]_i with g = softmax(W x); level 1 reads x everywhere; the towers read the last level's y_k."""
    model = build("ple").eval()
    batch = make_batch()
    T, specific, shared = 3, 2, 1
    first, last = model.levels
    assert first.shared_gate is not None and last.shared_gate is None  # nothing reads the last level's shared output
    inputs = [model.inputs(batch)] * (T + 1)  # x_1, ..., x_T, x_s
    for level in model.levels:
        # expert layout: task 0's, task 1's, task 2's, then the shared ones
        experts = level.experts
        own = [
            [mlp_written_out(experts, k * specific + j, inputs[k], final_linear=False) for j in range(specific)]
            for k in range(T)
        ]
        common = [mlp_written_out(experts, T * specific + j, inputs[T], final_linear=False) for j in range(shared)]
        outputs, task_gates = [], []
        for k in range(T):
            g = torch.softmax(inputs[k] @ level.task_gates[0].weight[k], dim=1)
            outputs.append(sum(g[:, i : i + 1] * e for i, e in enumerate(own[k] + common)))
            task_gates.append(g)
        if level.shared_gate is not None:
            g = torch.softmax(inputs[T] @ level.shared_gate[0].weight[0], dim=1)
            every = [e for task_experts in own for e in task_experts] + common
            assert g.shape[1] == len(every) == T * specific + shared
            outputs.append(sum(g[:, i : i + 1] * e for i, e in enumerate(every)))
        inputs = outputs
    out = model(batch)
    torch.testing.assert_close(out.logits, towers_written_out(model, inputs))
    torch.testing.assert_close(out.aux["gates"], torch.stack(task_gates, dim=1))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_masked_label_never_changes_the_loss(name):
    batch = make_batch()
    model = build(name).eval()  # eval: batch norm and dropout the same in both passes
    losses, grads = [], []
    for unknown in (None, 1.0, float("nan")):
        if unknown is not None:
            batch.labels = torch.where(batch.label_mask, batch.labels, torch.full_like(batch.labels, unknown))
        model.zero_grad()
        loss = model.loss(model(batch), batch)
        loss.backward()
        losses.append(loss.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.isfinite(losses[0])
    for loss, grad in zip(losses[1:], grads[1:]):
        assert torch.equal(loss, losses[0]) and torch.equal(grad, grads[0])
    # a task masked on every row trains nothing of its own: its tower gets no gradient
    batch.label_mask[:, 1] = False
    model.zero_grad()
    model.loss(model(batch), batch).backward()
    for layer in (m for m in model.towers if isinstance(m, ParallelLinear)):
        assert (layer.weight.grad[1] == 0).all() and layer.weight.grad[0].abs().sum() > 0


@pytest.mark.parametrize("name", ["shared_bottom", "omoe", "mmoe", "ple"])
def test_deterministic_given_seed(name):
    batch = make_batch()
    runs = []
    for _ in range(2):
        model = build(name, seed=7)
        model.loss(model(batch), batch).backward()
        runs.append((model.eval()(batch).logits, [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert not torch.equal(runs[0][0], build(name, seed=8).eval()(batch).logits)


def test_a_by_reference_batch_from_the_loader_gives_the_same_output():
    """The like group gathered from an event table by TensorDataset reads as the same ids put in a Batch directly."""
    events = EventTable({"video_id": torch.tensor([3, 5, 7, 2, 9], dtype=torch.int32),
                         "author_id": torch.tensor([1, 2, 3, 4, 1], dtype=torch.int32)})  # fmt: skip
    rows = 3
    columns = {
        "click": np.array([1, 0, 1], np.float32), "like": np.array([0, 1, 0], np.float32),
        "long_view": np.array([1, 1, 0], np.float32), "like_known": np.array([1, 0, 1], np.int8),
        "user_id": np.array([1, 2, 3]), "video_id": np.array([4, 5, 6]), "author_id": np.array([1, 2, 3]),
        "tab": np.array([1, 1, 2]), "duration": np.zeros(rows, np.float32), "play_ratio": np.ones(rows, np.float32),
        "click_video": np.array([[0, 0, 0, 3, 4], [0] * 5, [1, 2, 3, 4, 5]]),
        "click_author": np.array([[0, 0, 0, 1, 2], [0] * 5, [1, 1, 1, 1, 1]]),
        "click_tag": np.array([[0, 0, 0, 6, 1], [0] * 5, [2, 2, 2, 2, 2]]),
        "like_start": np.array([0, 0, 2]), "like_end": np.array([2, 0, 5]),  # 2 events, none, 3 events
    }  # fmt: skip
    loaded = TensorDataset(FM, columns, events).batch(torch.arange(rows))
    direct = dataclasses.replace(loaded, sequences={k: v.clone() for k, v in loaded.sequences.items()})
    direct.sequences["like_video"] = torch.tensor([[0, 3, 5], [0, 0, 0], [7, 2, 9]])
    direct.sequences["like_author"] = torch.tensor([[0, 1, 2], [0, 0, 0], [3, 4, 1]])
    assert torch.equal(loaded.sequences["like_video"], direct.sequences["like_video"])
    for name in ("shared_bottom", "omoe", "mmoe", "ple"):
        model = build(name).eval()
        torch.testing.assert_close(model(loaded).logits, model(direct).logits, rtol=0, atol=0)


@pytest.mark.parametrize(
    "arch,params,match",
    [
        ("mmoe", {"num_experts": 0}, "num_experts"),
        ("omoe", {"expert_hidden": []}, "expert_hidden"),
        ("ple", {"num_levels": 0}, "num_levels"),
        ("ple", {"num_specific_experts": 0, "num_shared_experts": 0}, "at least one expert"),
        ("shared_bottom", {"bottom_hidden": [], "tower_hidden": []}, None),  # towers of one linear map on x: valid
    ],
)
def test_invalid_sizes_are_refused(arch, params, match):
    if match is None:
        assert build_model(arch, FM, params)(make_batch()).logits.shape == (6, 3)
        return
    with pytest.raises(ValueError, match=match):
        build_model(arch, FM, params)


def test_a_history_larger_than_the_vocabulary_it_shares_is_refused():
    features = [dataclasses.replace(f, vocab_size=VIDEOS + 1) if f.name == "click_video" else f for f in FM.features]
    with pytest.raises(ValueError, match="click_video.*larger than that of 'video_id'"):
        build_model("mmoe", dataclasses.replace(FM, features=features))


def write_split(folder, rows: int, seed: int) -> None:
    """A processed split of FM with one planted signal per task: click from the target video's parity, like
    (known on ~70% of rows) from the share of even authors in the like history (read by reference from
    ``events.parquet``), long view from the duration. Each row's like events are its own rows of the event table."""
    rng = np.random.default_rng(seed)
    video = rng.integers(1, VIDEOS, rows)
    duration = rng.normal(size=rows).astype(np.float32)
    likes = rng.integers(0, LIKE_LEN + 1, rows)
    end = np.cumsum(likes)
    authors = rng.integers(1, AUTHORS, int(end[-1]))
    even_before = np.concatenate([[0], np.cumsum(authors % 2 == 0)])  # even authors among the first i events
    even_share = np.where(likes > 0, (even_before[end] - even_before[end - likes]) / np.maximum(likes, 1), 0.5)
    clicks = right_aligned(
        list(rng.integers(0, CLICK_LEN + 1, rows)), CLICK_LEN, VIDEOS, torch.Generator().manual_seed(seed)
    ).numpy()
    draw = lambda logit: (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    fixed = lambda ids: pa.FixedSizeListArray.from_arrays(pa.array(ids.reshape(-1).astype(np.int32)), CLICK_LEN)
    table = pa.table({
        "click": draw(np.where(video % 2 == 0, 2.0, -2.0)), "like": draw(6.0 * (even_share - 0.5)),
        "long_view": draw(2.5 * duration), "like_known": (rng.random(rows) < 0.7).astype(np.int8),
        "user_id": rng.integers(1, USERS, rows).astype(np.int32), "video_id": video.astype(np.int32),
        "author_id": rng.integers(1, AUTHORS, rows).astype(np.int32), "tab": rng.integers(1, TABS, rows).astype(np.int32),
        "duration": duration, "play_ratio": rng.random(rows).astype(np.float32),
        "click_video": fixed(clicks), "click_author": fixed(np.where(clicks > 0, clicks % (AUTHORS - 1) + 1, 0)),
        "click_tag": fixed(np.where(clicks > 0, clicks % (TAGS - 1) + 1, 0)),
        "like_start": (end - likes).astype(np.int64), "like_end": end.astype(np.int64),
    })  # fmt: skip
    folder.mkdir()
    pq.write_table(table, folder / "split.parquet")
    events = {"video_id": rng.integers(1, VIDEOS, len(authors)).astype(np.int32), "author_id": authors.astype(np.int32)}
    pq.write_table(pa.table(events), folder / "events.parquet")


TRAINING = {
    "device": "cpu", "batch_size": 128, "steps_per_epoch": None, "max_epochs": 2, "patience": 2, "eval_batch_size": 2000,
    "optimizer": {"embedding": {"name": "adam", "lr": 0.01}, "dense": {"name": "adam", "lr": 0.003}},
}  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("mtl")
    FM.save(root / "feature_map.json")
    write_split(root / "train", 3000, seed=1)
    write_split(root / "valid", 1000, seed=2)
    return root


@pytest.mark.parametrize("name", ["shared_bottom", "omoe", "mmoe", "ple"])
def test_each_task_learns_its_planted_signal_through_the_trainer(planted, tmp_path, name):
    """With their CPU defaults, through the one trainer (masked like labels, histories by reference): every task
    learns its signal, like from its history alone, and the checkpoint rebuilds the model that scored it. (A
    narrow deep bottom, (8, 6), left like at 0.52: the defaults are sized to avoid that.)"""
    arch, params = name, {}
    outputs = TrainOutputs(tmp_path / "checkpoint.pt", tmp_path / "metrics.json", tmp_path / "log.jsonl")
    metrics = train(train_path=planted / "train" / "split.parquet", valid_path=planted / "valid" / "split.parquet",
                    feature_map_path=planted / "feature_map.json", arch=arch, params=params, training=TRAINING, seed=3,
                    outputs=outputs, progress=False)  # fmt: skip
    aucs = {task: metrics.best_valid[task].auc for task in TASKS}
    assert min(aucs.values()) > 0.8, aucs
    model, _ = load_checkpoint(outputs.checkpoint, torch.device("cpu"))
    valid = TensorDataset.from_parquet(planted / "valid" / "split.parquet", FM).batch(slice(0, 1000))
    probs = torch.sigmoid(model.eval()(valid).logits).detach().numpy()
    known = valid.label_mask[:, 1].numpy()
    assert roc_auc_score(valid.labels[known, 1].numpy(), probs[known, 1]) == pytest.approx(aucs["like"], abs=1e-4)



def test_prediction_keeps_only_the_aux_outputs_a_model_describes():
    """MMoE's gates are [B, tasks, experts]: kept for a whole gold split they would cost tens of bytes per row, and
    no extra output describes them, so predict leaves them out (the forward pass still returns them)."""
    model = build_model("mmoe", FM)
    batch = make_batch()
    assert model(batch).aux["gates"].shape[:2] == (len(batch), FM.num_tasks)
    scored = predict(model, [batch, make_batch(seed=1)], torch.device("cpu"))
    assert scored["aux"] == {} and scored["probs"].shape == (2 * len(batch), FM.num_tasks)
