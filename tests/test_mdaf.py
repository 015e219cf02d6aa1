"""MDAF's fusion as its docstring writes it (batch-normalised branches, the gate, the head), and the gate's behaviour
in training: it picks no side when nothing carries signal, and the fused model beats each branch when both do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sequence_models import CONFIGS, FM, L, make_batch, random_histories, write_history_split

from ctrbench.data.sources import open_source
from ctrbench.metrics import roc_auc
from ctrbench.models.mamba4rec import target_interaction
from ctrbench.models.registry import build_model
from ctrbench.train.checkpoint import load_checkpoint
from ctrbench.train.optim import GroupedOptimizer
from ctrbench.train.step import train_step
from ctrbench.train.trainer import TrainOutputs, train

# the default config's MDAF sizes (fusion_dim 128): the gate's drift grows with 2 * fusion_dim weights
DEFAULT_SIZES = {
    "mdaf_bst": {"static_embedding_dim": 8, "sequence_embedding_dim": 16, "d_model": 32, "fusion_dim": 128, "mlp_hidden": [128, 64]},
    "mdaf_mamba": {"static_embedding_dim": 8, "sequence_embedding_dim": 16, "d_model": 16, "d_state": 8, "fusion_dim": 128,
                   "mlp_hidden": [128, 64]},
}  # fmt: skip
OPTIMIZER = {"embedding": {"name": "adam", "lr": 0.003}, "dense": {"name": "adamw", "lr": 0.003, "weight_decay": 0.0}}


def build(name: str, **changes):
    torch.manual_seed(0)
    arch, params = CONFIGS[name]
    return build_model(arch, FM, {**params, **changes})


def batch_norm(x: torch.Tensor, norm: torch.nn.BatchNorm1d, training: bool) -> torch.Tensor:
    """``gamma * (x - mean) / sqrt(var + eps) + beta``: the batch's mean and biased variance in training, the running
    ones in evaluation."""
    if training:
        mean, var = x.mean(dim=0), x.var(dim=0, unbiased=False)
    else:
        mean, var = norm.running_mean, norm.running_var
    return norm.weight * (x - mean) / torch.sqrt(var + norm.eps) + norm.bias


def projections(model, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``W_s c_s + b_s`` and ``W_q c_q + b_q``, the branches before normalisation, from their parts."""
    x0 = model.static_embedding(batch)  # [B, H, F*d]
    c_s = torch.cat([model.lcn.cross(x0), model.ecn.cross(x0)], dim=-1).flatten(1)
    history, target, mask = model.tokens(batch)
    if model.sequence_encoder == "bst":
        outputs, _ = model.encoder(history, target, mask)
        c_q = outputs.flatten(1)  # [B, (L+1)*d_model]
    else:  # Mamba4Rec's [h, t, h*t] (tested in test_mamba.py)
        c_q = target_interaction(model.encoder, model.encoder(history, mask), target)  # [B, 3*d_model]
    return model.static_proj(c_s), model.sequence_proj(c_q)


@pytest.mark.parametrize("name", ["mdaf_bst", "mdaf_mamba"])
def test_branches_are_batch_normalised_as_written(name):
    model = build(name, sequence_dropout=0.0)
    with torch.no_grad():  # a learned scale and shift that are not the identity
        for norm in (model.static_norm, model.sequence_norm):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_()
    batch = make_batch()
    for training in (True, False):
        model.train(training)
        with torch.no_grad():
            x_s, x_q = projections(model, batch)
            want_s, want_q = (
                batch_norm(x_s, model.static_norm, training),
                batch_norm(x_q, model.sequence_norm, training),
            )
            torch.testing.assert_close(model.static_branch(batch), want_s, rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(model.sequence_branch(batch), want_q, rtol=1e-4, atol=1e-5)
    # branch_norm off: the projections as first specified
    plain = build(name, sequence_dropout=0.0, branch_norm=False).eval()
    with torch.no_grad():
        x_s, x_q = projections(plain, batch)
        torch.testing.assert_close(plain.static_branch(batch), x_s)
        torch.testing.assert_close(plain.sequence_branch(batch), x_q)


@pytest.mark.parametrize("name", ["mdaf_bst", "mdaf_mamba"])
def test_gate_and_head_as_written(name):
    model = build(name)
    with torch.no_grad():
        model.gate.weight.normal_(std=0.5)
        model.gate.bias.fill_(0.3)
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        h_s, h_q = model.static_branch(batch), model.sequence_branch(batch)  # [B, D] each
        d = h_s.shape[1]
        w, b = model.gate.weight[0], model.gate.bias[0]
        g = torch.sigmoid(h_s @ w[:d] + h_q @ w[d:] + b)  # [B]
        logits = model.head(g[:, None] * h_s + (1 - g[:, None]) * h_q)
        out = model(batch)
    torch.testing.assert_close(out.aux["gate"], g)
    torch.testing.assert_close(out.logits, logits)


def gate_after_noise(name: str, branch_norm: bool, steps: int = 40) -> float:
    """The gate's mean on a fixed batch after ``steps`` Adam steps at the default's sizes on labels that no feature
    predicts (make_batch draws them at random)."""
    torch.manual_seed(0)
    arch, params = CONFIGS[name]
    model = build_model(arch, FM, {**params, **DEFAULT_SIZES[name], "branch_norm": branch_norm})
    optimizer = GroupedOptimizer(model.parameter_groups(), OPTIMIZER, model.no_weight_decay())
    lengths = [i % (L + 1) for i in range(256)]
    for step in range(steps):
        train_step(model, model, optimizer, make_batch(lengths, seed=step), torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        return model(make_batch(lengths, seed=999)).aux["gate"].mean().item()


@pytest.mark.parametrize("name", ["mdaf_bst", "mdaf_mamba"])
def test_gate_picks_no_side_when_no_branch_carries_signal(name):
    """With nothing to choose between, the gate stays near 1/2. Unnormalised it shut on the static branch (0.94
    for MDAF-BST after these 40 steps): the branch outputs' batch means let every gate weight act as a bias, and
    muting the sample-to-sample variation of ``h_q`` lowers the loss while nothing is learned (module docstring)."""
    assert abs(gate_after_noise(name, branch_norm=True) - 0.5) < 0.1


def test_without_branch_norm_the_gate_shuts_on_the_static_branch():
    """The failure ``branch_norm`` removes, kept visible: it is why the option defaults to on."""
    assert gate_after_noise("mdaf_bst", branch_norm=False) > 0.85


def write_two_signal_split(path, rows: int, seed: int) -> None:
    """Click odds raised by a static signal (the target item is a multiple of 3) and, independently, by a history
    signal (the most recent event's category is even), each worth 2.5 in the logit; 1-6 events per history."""
    rng = np.random.default_rng(seed)
    _, items, categories, target = random_histories(rng, rows, min_length=1)
    static, recent = (target % 3 == 0).astype(np.float64), (categories[:, -1] % 2 == 0).astype(np.float64)
    logit = 2.5 * (static + recent - 1.0)
    write_history_split(path, rng, rng.random(rows) < 1 / (1 + np.exp(-logit)), items, categories, target)


@pytest.fixture(scope="module")
def two_signal_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_signals")
    paths = {"feature_map": root / "feature_map.json", "train": root / "train.parquet", "valid": root / "valid.parquet"}
    FM.save(paths["feature_map"])
    write_two_signal_split(paths["train"], 4000, seed=1)
    write_two_signal_split(paths["valid"], 1000, seed=2)
    return paths


@pytest.mark.parametrize("name", ["mdaf_bst", "mdaf_mamba"])
def test_fused_prediction_beats_each_branch_when_both_carry_signal(two_signal_data, tmp_path, name):
    """Through the one trainer: the gate stays open and the fused prediction beats the head on either branch alone
    (``f(h_s)``: the item, ``f(h_q)``: the history, each about 0.70-0.76 AUC here; both together about 0.82)."""
    arch, params = CONFIGS[name]
    outputs = TrainOutputs(tmp_path / "checkpoint.pt", tmp_path / "metrics.json", tmp_path / "log.jsonl")
    training = {"device": "cpu", "batch_size": 128, "steps_per_epoch": None, "max_epochs": 2, "patience": 2,
                "optimizer": {**OPTIMIZER, "embedding": {"name": "adam", "lr": 0.01}}}  # fmt: skip
    train(train_path=two_signal_data["train"], valid_path=two_signal_data["valid"], feature_map_path=two_signal_data["feature_map"],
          arch=arch, params=params, training=training, seed=3, outputs=outputs, progress=False)  # fmt: skip
    model, _ = load_checkpoint(outputs.checkpoint, torch.device("cpu"))
    model.eval()
    batch = next(open_source(two_signal_data["valid"], FM, None).eval_batches(1000))
    with torch.no_grad():
        out = model(batch)
        static, sequence = model.head(model.static_branch(batch)), model.head(model.sequence_branch(batch))
    labels = batch.labels[:, 0].numpy()
    fused = roc_auc(labels, out.logits[:, 0].numpy())
    alone = {"static": roc_auc(labels, static[:, 0].numpy()), "sequence": roc_auc(labels, sequence[:, 0].numpy())}
    assert fused > 0.8 and fused > max(alone.values()) + 0.03, (fused, alone)
    assert min(alone.values()) > 0.6, alone  # each branch learned its own signal
    assert 0.2 < out.aux["gate"].mean().item() < 0.8
