"""AutoInt and AutoInt+ (the paper's, as FuxiCTR builds them), the field Transformer (the suite's former "autoint"),
each against its docstring's equations written out by hand; and ``dense_bias``, the one switch between rtdl's dense
tokens ``x w + b`` and FuxiCTR's ``x w``, in every model that makes dense tokens."""

from __future__ import annotations

import inspect
import math
import re

import pytest
import test_hyformer
import test_llm_ctr
import test_longer
import test_sequence_models
import torch
import torch.nn.functional as F
from test_models import FEATURE_MAPS, random_batch

from ctrbench.models.layers import FeatureEmbedding, InteractingLayer
from ctrbench.models.registry import MODELS, _load_models, build_model, check_params

_load_models()


def interacting_by_hand(layer: InteractingLayer, e: torch.Tensor, *, scale: bool) -> torch.Tensor:
    """The interacting layer's equations, one head, field and pair at a time."""
    B, F_, _ = e.shape
    W_Q, W_K, W_V = layer.qkv.weight.chunk(3)  # [d_att, d_in] each
    H = layer.num_heads
    d_h = W_Q.shape[0] // H
    s = math.sqrt(d_h) if scale else 1.0
    out = torch.zeros(B, F_, W_Q.shape[0])
    for b in range(B):
        for m in range(F_):
            heads = []
            for h in range(H):
                rows = slice(h * d_h, (h + 1) * d_h)
                psi = torch.stack([torch.dot(W_Q[rows] @ e[b, m], W_K[rows] @ e[b, k]) / s for k in range(F_)])
                alpha = torch.softmax(psi, dim=0)
                heads.append(sum(alpha[k] * (W_V[rows] @ e[b, k]) for k in range(F_)))
            y = torch.cat(heads)
            if layer.residual:
                y = y + (e[b, m] if layer.w_res is None else layer.w_res.weight @ e[b, m])
            if layer.norm is not None:
                y = F.layer_norm(y, y.shape, layer.norm.weight, layer.norm.bias, layer.norm.eps)
            out[b, m] = torch.relu(y)
    return out


@pytest.mark.parametrize(
    "d_in,d_att,kwargs",
    [
        (4, 4, {}),  # FuxiCTR: identity residual when the widths agree
        (4, 6, {}),  # W_Res when they differ
        (4, 4, {"project_residual": True}),  # the paper: W_Res always
        (4, 6, {"scale": True, "layer_norm": True}),
        (4, 6, {"residual": False}),
    ],
)
def test_interacting_layer_follows_its_equations(d_in, d_att, kwargs):
    torch.manual_seed(0)
    layer = InteractingLayer(d_in, d_att, 2, **kwargs).eval()
    if layer.norm is not None:
        torch.nn.init.normal_(layer.norm.weight)
        torch.nn.init.normal_(layer.norm.bias)
    projects = kwargs.get("residual", True) and (d_in != d_att or "project_residual" in kwargs)
    assert (layer.w_res is not None) == projects
    e = torch.randn(3, 5, d_in)
    expected = interacting_by_hand(layer, e, scale=kwargs.get("scale", False))
    torch.testing.assert_close(layer(e), expected, atol=1e-6, rtol=1e-5)


def tokens_by_hand(model, batch) -> torch.Tensor:
    """``e_m``: the categorical rows, then ``x_m v_m (+ b_m)`` per dense feature."""
    emb = model.embedding
    rows = [emb.embedding.weight[batch.categorical[:, i] + emb.offsets[i]] for i in range(emb.num_categorical)]
    for i in range(emb.num_dense):
        token = batch.dense[:, i : i + 1] * emb.dense_weight[i]
        rows.append(token if emb.dense_bias is None else token + emb.dense_bias[i])
    return torch.stack(rows, dim=1)


@pytest.mark.parametrize("fm_name", ["basic", "two_labels", "dense_only"])
@pytest.mark.parametrize("arch", ["autoint", "autoint_plus"])
def test_autoint_logit_is_a_linear_head_over_every_fields_output(arch, fm_name):
    """logit = w^T [e^Res_1 || ... || e^Res_F] + b (+ MLP([e_1 || ... || e_F]) for AutoInt+)."""
    fm = FEATURE_MAPS[fm_name]
    torch.manual_seed(0)
    params = {"embedding_dim": 4, "num_layers": 2, "num_heads": 2, "attention_dim": 6}
    if arch == "autoint_plus":
        params["mlp_hidden"] = [5]
    model = build_model(arch, fm, params).eval()
    batch = random_batch(fm)
    e = tokens_by_hand(model, batch)
    h = e
    for layer in model.interacting:
        h = interacting_by_hand(layer, h, scale=False)
    expected = h.flatten(1) @ model.head.weight.T + model.head.bias
    assert model.head.in_features == e.shape[1] * 6  # every field's output, none pooled
    if arch == "autoint_plus":
        first, last = model.dnn[0], model.dnn[-1]
        expected = expected + torch.relu(e.flatten(1) @ first.weight.T + first.bias) @ last.weight.T + last.bias
    torch.testing.assert_close(model(batch).logits, expected, atol=1e-6, rtol=1e-5)


def test_autoint_has_no_biases_projection_norm_or_ffn_by_default():
    model = build_model("autoint", FEATURE_MAPS["basic"], {"embedding_dim": 8, "num_layers": 3})
    layers = list(model.interacting)
    assert all(layer.qkv.bias is None and layer.w_res is None and layer.norm is None for layer in layers)
    names = {name for name, _ in model.named_parameters()}
    # embeddings (dense: x v, no bias), one fused W_Q|W_K|W_V per layer, the head
    assert names == {"embedding.embedding.weight", "embedding.dense_weight", "head.weight", "head.bias"} | {
        f"interacting.{i}.qkv.weight" for i in range(3)
    }
    assert model.dnn is None


def test_field_transformer_follows_its_equations():
    """A = softmax(QK^T/sqrt(d/H))V per head; X' = LN(X + A W_O + b_O); X'' = LN(X' + FFN(X')); mean over fields."""
    fm = FEATURE_MAPS["basic"]
    torch.manual_seed(0)
    model = build_model("field_transformer", fm, {"embedding_dim": 4, "num_layers": 1, "num_heads": 2}).eval()
    batch = random_batch(fm)
    x = tokens_by_hand(model, batch)  # [B, F, d], with the dense biases (the default)
    block = model.blocks[0]
    q, k, v = (x @ block.attention.qkv.weight.T + block.attention.qkv.bias).chunk(3, dim=-1)
    heads = []
    for h in range(2):
        cols = slice(2 * h, 2 * h + 2)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / math.sqrt(2)
        heads.append(scores.softmax(dim=-1) @ v[..., cols])
    attended = torch.cat(heads, dim=-1) @ block.attention.out.weight.T + block.attention.out.bias
    x = block.norm1(x + attended)
    w1, w2 = block.ffn[0], block.ffn[3]
    assert w1.out_features == 8  # FFN of 2 d
    x = block.norm2(x + torch.relu(x @ w1.weight.T + w1.bias) @ w2.weight.T + w2.bias)
    expected = x.mean(dim=1) @ model.head.weight.T + model.head.bias
    torch.testing.assert_close(model(batch).logits, expected, atol=1e-6, rtol=1e-5)


def test_param_checks_name_the_problem():
    for arch, params, message in [
        ("autoint", {"num_heads": 3}, "attention width 16 (attention_dim, else embedding_dim) is not divisible by num"),
        ("autoint", {"num_layers": 0}, "num_layers must be an integer >= 1, got 0"),
        ("autoint_plus", {"mlp_hidden": []}, "mlp_hidden is empty, which leaves AutoInt alone: use arch autoint"),
        ("deepfm", {"dense_bias": "no"}, "dense_bias must be true or false, got 'no'"),
        ("bst", {"dense_bias": 0}, "dense_bias must be true or false, got 0"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            check_params(arch, params)


# every model with dense tokens, on a dataset with dense features, at a small size
DENSE_TOKEN_MODELS = {
    "autoint": (FEATURE_MAPS["basic"], {}),
    "autoint_plus": (FEATURE_MAPS["basic"], {}),
    "field_transformer": (FEATURE_MAPS["basic"], {}),
    "ft_transformer": (FEATURE_MAPS["basic"], {"dense_tokens": "per_feature"}),
    "ft_transformer_single": (FEATURE_MAPS["basic"], {"dense_tokens": "single"}),
    "deepfm": (FEATURE_MAPS["basic"], {}),
    "dcnv3": (FEATURE_MAPS["basic"], {}),
    "infnet": (FEATURE_MAPS["basic"], {}),
    "llm_ctr": (test_llm_ctr.FM, test_llm_ctr.TINY),
    "longer": (test_longer.feature_map(), test_longer.SMALL),
    "hyformer": (test_hyformer.FM, test_hyformer.SMALL),
    **{name: (test_sequence_models.FM, params) for name, (_, params) in test_sequence_models.CONFIGS.items()},
}
ARCH_OF = {**{name: name for name in DENSE_TOKEN_MODELS}, "ft_transformer_single": "ft_transformer"}
ARCH_OF.update({name: arch for name, (arch, _) in test_sequence_models.CONFIGS.items()})
FM_FOR_ARCH = {ARCH_OF[name]: fm for name, (fm, _) in DENSE_TOKEN_MODELS.items()}


def dense_token_embeddings(model) -> list[FeatureEmbedding]:
    return [m for m in model.modules() if isinstance(m, FeatureEmbedding) and m.num_dense_tokens]


def test_every_model_that_makes_dense_tokens_takes_dense_bias():
    """A model with dense tokens takes ``dense_bias``; one without them does not (it would be a silent no-op)."""
    for arch, cls in MODELS.items():
        if not cls.__module__.startswith("ctrbench."):
            continue
        torch.manual_seed(0)
        fm = FM_FOR_ARCH.get(arch, FEATURE_MAPS["basic"])
        params = next((p for name, (_, p) in DENSE_TOKEN_MODELS.items() if ARCH_OF[name] == arch), {})
        makes_tokens = bool(dense_token_embeddings(build_model(arch, fm, params)))
        assert makes_tokens == ("dense_bias" in inspect.signature(cls.__init__).parameters), arch
        assert makes_tokens == (arch in FM_FOR_ARCH), arch


@pytest.mark.parametrize("name", list(DENSE_TOKEN_MODELS))
def test_dense_bias_false_gives_fuxictrs_dense_tokens(name):
    fm, params = DENSE_TOKEN_MODELS[name]
    arch = ARCH_OF[name]
    default = inspect.signature(MODELS[arch].__init__).parameters["dense_bias"].default
    assert default is (arch not in ("autoint", "autoint_plus"))  # unchanged where it was; the paper's form for AutoInt
    for dense_bias in (False, True):
        torch.manual_seed(0)
        model = build_model(arch, fm, {**params, "dense_bias": dense_bias})
        embeddings = dense_token_embeddings(model)
        assert embeddings
        x = torch.randn(4, len(fm.dense))
        for emb in embeddings:
            if emb.dense_mode == "per_feature":
                assert (emb.dense_bias is not None) == dense_bias
                expected = x.unsqueeze(-1) * emb.dense_weight + (emb.dense_bias if dense_bias else 0)  # [B, n, d]
            else:
                assert (emb.dense_linear.bias is not None) == dense_bias
                expected = (x @ emb.dense_linear.weight.T + (emb.dense_linear.bias if dense_bias else 0)).unsqueeze(1)
            torch.testing.assert_close(emb.dense_tokens(x), expected)
            if not dense_bias:
                assert torch.equal(emb.dense_tokens(torch.zeros_like(x)), torch.zeros_like(expected))  # 0 -> zero token
