"""Models and shared layers: shapes, gradients, sparse embeddings, variants and reference formulas."""

from __future__ import annotations

import itertools
import re

import pytest
import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, tasks_of
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import CrossNetMix, CrossNetV2, FeatureEmbedding, FMInteraction, MultiHeadSelfAttention
from ctrbench.models.registry import BUILT_IN, MODELS, _load_models, build_model

_load_models()
# the flat-feature models; the sequence models (which refuse a dataset without histories) are in test_sequence_models
# (other test modules may register test-only models: only the package's own count)
PACKAGE_MODELS = {arch: cls for arch, cls in MODELS.items() if cls.__module__.startswith("ctrbench.")}
# llm_ctr (one task, and a language model with an embedding table of its own): tests/test_llm_ctr.py
LLM_ARCHS = ["llm_ctr"]
ARCHS = sorted(arch for arch, cls in PACKAGE_MODELS.items() if not cls.needs_sequences and arch not in LLM_ARCHS)
VOCABS = (5, 7, 4)


def feature_map(*, n_dense: int = 2, n_labels: int = 1, n_cat: int = 3) -> FeatureMap:
    features = [Feature(f"c{i}", "categorical", vocab_size=v) for i, v in enumerate(VOCABS[:n_cat])]
    features += [Feature(f"d{i}", "dense") for i in range(n_dense)]
    return FeatureMap(dataset="tiny", tasks=tasks_of([f"y{i}" for i in range(n_labels)]), features=features)


FEATURE_MAPS = {
    "basic": feature_map(),
    "two_labels": feature_map(n_labels=2),
    "no_dense": feature_map(n_dense=0),
    "dense_only": feature_map(n_cat=0),
}


def random_batch(fm: FeatureMap, size: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    cat = None
    if fm.categorical:
        cat = torch.stack([torch.randint(0, f.vocab_size, (size,), generator=g) for f in fm.categorical], dim=1)
        cat[0] = 0  # a row of missing values
    dense = torch.randn(size, len(fm.dense), generator=g) if fm.dense else None
    labels = torch.randint(0, 2, (size, fm.num_tasks), generator=g).float()
    return Batch(labels=labels, categorical=cat, dense=dense)


def embedding_weights(model: nn.Module) -> set[int]:
    return {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}


def test_registry_has_every_model():
    assert ARCHS == [
        "autoint", "autoint_plus", "dcnv2", "dcnv3", "deepfm", "field_transformer", "ft_transformer", "infnet", "mmoe",
        "omoe", "ple", "shared_bottom",
    ]  # fmt: skip
    assert sorted(set(PACKAGE_MODELS) - set(ARCHS) - set(LLM_ARCHS)) == [
        "bst", "din", "hyformer", "longer", "mamba4rec", "mdaf", "sum_pooling"
    ]  # fmt: skip
    assert set(LLM_ARCHS) <= set(PACKAGE_MODELS)
    for arch, cls in MODELS.items():
        assert issubclass(cls, CTRModel) and cls.arch == arch
    # the registry's table of modules, which model_class imports one at a time, names where each model is defined
    assert {arch: cls.__module__ for arch, cls in PACKAGE_MODELS.items()} == BUILT_IN


@pytest.mark.parametrize("sparse", [False, True], ids=["dense_grad", "sparse_grad"])
@pytest.mark.parametrize("fm_name", list(FEATURE_MAPS))
@pytest.mark.parametrize("arch", ARCHS)
def test_forward_backward(arch, fm_name, sparse):
    fm = FEATURE_MAPS[fm_name]
    torch.manual_seed(0)
    model = build_model(arch, fm, sparse_embeddings=sparse)
    batch = random_batch(fm)
    out = model(batch)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (8, fm.num_tasks)
    assert torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()

    tables = embedding_weights(model)
    assert bool(tables) == bool(fm.categorical)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{arch}: no gradient for {name}"
        expect_sparse = sparse and id(p) in tables
        assert p.grad.is_sparse == expect_sparse, f"{arch}: {name} grad sparse={p.grad.is_sparse}"
        values = p.grad.coalesce().values() if p.grad.is_sparse else p.grad
        assert torch.isfinite(values).all(), f"{arch}: non-finite gradient for {name}"


@pytest.mark.parametrize("arch", ARCHS)
def test_missing_row_is_learnable(arch):
    fm = FEATURE_MAPS["basic"]
    torch.manual_seed(0)
    model = build_model(arch, fm)
    batch = random_batch(fm)
    batch.categorical.zero_()  # every categorical value missing
    model.loss(model(batch), batch).backward()
    emb = next(m for m in model.modules() if isinstance(m, FeatureEmbedding))
    grad = emb.embedding.weight.grad
    touched = grad.abs().sum(dim=1) > 0
    assert touched[emb.offsets].all()  # row 0 of every field
    assert touched.sum() == len(VOCABS)  # and nothing else


@pytest.mark.parametrize("arch", ARCHS)
def test_deterministic_given_seed(arch):
    fm = FEATURE_MAPS["basic"]
    batch = random_batch(fm)
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(arch, fm).eval()
        outs.append(model(batch).logits)
    assert torch.equal(outs[0], outs[1])
    torch.manual_seed(124)
    assert not torch.equal(outs[0], build_model(arch, fm).eval()(batch).logits)


@pytest.mark.parametrize(
    "arch,params",
    [
        ("dcnv2", {"cross_type": "mix", "structure": "stacked", "low_rank": 4, "num_experts": 3}),
        ("dcnv2", {"cross_type": "mix", "structure": "parallel", "batch_norm": True, "mlp_hidden": [8]}),
        ("dcnv2", {"cross_type": "full", "structure": "stacked", "mlp_hidden": []}),
        ("deepfm", {"mlp_hidden": [8, 4], "batch_norm": True, "embedding_dim": 4}),
        ("autoint", {"embedding_dim": 8, "num_heads": 4, "num_layers": 1}),
        ("autoint", {"attention_dim": 6, "num_heads": 3, "use_scale": True, "layer_norm": True, "dropout": 0.1}),
        ("autoint", {"use_residual": False, "project_residual": True, "dense_bias": True}),
        ("autoint_plus", {"mlp_hidden": [8], "batch_norm": True, "dropout": 0.1}),
        ("field_transformer", {"embedding_dim": 8, "num_heads": 4, "num_layers": 1, "dense_bias": False}),
        ("ft_transformer", {"dense_tokens": "per_feature", "pooling": "mean"}),
        ("shared_bottom", {"bottom_hidden": [8, 4], "tower_hidden": [], "batch_norm": True, "dropout": 0.1}),
        ("mmoe", {"num_experts": 2, "expert_hidden": [8, 4], "gate_hidden": [4], "batch_norm": True}),
        ("omoe", {"num_experts": 3, "tower_hidden": [4, 2], "dropout": 0.1}),
        ("ple", {"num_levels": 3, "num_specific_experts": 2, "num_shared_experts": 1, "gate_hidden": [4]}),
    ],
)
@pytest.mark.parametrize("fm_name", ["basic", "two_labels"])
def test_variants_run(arch, params, fm_name):
    fm = FEATURE_MAPS[fm_name]
    torch.manual_seed(0)
    model = build_model(arch, fm, params)
    batch = random_batch(fm)
    out = model(batch)
    assert out.logits.shape == (8, fm.num_tasks) and torch.isfinite(out.logits).all()
    model.loss(out, batch).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_dcnv2_variant_modules():
    fm = FEATURE_MAPS["basic"]
    mix = build_model("dcnv2", fm, {"cross_type": "mix", "structure": "stacked", "mlp_hidden": [8]})
    assert isinstance(mix.cross, CrossNetMix) and mix.head.in_features == 8
    full = build_model("dcnv2", fm, {"mlp_hidden": [8]})
    width = len(VOCABS) * 16 + 2  # flattened embeddings + raw dense values
    assert isinstance(full.cross, CrossNetV2) and full.head.in_features == width + 8


@pytest.mark.parametrize(
    "fm_name,dense_tokens,expected",
    [
        ("basic", "single", 3 + 1 + 1),  # categorical + one dense token + CLS
        ("basic", "per_feature", 3 + 2 + 1),
        ("no_dense", "single", 3 + 1),
        ("dense_only", "per_feature", 2 + 1),
    ],
)
def test_ft_transformer_token_count(fm_name, dense_tokens, expected):
    fm = FEATURE_MAPS[fm_name]
    model = build_model("ft_transformer", fm, {"dense_tokens": dense_tokens, "d_token": 8})
    assert model.num_tokens == expected
    tokens = model.tokens(random_batch(fm))
    assert tokens.shape == (8, expected, 8)
    assert torch.equal(tokens[:, -1], model.cls.expand(8, -1))  # CLS appended last


def test_feature_embedding_one_table_and_embed_field():
    fm = FEATURE_MAPS["basic"]
    emb = FeatureEmbedding(fm, 4, dense_mode="per_feature")
    assert emb.embedding.num_embeddings == sum(VOCABS)
    assert emb.offsets.tolist() == [0, 5, 12]
    batch = random_batch(fm)
    tokens = emb(batch)
    assert tokens.shape == (8, 3 + 2, 4)
    for i, f in enumerate(fm.categorical):
        assert torch.equal(tokens[:, i], emb.embed_field(f.name, batch.categorical[:, i]))
    seq = torch.tensor([[0, 3, 6], [1, 0, 0]])  # e.g. a history sharing field c1's vocabulary
    assert torch.equal(emb.embed_field("c1", seq), emb.embedding.weight[seq + 5])
    expected_dense = batch.dense.unsqueeze(-1) * emb.dense_weight + emb.dense_bias
    assert torch.allclose(tokens[:, 3:], expected_dense)
    assert FeatureEmbedding(fm, 4, dense_mode="single")(batch).shape == (8, 3 + 1, 4)
    assert FeatureEmbedding(fm, 4, dense_mode="none")(batch).shape == (8, 3, 4)
    with pytest.raises(ValueError):
        FeatureEmbedding(fm, 4, dense_mode="bogus")


def test_crossnetv2_matches_formula():
    torch.manual_seed(0)
    net = CrossNetV2(3, num_layers=2)
    x0 = torch.tensor([[0.5, -1.0, 2.0]])
    expected = x0[0].tolist()
    for layer in net.layers:
        W, b = layer.weight.tolist(), layer.bias.tolist()
        # x_{l+1}[i] = x0[i] * (sum_j W[i][j] x_l[j] + b[i]) + x_l[i]
        expected = [
            x0[0, i].item() * (sum(W[i][j] * expected[j] for j in range(3)) + b[i]) + expected[i] for i in range(3)
        ]
    assert torch.allclose(net(x0)[0], torch.tensor(expected), atol=1e-6)


def test_crossnetmix_matches_per_expert_loop():
    torch.manual_seed(0)
    net = CrossNetMix(5, num_layers=2, low_rank=3, num_experts=2)
    with torch.no_grad():
        net.bias.normal_()  # nonzero bias so that its broadcasting is checked
    x0 = torch.randn(4, 5)
    x = x0
    for l in range(2):  # FuxiCTR's loop, one expert at a time, column vectors
        gates = net.gate(x).softmax(dim=-1)  # [B, E]
        out = torch.zeros_like(x)
        for e in range(2):
            v = torch.tanh(x @ net.V[l, e])  # V_e^T x
            v = torch.tanh(v @ net.C[l, e].T)  # C_e v
            expert = x0 * (v @ net.U[l, e].T + net.bias[l])
            out = out + gates[:, e : e + 1] * expert
        x = out + x
    assert torch.allclose(net(x0), x, atol=1e-5)


def test_fm_matches_pairwise_sum():
    torch.manual_seed(0)
    v = torch.randn(2, 4, 3)
    brute = torch.stack(
        [sum(torch.dot(v[b, i], v[b, j]) for i, j in itertools.combinations(range(4), 2)) for b in range(2)]
    ).unsqueeze(1)
    assert torch.allclose(FMInteraction()(v), brute, atol=1e-5)


def test_attention_rejects_indivisible_heads():
    with pytest.raises(ValueError):
        MultiHeadSelfAttention(10, num_heads=3)


@pytest.mark.parametrize("arch", ARCHS)
def test_unknown_param_raises(arch):
    with pytest.raises(ValueError, match="no_such_param"):
        build_model(arch, FEATURE_MAPS["basic"], {"no_such_param": 1})


@pytest.mark.parametrize(
    "arch,params",
    [("dcnv2", {"cross_type": "bogus"}), ("dcnv2", {"structure": "bogus"}), ("ft_transformer", {"pooling": "bogus"}),
     ("ft_transformer", {"dense_tokens": "bogus"}), ("autoint", {"num_heads": 3}), ("autoint", {"num_layers": 0}),
     ("autoint", {"attention_dim": 8, "num_heads": 3}), ("autoint_plus", {"mlp_hidden": []}),
     ("field_transformer", {"num_heads": 3}), ("deepfm", {"dense_bias": "no"})],
)
def test_invalid_choice_raises(arch, params):
    with pytest.raises(ValueError):
        build_model(arch, FEATURE_MAPS["basic"], params)


def test_param_values_are_checked_when_the_config_is_read():
    """A value outside a param's ``Literal`` (any model), and LONGER's own limits, are refused by ``check_params``
    (which the config check runs before any job), naming the param and the values it takes."""
    from ctrbench.models.registry import check_params

    for arch, params, message in [
        ("longer", {"merge": "mean"}, "merge must be one of ['concat', 'inner_trans'], got 'mean'"),
        ("sum_pooling", {"pooling": "max"}, "pooling must be one of ['sum', 'mean'], got 'max'"),
        ("bst", {"pooling": "first"}, "pooling must be one of ['concat', 'mean', 'target']"),
        ("longer", {"merge_size": 0}, "merge_size must be an integer >= 1, got 0"),
        ("longer", {"num_query_tokens": 0}, "num_query_tokens must be >= 1 or null"),
        ("longer", {"d_model": 30, "num_heads": 4}, "d_model 30 must be divisible by num_heads 4"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_params(arch, params)
    for arch in MODELS:  # every model's defaults pass
        check_params(arch, {})
    check_params("longer", {"merge": "inner_trans", "merge_size": 8, "num_query_tokens": None})
