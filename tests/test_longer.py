"""LONGER: token merge and the attention as written, the mask's causality (sequence tokens never see the candidate,
nor later events; global tokens see every event), padding, empty histories, gradients and learning a history signal."""

from __future__ import annotations

import pytest
import torch
from test_sequence_models import FM as UNTIMED_FM
from test_sequence_models import TRAINING, sequence_data  # noqa: F401 - the fixture
from test_sequence_models import make_batch as untimed_batch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, SequenceGroup, tasks_of
from ctrbench.models.long_sequence import MaskedAttention, TokenMerge, global_causal_mask
from ctrbench.models.registry import build_model
from ctrbench.train.trainer import TrainOutputs, train

ITEMS, CATEGORIES, USERS = 40, 8, 10
SMALL = {"embedding_dim": 8, "d_model": 16, "num_heads": 2, "mlp_hidden": [16], "dropout": 0.0}


def feature_map(L: int = 12) -> FeatureMap:
    return FeatureMap(
        dataset="tiny_long",
        tasks=tasks_of(["y"]),
        features=[
            Feature("user_id", "categorical", vocab_size=USERS),
            Feature("item_id", "categorical", vocab_size=ITEMS),
            Feature("category_id", "categorical", vocab_size=CATEGORIES),
            Feature("hour", "categorical", vocab_size=25),
            Feature("price", "dense"),
            Feature("item_history", "sequence", vocab_size=ITEMS, shares_vocab_with="item_id", group="history"),
            Feature("category_history", "sequence", vocab_size=CATEGORIES, shares_vocab_with="category_id", group="history"),
        ],
        sequence_groups=[SequenceGroup("history", L, timestamp="time_s", storage="events", start="h_start", end="h_end", row_time="t")],
        group_by="user_id",
    )  # fmt: skip


def make_batch(lengths=(0, 1, 5, 12, 12, 7), L: int = 12, seed: int = 0) -> Batch:
    """Right-aligned histories of the given lengths in ``L`` slots, with increasing time gaps into the past."""
    g = torch.Generator().manual_seed(seed)
    B = len(lengths)
    real = torch.arange(L) >= L - torch.tensor(lengths).unsqueeze(1)  # [B, L]
    items = torch.where(real, torch.randint(1, ITEMS, (B, L), generator=g), 0)
    gaps = torch.where(real, torch.randint(1, 10**6, (B, L), generator=g).flip(1).cumsum(1).flip(1), 0)
    target = torch.randint(1, ITEMS, (B,), generator=g)
    categorical = torch.stack(
        [torch.randint(1, USERS, (B,), generator=g), target, target % 7 + 1, torch.randint(1, 25, (B,), generator=g)], 1
    )
    return Batch(
        labels=torch.randint(0, 2, (B, 1), generator=g).float(), categorical=categorical, dense=torch.randn(B, 1, generator=g),
        sequences={"item_history": items, "category_history": torch.where(real, items % 7 + 1, 0)}, time_gaps={"history": gaps},
    )  # fmt: skip


def build(L: int = 12, **params):
    torch.manual_seed(0)
    return build_model("longer", feature_map(L), {**SMALL, **params}).eval()


def test_token_merge_shapes_and_masks():
    x, mask = torch.randn(2, 10, 4), torch.arange(10) >= torch.tensor([[7], [0]])  # 3 and 10 real events
    for mode in ("concat", "inner_trans"):
        merged, real = TokenMerge(4, 4, mode=mode)(x, mask)
        # ceil(10 / 4) groups, padded at the old end: [pad pad e1 e2], [e3..e6], [e7..e10]
        assert merged.shape == (2, 3, 4)
        assert real.tolist() == [[False, False, True], [True, True, True]]
    same, real = TokenMerge(4, 1)(x, mask)
    assert torch.equal(same, x * mask.unsqueeze(-1)) and torch.equal(real, mask)


def test_concat_merge_of_identical_events_by_hand():
    """``W [x; x; x] + b = (W_1 + W_2 + W_3) x + b``; in a partly padded group the padded slots add nothing."""
    merge = TokenMerge(4, 3)
    x = torch.randn(4)
    W, b = merge.linear.weight.detach(), merge.linear.bias.detach()  # [4, 12]
    events = x.expand(1, 5, 4)  # 5 events, K = 3: groups [pad e1 e2], [e3 e4 e5]
    merged, real = merge(events, torch.tensor([[True, True, True, True, True]]))
    torch.testing.assert_close(merged[0, 1], (W[:, :4] + W[:, 4:8] + W[:, 8:]) @ x + b)
    torch.testing.assert_close(merged[0, 0], (W[:, 4:8] + W[:, 8:]) @ x + b)
    assert real.all()


def test_inner_trans_merge_is_a_block_inside_each_group_then_concat():
    merge = TokenMerge(4, 2, mode="inner_trans").eval()
    x, mask = torch.randn(1, 4, 4), torch.tensor([[False, True, True, True]])
    merged, _ = merge(x, mask)
    recent = merge.inner(x[:, 2:])  # the full group alone
    torch.testing.assert_close(merged[0, 1], merge.linear(recent.flatten(1))[0])
    alone = merge.inner(x[:, 1:2])  # the half group's real event alone; its padded slot contributes zeros
    torch.testing.assert_close(merged[0, 0], merge.linear(torch.cat([torch.zeros(1, 4), alone[0]], dim=0).flatten()))


def test_mask_rule_written_out():
    """m = 2 global tokens; sequence tokens at positions 0..2 (position 0 padding); queries [G; positions 1, 2]."""
    key_real = torch.tensor([[True, True, False, True, True]])
    query_real = torch.tensor([[True, True, True, True]])
    mask = global_causal_mask(2, torch.tensor([1, 2]), torch.arange(3), query_real, key_real)
    expected = [
        [1, 1, 0, 1, 1],  # global: every global and every real event
        [1, 1, 0, 1, 1],
        [0, 0, 0, 1, 0],  # event at position 1: itself, nothing later, no global token
        [0, 0, 0, 1, 1],  # event at position 2: positions 1 and 2
    ]
    assert mask.shape == (1, 1, 4, 5) and mask[0, 0].int().tolist() == expected
    # a padded query row may attend anywhere (finite softmax; the caller discards it)
    padded = global_causal_mask(
        2, torch.tensor([1, 2]), torch.arange(3), torch.tensor([[True, True, False, True]]), key_real
    )
    assert padded[0, 0, 2].all()


def test_attention_equals_explicit_softmax():
    torch.manual_seed(1)
    attention = MaskedAttention(8, 2)
    queries, keys = torch.randn(2, 4, 8), torch.randn(2, 5, 8)
    mask = global_causal_mask(2, torch.tensor([1, 2]), torch.arange(3), torch.ones(2, 4, dtype=torch.bool),
                              torch.tensor([[True, True, False, True, True], [True, True, True, True, True]]))  # fmt: skip
    Wq, bq = attention.query.weight, attention.query.bias
    Wk, Wv = attention.key_value.weight[:8], attention.key_value.weight[8:]
    bk, bv = attention.key_value.bias[:8], attention.key_value.bias[8:]
    heads = []
    for h in range(2):
        s = slice(4 * h, 4 * h + 4)
        Q, K, V = queries @ Wq[s].T + bq[s], keys @ Wk[s].T + bk[s], keys @ Wv[s].T + bv[s]
        scores = (Q @ K.transpose(1, 2) / 2.0).masked_fill(~mask[:, 0], float("-inf"))  # sqrt(d_h) = 2
        heads.append(scores.softmax(dim=-1) @ V)
    expected = attention.out(torch.cat(heads, dim=-1))
    torch.testing.assert_close(attention(queries, keys, mask), expected)


def masked_encode(model, batch: Batch) -> torch.Tensor:
    """The reference: LONGER's encoder with the explicit ``[B, 1, m+k, m+L']`` and ``[B, 1, m+k, m+k]`` masks."""
    history, target, mask = model.tokens(batch)
    G = model.global_tokens(batch, target)
    H, real = model.sequence_tokens(batch, history, mask)
    (B, m), n = G.shape[:2], H.shape[1]
    k = min(model.num_query, n)
    positions = torch.arange(n)
    key_real = torch.cat([real.new_ones(B, m), real], dim=1)
    query_real = torch.cat([real.new_ones(B, m), real[:, n - k :]], dim=1)
    keep = query_real.unsqueeze(-1).float()
    cross_mask = global_causal_mask(m, positions[n - k :], positions, query_real, key_real)
    self_mask = global_causal_mask(m, positions[n - k :], positions[n - k :], query_real, query_real)
    O = model.cross(torch.cat([G, H[:, n - k :]], dim=1), torch.cat([G, H], dim=1), cross_mask) * keep
    for layer in model.layers:
        O = layer(O, None, self_mask) * keep
    return model.norm(O) * keep


@pytest.mark.parametrize(
    "params",
    [
        {},  # K 4: 3 merged tokens, all queries
        {"merge_size": 2, "num_query_tokens": 2, "num_layers": 2},  # sampled queries: 2 of 6
        {"merge_size": 1, "num_query_tokens": None, "num_layers": 2},  # the full model: 12 x 12
        {"merge": "inner_trans", "merge_size": 5, "num_query_tokens": 1},
    ],
)
def test_split_attention_equals_the_explicit_mask(params):
    """Global queries with a key-padding mask and sequence queries with ``is_causal`` (no q x kv mask where every
    sequence token is a query) give the masked formulation's states: padded, empty and full histories alike."""
    model = build(**params)
    batch = make_batch(lengths=(0, 1, 2, 5, 12, 11, 7))
    masks, attend = [], MaskedAttention.attend

    def recording(self, Q, KV, mask, causal=False):
        masks.append(None if mask is None else tuple(mask.shape))
        return attend(self, Q, KV, mask, causal)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MaskedAttention, "attend", recording)
        states, _ = model.encode(batch)
    torch.testing.assert_close(states, masked_encode(model, batch), rtol=1e-5, atol=1e-6)
    B, m, n = 7, model.num_global, model.num_merged
    for shape in masks:  # a key-padding mask, none, or (sampled queries only) the k x n sequence part
        assert shape is None or shape == (B, 1, 1, m + n) or shape == (B, 1, 1, m + model.num_query) \
            or (model.num_query < n and shape == (B, 1, model.num_query, n)), shape  # fmt: skip


def test_global_causal_attention_against_the_mask_with_padded_rows():
    """``MaskedAttention.global_causal`` against the masked attention on every real row; padded rows finite."""
    torch.manual_seed(2)
    attention = MaskedAttention(8, 2)
    real = torch.arange(6) >= torch.tensor([[6], [4], [0], [1]])  # 0, 2, 6 and 5 real tokens of 6
    keys = torch.randn(4, 2 + 6, 8)
    for q in (6, 3):  # every token a query (is_causal), then the 3 most recent (a q x n mask)
        queries = torch.cat([keys[:, :2], keys[:, 2 + 6 - q :]], dim=1)
        query_real = torch.cat([torch.ones(4, 2, dtype=torch.bool), real[:, 6 - q :]], dim=1)
        key_real = torch.cat([torch.ones(4, 2, dtype=torch.bool), real], dim=1)
        mask = global_causal_mask(2, torch.arange(6 - q, 6), torch.arange(6), query_real, key_real)
        split, masked = attention.global_causal(queries, keys, 2, real), attention(queries, keys, mask)
        assert torch.isfinite(split).all()
        torch.testing.assert_close(split[query_real], masked[query_real])


@pytest.mark.parametrize("params", [{}, {"merge": "inner_trans", "num_layers": 2, "num_query_tokens": None}])
def test_sequence_tokens_never_see_the_candidate_or_other_features(params):
    model = build(**params)
    batch = make_batch()
    states, _ = model.encode(batch)
    changed = make_batch()
    changed.categorical = (changed.categorical % 5) + 1  # candidate item and category, user, hour
    changed.dense = changed.dense + 1.0
    other, _ = model.encode(changed)
    m = model.num_global
    torch.testing.assert_close(other[:, m:], states[:, m:], rtol=0, atol=0)
    assert (other[:, :m] - states[:, :m]).abs().amax(dim=(1, 2)).min() > 1e-4  # every sample's global tokens moved


@pytest.mark.parametrize("merge_size", [1, 3])
def test_sequence_tokens_are_causal_in_time(merge_size):
    """Changing the event in slot p changes no state of an earlier (merged) token, and does change its own."""
    model = build(merge_size=merge_size, num_query_tokens=None, num_layers=2)
    batch = make_batch(lengths=(12, 12, 10))
    states, _ = model.encode(batch)
    m = model.num_global
    for p in (4, 8):
        changed = make_batch(lengths=(12, 12, 10))
        changed.sequences["item_history"][:, p] = changed.sequences["item_history"][:, p] % (ITEMS - 1) + 1
        other, _ = model.encode(changed)
        group = p // merge_size  # 12 slots divide by 1 and 3: no padding group
        torch.testing.assert_close(other[:, m : m + group], states[:, m : m + group], rtol=0, atol=0)
        assert (other[:, m + group :] - states[:, m + group :]).abs().amax(dim=-1).min() > 1e-5


def test_global_tokens_see_every_event():
    """Only the most recent merged token is a query; the oldest event still reaches the CLS token and the output."""
    model = build(merge_size=2, num_query_tokens=1)
    batch = make_batch(lengths=(12, 12))
    changed = make_batch(lengths=(12, 12))
    changed.sequences["item_history"][:, 0] = changed.sequences["item_history"][:, 0] % (ITEMS - 1) + 1
    (states, _), (other, _) = model.encode(batch), model.encode(changed)
    assert (other[:, 1] - states[:, 1]).abs().amax(dim=-1).min() > 1e-5  # CLS
    assert (model(changed).logits - model(batch).logits).abs().min() > 1e-7


@pytest.mark.parametrize("merge", ["concat", "inner_trans"])
def test_padding_never_reaches_the_output(merge):
    model = build(merge=merge, merge_size=5)  # 12 slots: a padding group at the old end
    batch = make_batch()
    before = model(batch).logits
    with torch.no_grad():
        table = model.embedding
        for field in ("item_id", "category_id"):
            table.embedding.weight[table.offsets[table.field_index[field]]] += 3.0  # the padding row
    batch.time_gaps["history"] = torch.where(batch.sequences["item_history"] > 0, batch.time_gaps["history"], 12345)
    torch.testing.assert_close(model(batch).logits, before, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params", [{"merge_size": 4}, {"merge_size": 3, "merge": "inner_trans"}, {"merge_size": 1}])
def test_extra_left_padding_changes_nothing(params):
    """The same weights at L = 12 and L = 17 (positions count from the most recent event): the same logits."""
    short, long = build(12, **params), build(17, **params)
    state = short.state_dict()
    state["position"] = torch.cat([state["position"], long.position.detach()[12:]])
    long.load_state_dict(state)
    lengths = (0, 1, 5, 12, 12, 7)
    padded = make_batch(lengths)
    pad = lambda x: torch.cat([x.new_zeros(len(lengths), 5), x], dim=1)  # 5 more slots of padding at the old end
    padded.sequences = {name: pad(x) for name, x in padded.sequences.items()}
    padded.time_gaps = {"history": pad(padded.time_gaps["history"])}
    torch.testing.assert_close(long(padded).logits, short(make_batch(lengths)).logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params", [{}, {"merge": "inner_trans", "num_layers": 2}, {"merge_size": 1, "num_query_tokens": None}]
)
def test_forward_backward_and_empty_histories(params):
    model = build(**params).train()
    batch = make_batch(lengths=(0, 0, 3, 12))
    out = model(batch)
    assert out.logits.shape == (4, 1) and torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"parameters without a finite gradient: {no_grad}"
    rows = batch.sequences["item_history"][2:][batch.sequences["item_history"][2:] > 0] + model.embedding.offsets[1]
    assert (model.embedding.embedding.weight.grad[rows].abs().sum(dim=1) > 0).all()  # history rows are trained
    empty = model.eval()(make_batch(lengths=(0, 0)))
    assert torch.isfinite(empty.logits).all()


def test_time_gaps_are_read_where_the_data_has_them():
    model = build()
    batch = make_batch(lengths=(12, 5))
    changed = make_batch(lengths=(12, 5))
    changed.time_gaps["history"] = changed.time_gaps["history"] * 1000
    assert (model(changed).logits - model(batch).logits).abs().min() > 1e-7
    assert model.model_info() == {"global_tokens": 5, "merged_tokens": 3, "query_tokens": 3, "time_gaps": True}
    assert build(use_time_gaps=False).model_info()["time_gaps"] is False
    full = build(merge_size=1, num_query_tokens=None).model_info()
    assert (full["merged_tokens"], full["query_tokens"]) == (12, 12)


def test_bad_params_are_refused():
    with pytest.raises(ValueError, match="merge must be"):
        build(merge="mean")
    with pytest.raises(ValueError, match="num_query_tokens"):
        build(num_query_tokens=0)
    with pytest.raises(ValueError, match="global_fields"):
        build(global_fields=["item_id"])  # a target field: it is the candidate token already
    assert build(global_fields=["user_id"]).num_global == 4  # candidate, CLS, user, dense


def test_longer_learns_what_only_the_history_shows(sequence_data, tmp_path):  # noqa: F811
    """Click iff the most recent event's category is even (test_sequence_models' data, no times)."""
    outputs = TrainOutputs(tmp_path / "checkpoint.pt", tmp_path / "metrics.json", tmp_path / "log.jsonl")
    params = {**SMALL, "merge_size": 2, "num_query_tokens": 2}
    metrics = train(train_path=sequence_data["train"], valid_path=sequence_data["valid"], feature_map_path=sequence_data["feature_map"],
                    arch="longer", params=params, training=TRAINING, seed=3, outputs=outputs, progress=False)  # fmt: skip
    assert metrics.best_valid["y0"].auc > 0.8, metrics.best_valid
    assert metrics.model_info["time_gaps"] is False
    assert build_model("longer", UNTIMED_FM, params)(untimed_batch()).logits.shape == (6, 1)


def test_sparse_embeddings_train():
    torch.manual_seed(0)
    model = build_model("longer", feature_map(), {**SMALL, "merge": "inner_trans"}, sparse_embeddings=True)
    batch = make_batch()
    model.loss(model(batch), batch).backward()
    grad = model.embedding.embedding.weight.grad
    assert grad.is_sparse and torch.isfinite(grad.coalesce().values()).all()
