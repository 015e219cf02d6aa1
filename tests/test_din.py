"""DIN and sum pooling: the activation unit, Dice and the pooled interest against their equations written out,
padding and empty histories, the history group, and DIN learning the target-in-history signal it is built for.
(The shared sequence-model checks, forward/backward, several labels, padding rows, run them via CONFIGS.)"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from test_sequence_models import CATEGORIES, FM, ITEMS, TRAINING, USERS, L, make_batch

from ctrbench.data.schema import Feature, FeatureMap, SequenceGroup, tasks_of
from ctrbench.models.din import Dice
from ctrbench.models.registry import build_model
from ctrbench.train.trainer import TrainOutputs, train

DIN = {"embedding_dim": 4, "attention_hidden": [6], "mlp_hidden": [8]}


def din(**params):
    torch.manual_seed(0)
    model = build_model("din", FM, DIN | params)
    with torch.no_grad():  # Dice's state as after training, so that the test sees it
        for m in model.modules():
            if isinstance(m, Dice):
                m.alpha.uniform_(-1, 1)
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return model


def dice_by_hand(dice: Dice, s: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid((s - mean) / torch.sqrt(var + dice.eps))
    return p * s + (1 - p) * dice.alpha * s


def unit_by_hand(model, v: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """a(e_j, v_A) = W2 Dice(W1 [v_A; e_j; v_A - e_j; v_A * e_j] + b1) + b2, Dice on running statistics (eval)."""
    first, dice, last = model.attention.unit
    h = first.weight @ torch.cat([v, e, v - e, v * e]) + first.bias
    return (last.weight @ dice_by_hand(dice, h, dice.running_mean, dice.running_var) + last.bias).squeeze()


@pytest.mark.parametrize("use_softmax", [False, True])
def test_activation_unit_and_weighted_sum_as_the_equations(use_softmax):
    model = din(use_softmax=use_softmax).eval()
    batch = make_batch(lengths=(0, 1, 3, L, 2))
    with torch.no_grad():
        history, target, mask = model.tokens(batch)
        interest, w = model.attention(history, target, mask)
        for b in range(len(batch)):
            real = [j for j in range(L) if mask[b, j]]
            a = torch.stack([unit_by_hand(model, target[b], history[b, j]) for j in real]) if real else torch.zeros(0)
            weights = a.softmax(dim=0) if use_softmax else a  # softmax over the real events only
            expected_w = torch.zeros(L)
            expected_w[real] = weights
            torch.testing.assert_close(w[b], expected_w, rtol=1e-5, atol=1e-6)
            u = sum((weights[i] * history[b, j] for i, j in enumerate(real)), torch.zeros(history.shape[-1]))
            torch.testing.assert_close(interest[b], u, rtol=1e-5, atol=1e-6)
    assert (interest[0] == 0).all() and (w[0] == 0).all()  # the empty history: u = 0
    assert not use_softmax or torch.allclose(w[1:].sum(dim=1), torch.ones(4))


def test_the_head_reads_the_interest_and_every_field_token():
    """logits = MLP([u; every field token]) with u the weighted sum above."""
    model = din().eval()
    batch = make_batch()
    with torch.no_grad():
        interest, _ = model.attention(*model.tokens(batch))
        expected = model.mlp(torch.cat([interest, model.embedding(batch).flatten(1)], dim=1))
        torch.testing.assert_close(model(batch).logits, expected)


def test_dice_uses_batch_statistics_in_training_and_running_ones_in_evaluation():
    torch.manual_seed(0)
    dice = Dice(5)
    with torch.no_grad():
        dice.alpha.uniform_(-1, 1)
    s = torch.randn(7, 5) * 3 + 1
    torch.testing.assert_close(dice(s), dice_by_hand(dice, s, s.mean(0), s.var(0, unbiased=False)))
    torch.testing.assert_close(dice.running_mean, 0.01 * s.mean(0))  # momentum 0.01
    dice.eval()
    torch.testing.assert_close(dice(s), dice_by_hand(dice, s, dice.running_mean, dice.running_var))
    dice.train()
    assert torch.isfinite(dice(s[:1])).all()  # one row: no batch variance, the running statistics serve


@pytest.mark.parametrize("arch", ["din", "sum_pooling"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_padding_never_reaches_the_output_even_through_batch_statistics(arch, mode):
    """In training too: Dice's batch statistics are taken over the real events alone (padding is never scored)."""
    torch.manual_seed(0)
    model = build_model(arch, FM, DIN if arch == "din" else {"embedding_dim": 4, "mlp_hidden": [8]})
    model.train(mode == "train")
    batch = make_batch()
    before = model(batch).logits.detach()
    table = model.tokens.embedding
    with torch.no_grad():
        for _, field in model.tokens.pairs:
            table.embedding.weight[table.offsets[table.field_index[field]]] += 5.0  # the padding row of the field
        # the target fields' padding rows are also the categorical fields' missing rows: only rows with a known
        # target are compared, and make_batch has no missing target
    after = model(batch).logits.detach()
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_sum_pooling_as_the_equation(pooling):
    torch.manual_seed(0)
    model = build_model("sum_pooling", FM, {"embedding_dim": 4, "mlp_hidden": [8], "pooling": pooling}).eval()
    batch = make_batch(lengths=(0, 1, 3, L))
    with torch.no_grad():
        history, _, mask = model.tokens(batch)
        expected = []
        for b in range(len(batch)):
            real = history[b][mask[b]]  # [n, D]
            u = real.sum(dim=0)
            expected.append(u / max(1, len(real)) if pooling == "mean" else u)
        u = torch.stack(expected)
        assert (u[0] == 0).all()
        logits = model.mlp(torch.cat([u, model.embedding(batch).flatten(1)], dim=1))
        torch.testing.assert_close(model(batch).logits, logits)


@pytest.mark.parametrize("use_softmax", [False, True])
def test_only_empty_histories_forward_and_backward(use_softmax):
    """A batch whose histories are all empty (no event to score) still runs forward and backward, finite."""
    for arch, params in (("din", DIN | {"use_softmax": use_softmax}), ("sum_pooling", {"embedding_dim": 4})):
        model = build_model(arch, FM, params)
        batch = make_batch(lengths=(0, 0, 0))
        out = model(batch)
        model.loss(out, batch).backward()
        assert torch.isfinite(out.logits).all()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_mixed_precision_forward_backward():
    model = din()
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.loss(model(batch), batch)
    loss.backward()
    assert torch.isfinite(loss)


def test_history_group_picks_one_of_several_histories():
    fm = FeatureMap(
        dataset="two_groups",
        tasks=tasks_of(["y0"]),
        features=[
            Feature("user_id", "categorical", vocab_size=USERS),
            Feature("item_id", "categorical", vocab_size=ITEMS),
            Feature("click_items", "sequence", vocab_size=ITEMS, shares_vocab_with="item_id", group="click"),
            Feature("like_items", "sequence", vocab_size=ITEMS, shares_vocab_with="item_id", group="like"),
        ],
        sequence_groups=[SequenceGroup("click", L), SequenceGroup("like", 3)],
    )
    for arch in ("din", "sum_pooling"):
        with pytest.raises(ValueError, match="history_group"):
            build_model(arch, fm, {"embedding_dim": 4})
        model = build_model(arch, fm, {"embedding_dim": 4, "history_group": "like"})
        assert model.tokens.pairs == [("like_items", "item_id")] and model.tokens.max_len == 3
    with pytest.raises(ValueError, match="pooling"):
        build_model("sum_pooling", FM, {"pooling": "max"})
    flat = FeatureMap(
        dataset="criteo", tasks=tasks_of(["label"]), features=[Feature("C1", "categorical", vocab_size=5)]
    )
    for arch in ("din", "sum_pooling"):
        with pytest.raises(ValueError, match="no behaviour sequence"):
            build_model(arch, flat)


def write_target_in_history_split(path, rows: int, seed: int) -> None:
    """Click iff the target's category appears anywhere in the history (10% of labels flipped): what DIN's
    target attention reads; the target alone and the history alone say nothing (both uniform, independent)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, L + 1, rows)
    items = rng.integers(1, ITEMS, (rows, L))
    items[np.arange(L)[None, :] < (L - lengths)[:, None]] = 0
    categories = np.where(items > 0, items % (CATEGORIES - 1) + 1, 0)
    target = rng.integers(1, ITEMS, rows)
    target_category = target % (CATEGORIES - 1) + 1
    seen = (categories == target_category[:, None]).any(axis=1)
    label = np.where(rng.random(rows) < 0.9, seen, ~seen).astype(np.float32)
    table = pa.table({
        "row_id": np.arange(1, rows + 1), "y0": label,
        "user_id": rng.integers(1, USERS, rows).astype(np.int32), "item_id": target.astype(np.int32),
        "category_id": target_category.astype(np.int32), "hour": rng.integers(1, 25, rows).astype(np.int32),
        "price": rng.normal(size=rows).astype(np.float32),
        "item_history": pa.FixedSizeListArray.from_arrays(pa.array(items.reshape(-1).astype(np.int32)), L),
        "category_history": pa.FixedSizeListArray.from_arrays(pa.array(categories.reshape(-1).astype(np.int32)), L),
    })  # fmt: skip
    pq.write_table(table, path)


def test_din_learns_whether_the_target_was_seen(tmp_path):
    paths = {
        "feature_map": tmp_path / "feature_map.json",
        "train": tmp_path / "train.parquet",
        "valid": tmp_path / "valid.parquet",
    }
    FM.save(paths["feature_map"])
    write_target_in_history_split(paths["train"], 4000, seed=1)
    write_target_in_history_split(paths["valid"], 1000, seed=2)
    out = tmp_path / "din"
    metrics = train(train_path=paths["train"], valid_path=paths["valid"], feature_map_path=paths["feature_map"],
                    arch="din", params={"embedding_dim": 8, "attention_hidden": [16], "mlp_hidden": [32]},
                    training=TRAINING | {"max_epochs": 5, "patience": 5}, seed=3, outputs=TrainOutputs(out / "c.pt", out / "m.json", out / "l.jsonl"),
                    progress=False)  # fmt: skip
    assert metrics.best_valid["y0"].auc > 0.73, metrics.best_valid  # 0.77 (the labels' ceiling ~0.9; chance 0.5)
