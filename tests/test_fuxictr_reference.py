"""Logits against FuxiCTR 2.3.10's own layers on copied weights (fp32, CPU, eval mode), for every model here with a
FuxiCTR counterpart, so that a drift from the reference fails. Needs ``pip install --no-deps fuxictr==2.3.10``
(the README's test set-up installs it); skipped, with the reason, where it is missing or another version.

What comes from the installed fuxictr package (loaded file by file, see ``_load``): ``CrossNetV2``, ``CrossNetMix``,
``InnerProductInteraction`` (the FM term), ``MLP_Block`` and ``ScaledDotProductAttention``. The models themselves
live in FuxiCTR's GitHub ``model_zoo``, which the wheel does not ship, so each reference model below wires those
layers as its ``model_zoo`` class does (reczoo/FuxiCTR 0245987, fuxictr/version.py 2.3.10): DCNv2 and DeepFM from
those layers alone; AutoInt's ``MultiHeadSelfAttention`` (model_zoo only) as W_q, W_k, W_v, W_res without bias around
the package's ``ScaledDotProductAttention``. FuxiCTR 2.3.10 has no DCNv3 (removed from model_zoo in 2.3.5): its
reference follows model_zoo/DCNv3/src/DCNv3.py as last published (7b98a49, fuxictr 2.3.4), built from torch alone.
FuxiCTR's ``FeatureEmbedding`` is written out too (one ``nn.Embedding`` per field, ``nn.Linear(1, d, bias=False)``
per numeric feature): its module imports the whole layers package, which imports polars and ray.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_models import feature_map, random_batch
from torch import nn

from ctrbench.models.layers import MLP, CrossNetMix, CrossNetV2, FeatureEmbedding, FMInteraction
from ctrbench.models.registry import build_model

REFERENCE_VERSION = "2.3.10"
ATOL = 1e-6  # fp32; the differences seen are summation order, a few 1e-8


def _installed_version() -> str | None:
    try:
        return importlib.metadata.version("fuxictr")
    except importlib.metadata.PackageNotFoundError:
        return None


VERSION = _installed_version()
pytestmark = pytest.mark.skipif(
    VERSION != REFERENCE_VERSION,
    reason=f"needs fuxictr=={REFERENCE_VERSION} (pip install --no-deps fuxictr=={REFERENCE_VERSION}); found {VERSION}",
)


def _load(relative: str):
    """One module of fuxictr/pytorch/layers by path: ``import fuxictr.pytorch.layers`` would run the package's
    ``__init__``, which imports every layer, and through ``pretrained_embedding`` polars and ray (not our deps)."""
    root = Path(importlib.util.find_spec("fuxictr").origin).parent / "pytorch" / "layers"
    name = "fuxictr_reference_" + Path(relative).stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, root / relative)
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def fx():
    """The reference layers, by class name."""
    modules = [_load(f) for f in ("interactions/cross_net.py", "interactions/inner_product.py",
                                  "blocks/mlp_block.py", "attentions/dot_product_attention.py")]  # fmt: skip
    return type("FuxiCTR", (), {k: v for m in modules for k, v in vars(m).items() if isinstance(v, type)})


def close(ours: torch.Tensor, reference: torch.Tensor) -> None:
    assert ours.shape == reference.shape
    assert reference.abs().max() > 0.1  # values where a difference would show, not a bias next to vanishing terms
    torch.testing.assert_close(ours, reference, atol=ATOL, rtol=0)


def wake(model: nn.Module) -> nn.Module:
    """Embedding tables (DeepFM's first-order weights too) and dense tokens of N(0, 0.5) in place of their
    N(0, 1e-4) start, so that every part moves the logits."""
    for module in model.modules():
        for param in (module.weight,) if isinstance(module, nn.Embedding) else ():
            nn.init.normal_(param, std=0.5)
        for param in (module.dense_weight, module.dense_bias) if isinstance(module, FeatureEmbedding) else ():
            if param is not None:
                nn.init.normal_(param, std=0.5)
    return model


# ---- layers ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def test_crossnetv2(fx):
    torch.manual_seed(0)
    ours, ref = CrossNetV2(12, 3), fx.CrossNetV2(12, 3)
    for theirs, mine in zip(ref.cross_layers, ours.layers):
        theirs.load_state_dict(mine.state_dict())
    x0 = torch.randn(16, 12)
    close(ours(x0), ref(x0))


def copy_crossnetmix(ref, ours: CrossNetMix) -> None:
    """Ours stacks layers and experts in 4-d tensors and keeps one ``[E, D]`` gate; FuxiCTR keeps per-layer lists,
    one ``Linear(D, 1)`` per expert and a ``[D, 1]`` bias."""
    for i in range(ours.U.shape[0]):
        ref.U_list[i].copy_(ours.U[i])
        ref.V_list[i].copy_(ours.V[i])
        ref.C_list[i].copy_(ours.C[i])
        ref.bias[i].copy_(ours.bias[i].unsqueeze(1))
    for e, gate in enumerate(ref.gating):
        gate.weight.copy_(ours.gate.weight[e : e + 1])


@torch.no_grad()
def test_crossnetmix(fx):
    torch.manual_seed(0)
    ours = CrossNetMix(12, 2, low_rank=3, num_experts=4)
    ours.bias.normal_()  # a nonzero bias, so that its layout is checked
    ref = fx.CrossNetMix(12, layer_num=2, low_rank=3, num_experts=4)
    copy_crossnetmix(ref, ours)
    x0 = torch.randn(16, 12)
    close(ours(x0), ref(x0))


@torch.no_grad()
def test_fm_term(fx):
    torch.manual_seed(0)
    v = torch.randn(16, 6, 4)
    close(FMInteraction()(v), fx.InnerProductInteraction(6, output="product_sum")(v))


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("output_dim", [None, 1])
@torch.no_grad()
def test_mlp_block(fx, batch_norm, output_dim):
    torch.manual_seed(0)
    ours = MLP(10, (8, 4), dropout=0.2, batch_norm=batch_norm, output_dim=output_dim).eval()
    ref = fx.MLP_Block(10, [8, 4], "ReLU", output_dim, dropout_rates=0.2, batch_norm=batch_norm).eval()
    for name, buffer in ours.named_buffers():  # running statistics that are not the identity
        buffer.copy_(torch.rand_like(buffer.float()) + 0.5 if "var" in name else torch.randn_like(buffer.float()))
    ref.mlp.load_state_dict(ours.state_dict())  # the same layers in the same order
    x = torch.randn(16, 10)
    close(ours(x), ref(x))


# ---- models ----------------------------------------------------------------------------------------------------------


def fuxictr_embedding(model_embedding, dense_bias: bool) -> nn.Module:
    """FuxiCTR's FeatureEmbedding holding our weights: one table per field, x * w (+ our b, where we add one)."""
    emb = model_embedding
    tables = nn.ModuleList()
    for rows in torch.tensor_split(emb.embedding.weight, emb.offsets[1:].tolist()):  # each field's rows
        table = nn.Embedding(*rows.shape)
        table.weight.data.copy_(rows)
        tables.append(table)
    numeric = nn.ModuleList()
    for i in range(emb.num_dense):
        linear = nn.Linear(1, emb.embedding_dim, bias=False)
        linear.weight.data.copy_(emb.dense_weight[i].unsqueeze(1))
        numeric.append(linear)

    class Embedding(nn.Module):
        def forward(self, batch):  # [B, F, d], FuxiCTR's torch.stack over the fields
            fields = [table(batch.categorical[:, i]) for i, table in enumerate(tables)]
            for i, linear in enumerate(numeric):
                token = linear(batch.dense[:, i].view(-1, 1))
                fields.append(token + emb.dense_bias[i] if dense_bias else token)
            return torch.stack(fields, dim=1)

    return Embedding()


def mlp_block_like(fx, ours: MLP, input_dim: int, hidden, output_dim):
    """FuxiCTR's MLP_Block with our MLP's weights (same layers in the same order, dropout where ours has it)."""
    dropout = next((m.p for m in ours if isinstance(m, nn.Dropout)), 0.0)
    ref = fx.MLP_Block(input_dim, list(hidden), "ReLU", output_dim, dropout_rates=dropout).eval()
    ref.mlp.load_state_dict(ours.state_dict())
    return ref


@pytest.mark.parametrize("cross_type", ["full", "mix"])
@pytest.mark.parametrize("structure", ["crossnet_only", "stacked", "parallel"])
@torch.no_grad()
def test_dcnv2(fx, cross_type, structure):
    """model_zoo/DCNv2: flat embeddings -> CrossNetV2 / CrossNetMix -> (stacked | parallel) MLP_Block -> fc. On
    categorical fields only: FuxiCTR embeds numeric features into x0, the paper (and we) append them raw."""
    fm = feature_map(n_dense=0)
    torch.manual_seed(0)
    hidden = [] if structure == "crossnet_only" else [8, 6]
    params = {"embedding_dim": 4, "num_cross_layers": 2, "cross_type": cross_type, "low_rank": 3, "mlp_hidden": hidden}
    model = build_model("dcnv2", fm, {**params, "structure": "stacked" if structure == "crossnet_only" else structure})
    wake(model).eval()
    width = model.cross.U.shape[2] if cross_type == "mix" else model.cross.layers[0].in_features
    if cross_type == "full":
        cross = fx.CrossNetV2(width, 2)
        for theirs, mine in zip(cross.cross_layers, model.cross.layers):
            theirs.load_state_dict(mine.state_dict())
    else:
        cross = fx.CrossNetMix(width, 2, low_rank=3, num_experts=4)
        copy_crossnetmix(cross, model.cross)
    batch = random_batch(fm, size=16)
    x0 = fuxictr_embedding(model.embedding, False)(batch).flatten(1)  # flatten_emb=True
    cross_out = cross(x0)
    if structure == "crossnet_only":
        final = cross_out
    elif structure == "stacked":
        final = mlp_block_like(fx, model.mlp, width, hidden, None)(cross_out)
    else:
        final = torch.cat([cross_out, mlp_block_like(fx, model.mlp, width, hidden, None)(x0)], dim=-1)
    close(model(batch).logits, final @ model.head.weight.T + model.head.bias)


@pytest.mark.parametrize("dense_bias", [False, True])
@torch.no_grad()
def test_deepfm(fx, dense_bias):
    """model_zoo/DeepFM: LR (one weight per categorical value, x * w per numeric feature, a bias) + the FM term +
    MLP_Block on the flattened embeddings. ``dense_bias=False`` is FuxiCTR's model; with True the reference adds our
    dense-token biases, the one thing the switch changes."""
    fm = feature_map(n_dense=2)
    torch.manual_seed(0)
    model = wake(build_model("deepfm", fm, {"embedding_dim": 4, "mlp_hidden": [8, 6], "dense_bias": dense_bias})).eval()
    model.bias.fill_(0.3)
    batch = random_batch(fm, size=16)
    emb = fuxictr_embedding(model.embedding, dense_bias)(batch)  # [B, F, d]
    lr_weights = [model.linear_cat(batch.categorical[:, i] + model.embedding.offsets[i]) for i in range(3)]
    lr_weights += [batch.dense[:, i : i + 1] * model.linear_dense.weight[:, i] for i in range(2)]
    lr = torch.stack(lr_weights, dim=1).sum(dim=1) + model.bias  # LogisticRegression(use_bias=True)
    fm_term = fx.InnerProductInteraction(emb.shape[1], output="product_sum")(emb)
    dnn = mlp_block_like(fx, model.dnn, emb.shape[1] * 4, [8, 6], 1)(emb.flatten(1))
    close(model(batch).logits, lr + fm_term + dnn)


class AutoIntAttention(nn.Module):
    """model_zoo/AutoInt's MultiHeadSelfAttention around the package's ScaledDotProductAttention."""

    def __init__(self, fx, layer, *, num_heads: int, use_scale: bool):
        super().__init__()
        self.w_q, self.w_k, self.w_v = layer.qkv.weight.chunk(3)
        attention_dim, input_dim = self.w_q.shape
        # FuxiCTR: W_res only where the widths differ (use_residual=True); ours must hold it exactly there
        self.w_res = layer.w_res.weight if input_dim != attention_dim else None
        self.heads = num_heads
        self.scale = (attention_dim // num_heads) ** 0.5 if use_scale else None
        self.attention = fx.ScaledDotProductAttention(0.0)

    def forward(self, x):
        B = x.shape[0]
        split = lambda t: t.view(B, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)
        out, _ = self.attention(split(x @ self.w_q.T), split(x @ self.w_k.T), split(x @ self.w_v.T), scale=self.scale)
        out = out.transpose(1, 2).contiguous().view(B, -1, self.w_q.shape[0])
        out = out + (x if self.w_res is None else x @ self.w_res.T)  # use_residual=True
        return out.relu()


@pytest.mark.parametrize(
    "arch,params",
    [
        ("autoint", {}),
        ("autoint", {"attention_dim": 6, "num_layers": 3}),  # W_res in layer 1 only, as FuxiCTR
        ("autoint", {"use_scale": True, "num_heads": 1}),
        ("autoint_plus", {"mlp_hidden": [8, 6]}),
        ("autoint_plus", {"attention_dim": 6, "mlp_hidden": [8]}),
    ],
)
@torch.no_grad()
def test_autoint(fx, arch, params):
    """model_zoo/AutoInt: attention layers -> flatten -> fc, plus MLP_Block(flattened embeddings) when the DNN is set
    (AutoInt+); FuxiCTR's numeric embedding x * w (our default for AutoInt)."""
    fm = feature_map(n_dense=2)
    torch.manual_seed(0)
    model = wake(build_model(arch, fm, {"embedding_dim": 4, "num_heads": 2, **params})).eval()
    model.head.bias.fill_(0.2)
    batch = random_batch(fm, size=16)
    emb = fuxictr_embedding(model.embedding, False)(batch)
    h = emb
    heads, scale = params.get("num_heads", 2), params.get("use_scale", False)
    for layer in model.interacting:
        h = AutoIntAttention(fx, layer, num_heads=heads, use_scale=scale)(h)
    expected = h.flatten(1) @ model.head.weight.T + model.head.bias
    if arch == "autoint_plus":
        expected = expected + mlp_block_like(fx, model.dnn, emb.shape[1] * 4, params["mlp_hidden"], 1)(emb.flatten(1))
    close(model(batch).logits, expected)


def dcnv3_reference(model, batch, emb):
    """model_zoo/DCNv3 (fuxictr 2.3.4): multi-head layout, ECN and LCN with H = W x, mask = ReLU(LN(H)),
    x <- (x | x0) * ([H, H * mask] + b) + x, a linear logit per head averaged; Tri-BCE."""
    H = model.embedding.num_heads
    heads = torch.stack(torch.tensor_split(emb, H, dim=-1), dim=1)  # B x H x F x d
    first, second = torch.tensor_split(heads, 2, dim=-1)
    x0 = torch.cat([first.flatten(start_dim=2), second.flatten(start_dim=2)], dim=-1)

    def network(net, exponential):
        x = x0
        for layer in net.layers:
            h = x @ layer.w.weight.T
            mask = F.layer_norm(h, h.shape[-1:], layer.norm.weight, layer.norm.bias, layer.norm.eps).relu()
            x = (x if exponential else x0) * (torch.cat([h, h * mask], dim=-1) + layer.bias) + x
        return (x @ net.fc.weight.T + net.fc.bias).mean(dim=1)

    dlogit, slogit = network(model.ecn, True), network(model.lcn, False)
    logit = (dlogit + slogit) * 0.5
    # FuxiCTR takes F.binary_cross_entropy of sigmoid(z), which saturates in fp32 past |z| ~ 17 (logits reach 30
    # here); the same BCE from the logit, so that what is compared is the Tri-BCE weighting
    bce = lambda z: F.binary_cross_entropy_with_logits(z, batch.labels)
    loss, loss_d, loss_s = bce(logit), bce(dlogit), bce(slogit)
    return logit, loss + loss_d * (loss_d - loss).clamp(min=0) + loss_s * (loss_s - loss).clamp(min=0)


@pytest.mark.parametrize("dense_bias", [False, True])
@torch.no_grad()
def test_dcnv3(fx, dense_bias):
    fm = feature_map(n_dense=2)
    torch.manual_seed(0)
    params = {"embedding_dim": 4, "num_heads": 2, "num_lcn_layers": 2, "num_ecn_layers": 3, "dense_bias": dense_bias}
    model = wake(build_model("dcnv3", fm, params)).eval()
    for norm in (m for m in model.modules() if isinstance(m, nn.LayerNorm)):
        norm.weight.normal_()
        norm.bias.normal_()
    batch = random_batch(fm, size=16)
    emb = fuxictr_embedding(model.embedding.embedding, dense_bias)(batch)  # [B, F, H*d]
    logit, loss = dcnv3_reference(model, batch, emb)
    out = model(batch)
    close(out.logits, logit)
    close(model.loss(out, batch), loss)
