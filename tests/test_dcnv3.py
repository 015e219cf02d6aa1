"""DCNv3: multi-head embedding layout, self-mask, LCN/ECN recurrences, branch logits and the Tri-BCE loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import Feature, FeatureMap, tasks_of
from ctrbench.models.base import ModelOutput
from ctrbench.models.dcnv3 import DCNv3, ExponentialCrossNetwork, LinearCrossNetwork, SelfMaskCrossLayer
from ctrbench.models.registry import build_model

VOCABS = (5, 7, 4)


def feature_map(*, n_dense: int = 2, n_labels: int = 1, n_cat: int = 3) -> FeatureMap:
    features = [Feature(f"c{i}", "categorical", vocab_size=v) for i, v in enumerate(VOCABS[:n_cat])]
    features += [Feature(f"d{i}", "dense") for i in range(n_dense)]
    return FeatureMap(dataset="tiny", tasks=tasks_of([f"y{i}" for i in range(n_labels)]), features=features)


def random_batch(fm: FeatureMap, size: int = 8, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    cat = None
    if fm.categorical:
        cat = torch.stack([torch.randint(0, f.vocab_size, (size,), generator=g) for f in fm.categorical], dim=1)
    dense = torch.randn(size, len(fm.dense), generator=g) if fm.dense else None
    labels = torch.randint(0, 2, (size, fm.num_tasks), generator=g).float()
    return Batch(labels=labels, categorical=cat, dense=dense)


MAPS = {
    "dense_2labels": feature_map(n_labels=2),
    "no_dense_2labels": feature_map(n_dense=0, n_labels=2),
    "dense_only": feature_map(n_cat=0),
}


def test_registered_with_defaults():
    model = build_model("dcnv3", MAPS["dense_2labels"])
    assert isinstance(model, DCNv3)
    assert model.embedding.num_heads == 2 and model.embedding.embedding.embedding_dim == 32  # 16 per head
    assert len(model.lcn.layers) == 3 and len(model.ecn.layers) == 3
    assert all(layer.norm is not None for layer in model.lcn.layers)
    assert model.lcn.dropout.p == pytest.approx(0.1)
    assert model.embedding.num_fields == 5  # 3 categorical + 2 dense tokens


@pytest.mark.parametrize("fm_name", list(MAPS))
def test_forward_backward_and_branch_logits(fm_name):
    fm = MAPS[fm_name]
    torch.manual_seed(0)
    model = build_model("dcnv3", fm)
    batch = random_batch(fm)
    out = model(batch)
    assert isinstance(out, ModelOutput)
    assert out.logits.shape == (8, fm.num_tasks) and torch.isfinite(out.logits).all()
    lcn, ecn = out.aux["logit_lcn"], out.aux["logit_ecn"]
    assert lcn.shape == ecn.shape == (8, fm.num_tasks)
    assert not torch.allclose(lcn, ecn)
    torch.testing.assert_close(out.logits, (lcn + ecn) / 2)
    model.loss(out, batch).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"


def test_gradients_reach_both_branches_through_each_branch_loss():
    fm = MAPS["dense_2labels"]
    torch.manual_seed(0)
    model = build_model("dcnv3", fm).eval()
    batch = random_batch(fm)
    model.loss(model(batch), batch).backward()
    for branch in (model.lcn, model.ecn):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())
    # a branch's own logit depends only on that branch (and the shared embedding)
    model.zero_grad(set_to_none=True)
    model(batch).aux["logit_lcn"].sum().backward()
    assert all(p.grad is None for p in model.ecn.parameters())
    assert all(p.grad is not None for p in model.lcn.parameters())


def test_sparse_embeddings_give_sparse_grads():
    fm = MAPS["dense_2labels"]
    model = build_model("dcnv3", fm, sparse_embeddings=True)
    batch = random_batch(fm)
    model.loss(model(batch), batch).backward()
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    assert len(tables) == 1
    for name, p in model.named_parameters():
        assert p.grad.is_sparse == (p is tables[0].weight), name


def test_multihead_embedding_layout():
    fm = feature_map(n_dense=1)
    model = build_model("dcnv3", fm, {"embedding_dim": 4, "num_heads": 2})
    batch = random_batch(fm)
    tokens = model.embedding.embedding(batch)  # [B, F=4, H*d=8]
    x = model.embedding(batch)
    assert x.shape == (8, 2, 4 * 4)
    for h in range(2):
        head = tokens[:, :, 4 * h : 4 * (h + 1)]  # [B, F, d]
        expected = torch.cat([head[:, :, :2].flatten(1), head[:, :, 2:].flatten(1)], dim=1)
        torch.testing.assert_close(x[:, h], expected)


def test_self_mask_zeroes_exactly_negative_layer_norm_positions():
    torch.manual_seed(0)
    layer = SelfMaskCrossLayer(12)
    with torch.no_grad():
        layer.norm.weight.uniform_(0.5, 2.0)
        layer.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(16, 3, 12)
    c = layer.w(x)
    masked = layer.mask(c)
    ln = F.layer_norm(c, (6,), layer.norm.weight, layer.norm.bias)
    negative = ln < 0
    assert negative.any() and (~negative).any()
    assert (masked[negative] == 0).all()
    assert (masked[~negative & (c != 0)] != 0).all()
    torch.testing.assert_close(masked, c * ln.clamp(min=0))
    # the layer's output is [c || Mask(c)] + b
    torch.testing.assert_close(layer(x), torch.cat([c, masked], dim=-1) + layer.bias)


def test_lcn_and_ecn_recurrences():
    torch.manual_seed(0)
    x0 = torch.randn(4, 2, 8)
    for cls, exponential in ((LinearCrossNetwork, False), (ExponentialCrossNetwork, True)):
        net = cls(8, 3, 2, dropout=0.0)
        x = x0
        for layer in net.layers:
            x = (x if exponential else x0) * layer(x) + x
        torch.testing.assert_close(net.cross(x0), x)
        torch.testing.assert_close(net(x0), net.fc(x).mean(dim=1))
    lcn, ecn = LinearCrossNetwork(8, 2, 1, dropout=0.0), ExponentialCrossNetwork(8, 2, 1, dropout=0.0)
    ecn.load_state_dict(lcn.state_dict())
    assert not torch.allclose(lcn.cross(x0), ecn.cross(x0))  # the two recurrences differ after layer 1


def _tri_bce_by_hand(fused, lcn, ecn, y):
    def bce(z):  # per task, mean over the batch
        p = torch.sigmoid(z)
        return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean(dim=0)

    L, Ld, Ls = bce(fused), bce(ecn), bce(lcn)
    wd, ws = torch.clamp(Ld - L, min=0), torch.clamp(Ls - L, min=0)
    return (L + wd * Ld + ws * Ls).mean(), wd, ws


def test_tri_bce_matches_hand_computation():
    model = build_model("dcnv3", MAPS["dense_2labels"])
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    lcn = torch.tensor([[2.0, -1.0], [-0.5, 0.3], [0.1, 1.5]])
    ecn = torch.tensor([[-1.0, 0.5], [1.0, -2.0], [0.4, 0.2]])
    out = ModelOutput(logits=(lcn + ecn) / 2, aux={"logit_lcn": lcn, "logit_ecn": ecn})
    expected, wd, ws = _tri_bce_by_hand(out.logits, lcn, ecn, y)
    assert (wd > 0).all() or (ws > 0).all()  # the example exercises the adaptive weights
    loss = model.loss(out, Batch(labels=y))
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, F.binary_cross_entropy_with_logits(out.logits, y))
    # a scalar fixed value for the single-task column 0, computed by hand
    fm1 = feature_map(n_labels=1)
    model1 = build_model("dcnv3", fm1)
    y1, l1, e1 = y[:, :1], lcn[:, :1], ecn[:, :1]
    out1 = ModelOutput(logits=(l1 + e1) / 2, aux={"logit_lcn": l1, "logit_ecn": e1})
    torch.testing.assert_close(model1.loss(out1, Batch(labels=y1)), _tri_bce_by_hand(out1.logits, l1, e1, y1)[0])


def test_tri_bce_weights_vanish_when_branch_losses_are_below_fused():
    # w = max(0, L_branch - L): zero whenever a branch loss does not exceed the fused one
    model = build_model("dcnv3", MAPS["no_dense_2labels"])
    y = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    lcn = torch.tensor([[3.0, -3.0], [3.0, -3.0]])
    ecn = torch.tensor([[3.0, -3.0], [3.0, -3.0]])
    # identical branches: L_D = L_S = L, both weights are exactly 0 -> Tri-BCE == BCE
    fused = torch.tensor([[3.0, -3.0], [3.0, -3.0]])
    out = ModelOutput(logits=fused, aux={"logit_lcn": lcn, "logit_ecn": ecn})
    torch.testing.assert_close(model.loss(out, Batch(labels=y)), F.binary_cross_entropy_with_logits(fused, y))
    # fused logit worse than both branches (as if computed elsewhere): weights clamp to 0
    fused = torch.zeros(2, 2)
    out = ModelOutput(logits=fused, aux={"logit_lcn": lcn, "logit_ecn": ecn})
    torch.testing.assert_close(model.loss(out, Batch(labels=y)), F.binary_cross_entropy_with_logits(fused, y))
    # ...but a worse branch adds w * L_branch with w = L_branch - L > 0
    bad = torch.zeros(2, 2)
    out = ModelOutput(logits=(lcn + bad) / 2, aux={"logit_lcn": lcn, "logit_ecn": bad})
    assert model.loss(out, Batch(labels=y)) > F.binary_cross_entropy_with_logits(out.logits, y)


@pytest.mark.parametrize("detach", [False, True])
def test_loss_weight_gradient_follows_detach_flag(detach):
    model = build_model("dcnv3", MAPS["dense_2labels"], {"detach_loss_weights": detach})
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    lcn = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], requires_grad=True)
    ecn = torch.tensor([[-0.5, 0.5], [0.5, -0.5]], requires_grad=True)
    out = ModelOutput(logits=(lcn + ecn) / 2, aux={"logit_lcn": lcn, "logit_ecn": ecn})
    model.loss(out, Batch(labels=y)).backward()

    def expected_grad(stop):
        l2, e2 = lcn.detach().clone().requires_grad_(), ecn.detach().clone().requires_grad_()
        bce = lambda z: F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(0)
        fused = (l2 + e2) / 2
        L, Ld, Ls = bce(fused), bce(e2), bce(l2)
        wd, ws = (Ld - L).clamp(min=0), (Ls - L).clamp(min=0)
        if stop:
            wd, ws = wd.detach(), ws.detach()
        (L + wd * Ld + ws * Ls).mean().backward()
        return e2.grad

    torch.testing.assert_close(ecn.grad, expected_grad(detach))
    assert not torch.allclose(expected_grad(True), expected_grad(False))


def test_odd_cross_width_rejected():
    with pytest.raises(ValueError, match="even"):
        build_model("dcnv3", feature_map(n_dense=0), {"embedding_dim": 1})  # 3 fields * 1
