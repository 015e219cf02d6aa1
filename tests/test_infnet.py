"""INFNet (arXiv 2508.11565 v1): its layers against their equations, one block's wiring, padding and empty
histories, per-task heads, determinism, flat datasets, and learning a planted three-task signal.

The feature map is KuaiRand-shaped: three tasks, categorical and dense features, and one by-reference sequence
group per behaviour whose features share the vocabularies of the target's video and author fields.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, SequenceGroup, tasks_of
from ctrbench.models.infnet import INFNet
from ctrbench.models.infnet_layers import CrossAttention, ProxyGatedUnit
from ctrbench.models.registry import build_model

USERS, VIDEOS, AUTHORS, TABS = 12, 40, 9, 4
TASKS = ["is_click", "is_like", "long_view"]
BEHAVIOURS = {"click": 6, "like": 4, "long_view": 5}  # behaviour -> max_len
FIELDS = {"video_id": VIDEOS, "author_id": AUTHORS}  # the event fields and the target tables they share
SMALL = {"embedding_dim": 8, "proxy_mlp_hidden": [16], "head_hidden": [8]}


def feature_map(behaviours: dict[str, int] = BEHAVIOURS) -> FeatureMap:
    features = [
        Feature("user_id", "categorical", vocab_size=USERS),
        Feature("video_id", "categorical", vocab_size=VIDEOS),
        Feature("author_id", "categorical", vocab_size=AUTHORS),
        Feature("tab", "categorical", vocab_size=TABS),
        Feature("duration", "dense"),
        Feature("play_count", "dense"),
    ]
    groups = []
    for name, max_len in behaviours.items():
        groups.append(SequenceGroup(name, max_len, storage="events", start=f"{name}_start", end=f"{name}_end"))
        features += [
            Feature(
                f"{name}_{field}", "sequence", vocab_size=vocab, shares_vocab_with=field, group=name, event_column=field
            )
            for field, vocab in FIELDS.items()
        ]
    return FeatureMap(
        dataset="tiny_kuairand", tasks=tasks_of(TASKS), features=features, sequence_groups=groups, group_by="user_id"
    )


FM = feature_map()


def author_of(video: torch.Tensor) -> torch.Tensor:
    return torch.where(video > 0, video % (AUTHORS - 1) + 1, 0)


def make_batch(size: int = 8, seed: int = 0, lengths: dict[str, list[int]] | None = None, fm: FeatureMap = FM) -> Batch:
    """Right-aligned histories (most recent last, padding 0 before); ids of the target fields start at 1, so that
    row 0 of each table is only ever read as padding. Row 0 of the batch has every history empty."""
    g = torch.Generator().manual_seed(seed)
    sequences = {}
    for group in fm.sequence_groups:
        L = group.max_len
        n = torch.tensor(lengths[group.name]) if lengths else torch.randint(0, L + 1, (size,), generator=g)
        if not lengths:
            n[0] = 0
        videos = torch.randint(1, VIDEOS, (size, L), generator=g)
        videos[torch.arange(L) < (L - n).unsqueeze(1)] = 0
        sequences[f"{group.name}_video_id"], sequences[f"{group.name}_author_id"] = videos, author_of(videos)
    target = torch.randint(1, VIDEOS, (size,), generator=g)
    categorical = torch.stack(
        [
            torch.randint(1, USERS, (size,), generator=g),
            target,
            author_of(target),
            torch.randint(1, TABS, (size,), generator=g),
        ],
        dim=1,
    )
    return Batch(
        labels=torch.randint(0, 2, (size, len(TASKS)), generator=g).float(),
        categorical=categorical,
        dense=torch.randn(size, 2, generator=g),
        sequences=sequences,
        group=categorical[:, 0],
    )


def build(params: dict | None = None, fm: FeatureMap = FM, seed: int = 0, **kwargs) -> INFNet:
    torch.manual_seed(seed)
    return build_model("infnet", fm, {**SMALL, **(params or {})}, **kwargs)


VARIANTS = {
    "default": {},
    "one_block": {"num_blocks": 1},
    "three_blocks_two_heads": {"num_blocks": 3, "num_heads": 2},
    "no_residual": {"residual": False},
    "two_proxies_per_behaviour": {"sequence_proxies_per_behaviour": 2, "gate_mlp_hidden": [4]},
    "single_dense_token": {"dense_mode": "single", "dropout": 0.1},
    "sequence_positions": {"sequence_positions": True},
}


@pytest.mark.parametrize("sparse", [False, True], ids=["dense_grad", "sparse_grad"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_backward(variant, sparse):
    model = build(VARIANTS[variant], sparse_embeddings=sparse)
    batch = make_batch()
    out = model(batch)
    assert out.logits.shape == (8, 3) and torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()
    values = lambda g: g.coalesce().values() if g.is_sparse else g
    bad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(values(p.grad)).all()]
    assert not bad, f"parameters without a finite gradient: {bad}"
    assert model.model_info() == {
        "behaviours": 3,
        "sequence_proxies": 3 * VARIANTS[variant].get("sequence_proxies_per_behaviour", 1),
    }


def test_proxy_gated_unit_matches_its_equation():
    """PGU(X, X~) = X ⊙ σ(MLP(Flatten(X~))), the MLP here Linear -> ReLU -> Linear."""
    torch.manual_seed(0)
    pgu = ProxyGatedUnit(4, num_proxies=3, hidden_units=[5])
    X, proxies = torch.randn(2, 6, 4), torch.randn(2, 3, 4)
    first, second = pgu.mlp[0], pgu.mlp[2]
    expected = torch.empty_like(X)
    for b in range(2):
        flat = torch.cat([proxies[b, j] for j in range(3)])  # Flatten(X~): proxy after proxy, [3 * 4]
        hidden = torch.clamp(first.weight @ flat + first.bias, min=0)
        gate = 1 / (1 + torch.exp(-(second.weight @ hidden + second.bias)))  # [d], one per channel
        for i in range(6):
            expected[b, i] = X[b, i] * gate
    torch.testing.assert_close(pgu(X, proxies), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("num_heads", [1, 2])
def test_cross_attention_matches_softmax_qk_v(num_heads):
    """CA(Q, K, V) = softmax(Q W_Q (K W_K)^T / sqrt(d_k)) V W_V over the real keys; a row without one reads 0."""
    torch.manual_seed(0)
    d, d_k = 4, 4 // num_heads
    ca = CrossAttention(d, num_heads=num_heads)
    queries, keys = torch.randn(3, 2, d), torch.randn(3, 5, d)
    mask = torch.tensor([[True, True, False, True, False], [False] * 4 + [True], [False] * 5])
    out = ca(queries, keys, mask)
    for b in range(2):
        real = mask[b].nonzero().flatten()
        Q, K, V = queries[b] @ ca.query.weight.T, keys[b, real] @ ca.key.weight.T, keys[b, real] @ ca.value.weight.T
        heads = []
        for h in range(num_heads):
            cols = slice(h * d_k, (h + 1) * d_k)
            scores = Q[:, cols] @ K[:, cols].T / math.sqrt(d_k)
            heads.append(torch.softmax(scores, dim=-1) @ V[:, cols])
        torch.testing.assert_close(out[b], torch.cat(heads, dim=-1), rtol=1e-5, atol=1e-6)
    assert torch.equal(out[2], torch.zeros(2, d))  # an empty history: nothing to read, and no NaN
    unmasked = ca(queries[:1], keys[:1])
    scores = (queries[0] @ ca.query.weight.T) @ (keys[0] @ ca.key.weight.T).T
    if num_heads == 1:
        torch.testing.assert_close(unmasked[0], torch.softmax(scores / 2.0, -1) @ keys[0] @ ca.value.weight.T)


@pytest.mark.parametrize("residual", [True, False])
def test_block_follows_the_flow_equations(residual):
    """Eqs. 10-14 of one (not last) block, each CA and PGU as the block's own modules (checked above)."""
    model = build({"residual": residual, "num_blocks": 2}).eval()
    batch = make_batch()
    tokens, mask = model.initial_tokens(batch)
    out = model.blocks[0](tokens, mask)
    C, S, T, Cp, Sp, Tp = (tokens[k] for k in ("cat", "seq", "task", "cat_proxies", "seq_proxies", "task_proxies"))
    ca, pgu = model.blocks[0].attention, model.blocks[0].gates
    keep = (lambda x: x) if residual else (lambda x: 0)
    Cp2 = keep(Cp) + ca["cat_proxies_from_seq"](Cp, S, mask) + ca["cat_proxies_from_task"](Cp, T)
    Sp2 = keep(Sp) + ca["seq_proxies_from_cat"](Sp, C) + ca["seq_proxies_from_task"](Sp, T)
    Tp2 = keep(Tp) + ca["task_proxies_from_cat"](Tp, C) + ca["task_proxies_from_seq"](Tp, S, mask)
    T_hat = keep(T) + ca["task_from_cat"](T, C) + ca["task_from_seq"](T, S, mask)
    expected = {"cat_proxies": Cp2, "seq_proxies": Sp2, "task_proxies": Tp2,
                "cat": pgu["cat"](C, Cp2), "seq": pgu["seq"](S, Sp2), "task": pgu["task"](T_hat, Tp2)}  # fmt: skip
    for name, value in expected.items():
        torch.testing.assert_close(out[name], value, rtol=1e-6, atol=1e-7, msg=name)
    # the last block computes the task side alone: the rest would reach no head
    assert set(model.blocks[1].attention) == {
        "task_proxies_from_cat",
        "task_proxies_from_seq",
        "task_from_cat",
        "task_from_seq",
    }
    assert set(model.blocks[1].gates) == {"task"}


def test_initial_proxies_follow_eqs_3_and_5():
    model = build({"sequence_proxies_per_behaviour": 2}).eval()
    batch = make_batch()
    tokens, mask = model.initial_tokens(batch)
    B, d = 8, 8
    torch.testing.assert_close(tokens["cat_proxies"], model.cat_proxies(tokens["cat"].reshape(B, -1)).reshape(B, 4, d))
    start = 0
    for a, (name, _) in enumerate(model.sequence.behaviours):
        L = FM.sequence_group(name).max_len
        events = model.seq_proxies(tokens["seq"][:, start : start + L]) * mask[:, start : start + L, None]
        expected = events.sum(dim=1).reshape(B, 2, d)  # Σ_t φ_seq(s_{a,t}) over real events, as 2 tokens
        torch.testing.assert_close(tokens["seq_proxies"][:, 2 * a : 2 * a + 2], expected, rtol=1e-5, atol=1e-6)
        start += L
    assert torch.equal(tokens["seq_proxies"][0], torch.zeros(6, d))  # row 0: every history empty


def test_padding_never_reaches_the_output():
    """Padding is id 0 in every field of an event. What its embedding rows hold, and how much of it there is,
    leaves the logits unchanged."""
    model = build().eval()
    batch = make_batch()
    before = model(batch).logits
    with torch.no_grad():
        table = model.embedding
        for field in FIELDS:  # row 0 of the shared tables: the targets' ids start at 1, so only padding reads it
            table.embedding.weight[table.offsets[table.field_index[field]]] += 5.0
    assert torch.equal(model(batch).logits, before)
    # the same events with three more padding positions per behaviour: same logits (up to summation order)
    longer = feature_map({name: L + 3 for name, L in BEHAVIOURS.items()})
    padded = Batch(
        **{**batch.__dict__, "sequences": {k: torch.nn.functional.pad(v, (3, 0)) for k, v in batch.sequences.items()}}
    )
    wide = build(fm=longer).eval()
    wide.load_state_dict(model.state_dict())
    torch.testing.assert_close(wide(padded).logits, before, rtol=1e-5, atol=1e-6)


def test_event_order_matters_only_with_positions():
    """The paper's flows are order-free (attention and sum pooling); ``sequence_positions`` adds a learned vector
    per slot, and with it the order of the events counts. Padding stays out either way."""
    batch = make_batch(lengths={name: [L, L, 3] for name, L in BEHAVIOURS.items()}, size=3)
    reversed_batch = Batch(**{**batch.__dict__, "sequences": {k: v.clone() for k, v in batch.sequences.items()}})
    for name in BEHAVIOURS:
        for field in FIELDS:
            seq = reversed_batch.sequences[f"{name}_{field}"]
            seq[:2] = seq[:2].flip(1)  # full histories: the same events, most recent first
            seq[2, -3:] = seq[2, -3:].flip(0)
    # events far apart (the default N(0, 1e-4) tables make all events nearly alike at initialisation)
    plain, positioned = (build({"embedding_init_std": 0.5, "sequence_positions": p}).eval() for p in (False, True))
    represent = lambda model, b: model.task_representations(b)
    torch.testing.assert_close(represent(plain, reversed_batch), represent(plain, batch), rtol=1e-5, atol=1e-6)
    assert (represent(positioned, reversed_batch) - represent(positioned, batch)).abs().amax(dim=(1, 2)).min() > 1e-5
    before = positioned(batch).logits
    with torch.no_grad():
        positioned.embedding.embedding.weight[positioned.embedding.offsets[1]] += 5.0  # row 0 of video_id: padding only
    assert torch.equal(positioned(batch).logits, before)


def test_empty_histories_give_finite_logits_and_gradients():
    model = build()
    batch = make_batch(size=4, lengths={name: [0] * 4 for name in BEHAVIOURS})
    out = model(batch)
    assert torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    tokens, mask = model.initial_tokens(batch)
    assert not mask.any() and torch.equal(tokens["seq_proxies"], torch.zeros_like(tokens["seq_proxies"]))


def test_history_events_matter():
    """Nothing real is masked by mistake: changing the most recent liked video changes every task token."""
    model = build().eval()
    batch = make_batch(lengths={name: [2, L, 1] for name, L in BEHAVIOURS.items()}, size=3)
    base = model.task_representations(batch)
    batch.sequences["like_video_id"][:, -1] = batch.sequences["like_video_id"][:, -1] % (VIDEOS - 1) + 1
    assert (model.task_representations(batch) - base).abs().amax(dim=-1).min() > 1e-6


def test_each_head_reads_only_its_own_task_token():
    model = build().eval()
    batch = make_batch()
    T = model.task_representations(batch)  # [B, 3, d]
    logits = model(batch).logits
    for i in range(3):  # ŷ_i's logit = MLP_i(T_i), written out with task i's weights
        (w1, b1), (w2, b2) = ((layer.weight[i], layer.bias[i]) for layer in model.heads.layers)
        torch.testing.assert_close(
            logits[:, i], (torch.relu(T[:, i] @ w1 + b1) @ w2 + b2).squeeze(-1), rtol=1e-5, atol=1e-6
        )
    with torch.no_grad():
        for layer in model.heads.layers:  # perturb task 1's head only
            layer.weight[1] += 0.5
            layer.bias[1] += 0.5
    after = model(batch).logits
    assert torch.equal(after[:, [0, 2]], logits[:, [0, 2]])
    assert (after[:, 1] - logits[:, 1]).abs().min() > 1e-6


def test_deterministic_given_seed():
    batch = make_batch()
    first, second = (build(seed=123).eval()(batch).logits for _ in range(2))
    assert torch.equal(first, second)
    assert not torch.equal(first, build(seed=124).eval()(batch).logits)


def test_runs_on_a_flat_multi_task_dataset():
    """Without histories S is empty: no sequence proxies, no sequence flows (AliExpress-like data)."""
    flat = FeatureMap(dataset="flat", tasks=tasks_of(["click", "conversion"]), features=FM.categorical + FM.dense)
    model = build(fm=flat)
    assert model.sequence is None and model.seq_proxies is None
    assert not any("seq" in name for block in model.blocks for name in block.attention)
    batch = make_batch()
    batch = Batch(labels=batch.labels[:, :2], categorical=batch.categorical, dense=batch.dense)
    out = model(batch)
    assert out.logits.shape == (8, 2) and torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.model_info() == {"behaviours": 0, "sequence_proxies": 0}
    assert build({"num_blocks": 1}).cat_proxies is None  # one block: C~ would reach nothing


def test_invalid_settings_are_refused():
    for params in ({"num_blocks": 0}, {"categorical_proxies": 0}, {"shared_task_tokens": 0}, {"dense_mode": "none"}):
        with pytest.raises(ValueError, match="infnet"):
            build(params)
    unshared = replace(
        FM, features=[replace(f, shares_vocab_with=None) if f.name == "like_author_id" else f for f in FM.features]
    )
    with pytest.raises(ValueError, match="like_author_id"):
        build(fm=unshared)


def planted_batch(size: int, seed: int) -> Batch:
    """Three related tasks: click on an even video or a video whose author the user clicked before; like when the
    video's author is among the liked ones; long view on a long duration or many long views before."""
    batch = make_batch(size=size, seed=seed)
    video, author = batch.categorical[:, 1], batch.categorical[:, 2]
    clicked_author = (batch.sequences["click_author_id"] == author.unsqueeze(1)).any(1)
    liked_author = (batch.sequences["like_author_id"] == author.unsqueeze(1)).any(1)
    many_long = (batch.sequences["long_view_video_id"] > 0).sum(1) >= 3
    labels = torch.stack(
        [(video % 2 == 0) | clicked_author, liked_author, (batch.dense[:, 0] > 0.5) | many_long], dim=1
    )
    return Batch(**{**batch.__dict__, "labels": labels.float()})


@pytest.fixture
def one_thread():
    """Small ops on a shared 2-core machine: one intra-op thread is several times faster than two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_learns_a_planted_three_task_signal(one_thread):
    """60 Adam steps: every task's held-out loss falls below what its base rate alone gives (the entropy of the
    label), so each task learned from the features and histories, not just its mean."""
    model = build({"embedding_dim": 16, "proxy_mlp_hidden": [32], "head_hidden": [16]})
    train, held_out = planted_batch(2048, seed=1), planted_batch(1024, seed=2)
    rate = held_out.labels.mean(dim=0)
    base_rate_loss = -(rate * rate.log() + (1 - rate) * (1 - rate).log())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(0)
    for _ in range(60):
        index = torch.randint(0, 2048, (256,), generator=generator)
        batch = Batch(labels=train.labels[index], categorical=train.categorical[index], dense=train.dense[index],
                      sequences={k: v[index] for k, v in train.sequences.items()})  # fmt: skip
        optimizer.zero_grad()
        model.loss(model(batch), batch).backward()
        optimizer.step()
    with torch.no_grad():
        logits = model(held_out).logits
    after = torch.nn.functional.binary_cross_entropy_with_logits(logits, held_out.labels, reduction="none").mean(dim=0)
    assert (after < 0.97 * base_rate_loss).all(), (base_rate_loss, after)
