"""HyFormer: query boosting and query decoding as their equations, padding and empty histories, one query set per
sequence group, and the config-time check that d_model is divisible by the number of boosted tokens."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from ctrbench.config import ConfigError, check_config
from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, SequenceGroup, tasks_of
from ctrbench.models.hyformer_layers import QueryBoosting, QueryDecoding, field_groups, token_mixing
from ctrbench.models.registry import build_model, check_params

USERS, VIDEOS, AUTHORS, TABS = 12, 40, 9, 4
TASKS = ["is_click", "is_like"]
BEHAVIOURS = {"click": 6, "like": 4}  # behaviour -> max_len
# T = 2 groups x 2 queries + 2 field groups = 6 boosted tokens; d_model 12 = 6 x 2
SMALL = {"embedding_dim": 4, "d_model": 12, "num_heads": 2, "num_queries": 2, "num_field_groups": 2, "mlp_hidden": [8]}
ENCODERS = ("transformer", "swiglu", "longer")


def feature_map(behaviours: dict[str, int] = BEHAVIOURS, times: bool = True) -> FeatureMap:
    features = [
        Feature("user_id", "categorical", vocab_size=USERS),
        Feature("video_id", "categorical", vocab_size=VIDEOS),
        Feature("author_id", "categorical", vocab_size=AUTHORS),
        Feature("tab", "categorical", vocab_size=TABS),
        Feature("duration", "dense"),
    ]
    groups = []
    for name, max_len in behaviours.items():
        timing = {"timestamp": "time_s", "row_time": "row_time"} if times else {}
        groups.append(SequenceGroup(name, max_len, storage="events", start=f"{name}_s", end=f"{name}_e", **timing))
        features += [
            Feature(f"{name}_{f}", "sequence", vocab_size=v, shares_vocab_with=f, group=name, event_column=f)
            for f, v in (("video_id", VIDEOS), ("author_id", AUTHORS))
        ]
    return FeatureMap(dataset="tiny", tasks=tasks_of(TASKS), features=features, sequence_groups=groups)


FM = feature_map()


def make_batch(fm: FeatureMap = FM, size: int = 6, seed: int = 0, empty: bool = True) -> Batch:
    """Right-aligned histories (most recent last) with time gaps growing into the past; row 0 has no event at all."""
    g = torch.Generator().manual_seed(seed)
    sequences, gaps = {}, {}
    for group in fm.sequence_groups:
        L = group.max_len
        n = torch.randint(1, L + 1, (size,), generator=g)
        if empty:
            n[0] = 0
        padding = torch.arange(L) < (L - n).unsqueeze(1)  # [B, L]
        videos = torch.randint(1, VIDEOS, (size, L), generator=g).masked_fill(padding, 0)
        sequences[f"{group.name}_video_id"], sequences[f"{group.name}_author_id"] = videos, videos % (AUTHORS - 1) + 1
        sequences[f"{group.name}_author_id"][padding] = 0
        gaps[group.name] = (
            torch.randint(0, 10**6, (size, L), generator=g).sort(dim=1, descending=True).values.masked_fill(padding, 0)
        )
    target = torch.randint(1, VIDEOS, (size,), generator=g)
    categorical = torch.stack(
        [torch.randint(1, USERS, (size,), generator=g), target, target % 8 + 1, target % 3 + 1], 1
    )
    return Batch(
        labels=torch.randint(0, 2, (size, len(TASKS)), generator=g).float(),
        categorical=categorical,
        dense=torch.randn(size, 1, generator=g),
        sequences=sequences,
        time_gaps=gaps,
    )


def build(params: dict | None = None, fm: FeatureMap = FM, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return build_model("hyformer", fm, {**SMALL, **(params or {})}, **kwargs)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense_grad", "sparse_grad"])
@pytest.mark.parametrize("encoder", ENCODERS)
def test_forward_backward(encoder, sparse):
    model = build({"sequence_encoder": encoder, "num_layers": 2}, sparse_embeddings=sparse)
    batch = make_batch()
    out = model(batch)
    assert out.logits.shape == (6, len(TASKS)) and torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.model_info() == {"history_groups": ["click", "like"], "boosted_tokens": 6}


def test_token_mixing_regroups_the_pieces():
    B, T, D = 2, 3, 6
    x = torch.randn(B, T, D)
    k = D // T
    expected = torch.empty(B, T, D)
    for i in range(T):  # new token i = [x_1^i; x_2^i; ...; x_T^i]
        for t in range(T):
            expected[:, i, t * k : (t + 1) * k] = x[:, t, i * k : (i + 1) * k]
    mixed = token_mixing(x)
    torch.testing.assert_close(mixed, expected, rtol=0, atol=0)
    # a permutation of the numbers: nothing created or lost before the FFN
    torch.testing.assert_close(mixed.pow(2).sum(), x.pow(2).sum())
    torch.testing.assert_close(mixed.flatten().sort().values, x.flatten().sort().values, rtol=0, atol=0)
    torch.testing.assert_close(token_mixing(token_mixing(x)), x, rtol=0, atol=0)  # T pieces of D/T: a transpose


def test_query_boosting_follows_its_equation():
    torch.manual_seed(1)
    T, D = 4, 8
    boost = QueryBoosting(T, D, multiplier=1.5).eval()
    for norm in (boost.norm1, boost.norm2):  # not the identity, so that the LNs' weights count
        torch.nn.init.normal_(norm.weight), torch.nn.init.normal_(norm.bias)
    x = torch.randn(3, T, D)
    k = D // T
    mixed = torch.stack([torch.cat([x[:, t, i * k : (i + 1) * k] for t in range(T)], dim=-1) for i in range(T)], dim=1)
    ln = lambda v, norm: F.layer_norm(v, (D,), norm.weight, norm.bias, norm.eps)
    s = ln(mixed + x, boost.norm1)  # S = LN(TokenMixing(X) + X)
    ffn = torch.stack(  # PFFN_t(s_t) = W2_t GELU(W1_t s_t + b1_t) + b2_t, each token its own weights
        [
            F.gelu(s[:, t] @ boost.up.weight[t] + boost.up.bias[t]) @ boost.down.weight[t] + boost.down.bias[t]
            for t in range(T)
        ],
        dim=1,
    )
    torch.testing.assert_close(boost(x), ln(ffn + s, boost.norm2))  # X' = LN(PFFN(S) + S)


@pytest.mark.parametrize("num_heads", [1, 2])
def test_query_decoding_matches_an_explicit_softmax(num_heads):
    torch.manual_seed(2)
    B, N, L, D = 3, 2, 5, 8
    decode = QueryDecoding(D, num_heads=num_heads).eval()
    q, h = torch.randn(B, N, D), torch.randn(B, L, D)
    mask = torch.tensor([[False, False, True, True, True], [True] * L, [False] * L])  # row 2: an empty history
    Wq, Wk, Wv = (lin.weight for lin in (decode.attention.query, decode.attention.key, decode.attention.value))
    dk = D // num_heads
    heads = []
    for i in range(num_heads):
        part = slice(i * dk, (i + 1) * dk)
        scores = (q @ Wq[part].T) @ (h @ Wk[part].T).transpose(1, 2) / dk**0.5  # [B, N, L]
        weights = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1).nan_to_num(0.0)  # empty: reads 0
        heads.append(weights @ (h @ Wv[part].T))
    expected = F.layer_norm(q + torch.cat(heads, dim=-1), (D,), decode.norm.weight, decode.norm.bias, decode.norm.eps)
    out = decode(q, h, mask)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out[2], F.layer_norm(q[2], (D,)))  # nothing to read: the query alone


def test_field_groups_are_contiguous_and_cover_every_field():
    assert field_groups(7, 3) == [range(3), range(3, 5), range(5, 7)]
    assert field_groups(5, 5) == [range(i, i + 1) for i in range(5)]
    with pytest.raises(ValueError, match="num_field_groups"):
        field_groups(3, 4)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_padding_never_reaches_the_output(encoder):
    """3 more slots of left padding (with garbage time gaps on them) leave every logit unchanged: no position
    embedding, padding masked in attention and pooling, per-event layers never mix events."""
    model = build({"sequence_encoder": encoder}).eval()
    longer_fm = feature_map({name: n + 3 for name, n in BEHAVIOURS.items()})
    longer = build({"sequence_encoder": encoder}, fm=longer_fm, seed=5).eval()
    longer.load_state_dict(model.state_dict())
    batch = make_batch()
    padded = copy.deepcopy(batch)
    padded.sequences = {k: F.pad(v, (3, 0)) for k, v in batch.sequences.items()}
    padded.time_gaps = {k: torch.cat([torch.full((len(v), 3), 12345), v], dim=1) for k, v in batch.time_gaps.items()}
    with torch.no_grad():
        torch.testing.assert_close(longer(padded).logits, model(batch).logits)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_empty_histories_give_finite_logits_and_gradients(encoder):
    model = build({"sequence_encoder": encoder})
    batch = make_batch()
    for name in batch.sequences:  # every history of every row empty
        batch.sequences[name] = torch.zeros_like(batch.sequences[name])
    batch.time_gaps = {k: torch.zeros_like(v) for k, v in batch.time_gaps.items()}
    out = model(batch)
    assert torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None and not p.grad.is_sparse)


def test_history_events_and_their_times_matter():
    model = build().eval()
    batch = make_batch(empty=False)
    with torch.no_grad():
        base = model(batch).logits
        other = copy.deepcopy(batch)
        other.sequences["like_video_id"] = torch.where(other.sequences["like_video_id"] > 0, 1, 0)
        assert not torch.allclose(model(other).logits, base)
        later = copy.deepcopy(batch)
        later.time_gaps["click"] = later.time_gaps["click"] * 1000
        assert not torch.allclose(model(later).logits, base)
        no_times = build(fm=feature_map(times=False))
        assert all(gaps is None for gaps in no_times.time_gaps)  # data without times: no time-gap vectors


def test_one_query_set_per_chosen_group():
    model = build({"history_groups": ["like"], "d_model": 8})  # T = 1 x 2 + 2 = 4
    assert model.groups == ["like"] and len(model.encoders[0]) == 1
    batch = make_batch()
    with torch.no_grad():
        base = model.eval()(batch).logits
        batch.sequences["click_video_id"] = torch.randint(1, VIDEOS, batch.sequences["click_video_id"].shape)
        torch.testing.assert_close(model(batch).logits, base)  # an unread group changes nothing


def test_d_model_not_divisible_by_the_boosted_tokens_is_refused():
    # known groups (the dataset's): T = 2 x 2 + 2 = 6
    with pytest.raises(ValueError, match="divisible by 6"):
        check_params("hyformer", {**SMALL, "d_model": 16}, ("click", "like"))
    check_params("hyformer", {**SMALL, "d_model": 16})  # without the dataset T is unknown: left to the dataset's check
    with pytest.raises(ValueError, match="divisible by 5"):  # named groups: known without the dataset
        check_params("hyformer", {**SMALL, "num_queries": 3, "history_groups": ["click"]})
    with pytest.raises(ValueError, match="divisible by 6"):
        build({"d_model": 16})
    with pytest.raises(ValueError, match="sequence_encoder must be one of"):
        check_params("hyformer", {"sequence_encoder": "mamba"})
    with pytest.raises(ValueError, match=r"\['view'\] are not sequence groups"):
        check_params("hyformer", {"history_groups": ["view"]}, ("click", "like"))
    with pytest.raises(ValueError, match="num_field_groups"):
        build({"num_field_groups": 6, "d_model": 20})  # 4 categorical + 1 dense token < 6 groups


def test_the_config_check_counts_the_datasets_groups():
    config = yaml.safe_load((Path(__file__).parents[1] / "config" / "config.yaml").read_text())
    kuairand = next(
        name
        for name, d in config["datasets"].items()
        if d["format"] == "kuairand" and len(d.get("history", {}).get("behaviors", [])) > 1
    )
    groups = config["datasets"][kuairand]["history"]["behaviors"]
    T = 2 * len(groups) + 2
    config["datasets"][kuairand]["models"].append("hyformer")
    config["models"]["hyformer"] = {
        "arch": "hyformer",
        "params": {"d_model": 4 * T, "num_queries": 2, "num_field_groups": 2},
    }
    check_config(copy.deepcopy(config))  # several histories are fine for this model
    config["models"]["hyformer"]["params"]["d_model"] = 4 * T + 2
    with pytest.raises(ConfigError, match=f"models.hyformer on dataset '{kuairand}'.*divisible by {T}"):
        check_config(copy.deepcopy(config))
    config["models"]["hyformer"]["params"]["history_groups"] = groups[:1]  # T = 4
    config["models"]["hyformer"]["params"]["d_model"] = 4 * 4
    check_config(copy.deepcopy(config))


def test_deterministic_given_seed():
    batch = make_batch()
    with torch.no_grad():
        torch.testing.assert_close(build().eval()(batch).logits, build().eval()(batch).logits)


def test_the_longer_encoder_is_causal_in_time():
    """``sequence_encoder: longer``: changing an event leaves every earlier event's state unchanged, changes its own
    and (through the queries) the output; padding is masked."""
    from ctrbench.models.hyformer_layers import CausalSequenceLayer

    torch.manual_seed(0)
    layer = CausalSequenceLayer(8, 2, ffn_multiplier=2.0).eval()
    x, mask = torch.randn(3, 6, 8), torch.tensor([[True] * 6, [False, False] + [True] * 4, [False] * 6])
    changed = x.clone()
    changed[:, 3] += 1.0
    a, b = layer(x, mask), layer(changed, mask)
    torch.testing.assert_close(a[:2, :3][mask[:2, :3]], b[:2, :3][mask[:2, :3]], rtol=0, atol=0)  # real events only
    assert not torch.allclose(a[:2, 3], b[:2, 3])
    padded = x.clone()
    padded[1, :2] = 7.0  # padding slots of row 1
    torch.testing.assert_close(layer(padded, mask)[1, 2:], a[1, 2:])
    assert torch.isfinite(a).all()


def test_the_longer_encoder_equals_explicitly_masked_causal_attention():
    """Moving the real events to the front and using SDPA's ``is_causal`` gives every real event the state the
    explicit boolean mask (``global_causal_mask``: real keys at or before the query) gives it."""
    from ctrbench.models.hyformer_layers import CausalSequenceLayer
    from ctrbench.models.long_sequence import CausalAttentionLayer, global_causal_mask

    torch.manual_seed(1)
    layer = CausalSequenceLayer(8, 2, ffn_multiplier=2.0).eval()
    x = torch.randn(4, 7, 8)
    mask = torch.arange(7) >= torch.tensor([[0], [3], [6], [7]])  # 7, 4, 1 and 0 real events, most recent last
    positions = torch.arange(7)
    explicit = CausalAttentionLayer.forward(layer, x, None, global_causal_mask(0, positions, positions, mask, mask))
    torch.testing.assert_close(layer(x, mask)[mask], explicit[mask])
    assert torch.isfinite(layer(x, mask)).all()
