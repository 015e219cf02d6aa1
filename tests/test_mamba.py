import importlib.util

import pytest
import torch
import torch.nn.functional as F

from ctrbench.models.mamba import MambaMixer, mamba_ssm_available, resolve_backend, selective_scan

# parameter names and shapes of mamba_ssm.Mamba (state-spaces/mamba, mamba_ssm/modules/mamba_simple.py)
# for d_model=8, d_state=16, d_conv=4, expand=2, dt_rank="auto" -> d_inner=16, dt_rank=ceil(8/16)=1
MAMBA_SSM_STATE = {
    "A_log": (16, 16),
    "D": (16,),
    "in_proj.weight": (32, 8),
    "conv1d.weight": (16, 1, 4),
    "conv1d.bias": (16,),
    "x_proj.weight": (1 + 2 * 16, 16),
    "dt_proj.weight": (16, 1),
    "dt_proj.bias": (16,),
    "out_proj.weight": (8, 16),
}


def recurrence(u, delta, A, B, C, D, z, delta_bias, delta_softplus):
    """h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t;  y_t = C_t h_t + D u_t;  out = y * silu(z), step by step."""
    batch, channels, length = u.shape
    if delta_bias is not None:
        delta = delta + delta_bias[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    out = torch.empty_like(u)
    for b in range(batch):
        h = torch.zeros(channels, A.shape[1], dtype=u.dtype)
        for t in range(length):
            for d in range(channels):
                h[d] = torch.exp(delta[b, d, t] * A[d]) * h[d] + delta[b, d, t] * B[b, :, t] * u[b, d, t]
                y = (C[b, :, t] * h[d]).sum() + D[d] * u[b, d, t]
                out[b, d, t] = y * F.silu(z[b, d, t]) if z is not None else y
    return out, h


def random_scan_inputs(batch=2, channels=3, length=11, d_state=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    return {
        "u": r(batch, channels, length),
        "delta": r(batch, channels, length),
        "A": -torch.rand(channels, d_state, generator=g, dtype=torch.float64) * 3,
        "B": r(batch, d_state, length),
        "C": r(batch, d_state, length),
        "D": r(channels),
        "z": r(batch, channels, length),
        "delta_bias": r(channels),
    }


@pytest.mark.parametrize("method", ["recurrent", "parallel", "loop"])
@pytest.mark.parametrize("gated", [True, False])
@pytest.mark.parametrize("softplus", [True, False])
def test_selective_scan_matches_recurrence(method, gated, softplus):
    inputs = random_scan_inputs()
    if not gated:
        inputs["z"] = None
    if not softplus:  # keep Δ positive without the softplus
        inputs["delta"] = inputs["delta"].abs()
        inputs["delta_bias"] = inputs["delta_bias"].abs()
    expected, last_expected = recurrence(**inputs, delta_softplus=softplus)  # state of the last batch row
    got, last = selective_scan(**inputs, delta_softplus=softplus, return_last_state=True, method=method)
    assert got.dtype == torch.float64 and got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(last[-1], last_expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["recurrent", "parallel"])
@pytest.mark.parametrize("length", [1, 2, 7, 64])
def test_scan_methods_equal_loop(method, length):
    inputs = {k: v.float() for k, v in random_scan_inputs(batch=3, channels=5, length=length, seed=length).items()}
    torch.testing.assert_close(
        selective_scan(**inputs, method=method), selective_scan(**inputs, method="loop"), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("length", [1, 9])
def test_recurrent_scan_backward_is_the_gradient(length):
    """The hand-written backward of the default method: numerical gradients and autograd through the loop agree."""
    inputs = random_scan_inputs(batch=2, channels=3, length=length, d_state=4, seed=3)
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}

    def scan(method, **kw):
        y, last = selective_scan(**kw, return_last_state=True, method=method)
        return y, last

    assert torch.autograd.gradcheck(lambda *a: scan("recurrent", **dict(zip(leaves, a))), tuple(leaves.values()))
    weights = torch.randn(2, 3, length, dtype=torch.float64)
    grads = {}
    for method in ("recurrent", "loop"):
        y, last = scan(method, **leaves)
        grads[method] = torch.autograd.grad((y * weights).sum() + last.sum(), tuple(leaves.values()))
    for name, got, expected in zip(leaves, grads["recurrent"], grads["loop"]):
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10, msg=name)


def test_selective_scan_keeps_low_precision_dtype():
    inputs = {k: v.to(torch.bfloat16) for k, v in random_scan_inputs().items()}
    assert selective_scan(**inputs).dtype == torch.bfloat16


def test_mixer_shapes_and_init():
    torch.manual_seed(0)
    m = MambaMixer(8)
    assert (m.d_inner, m.dt_rank, m.backend, m.requested_backend) == (16, 1, "torch", "auto")
    x = torch.randn(3, 10, 8)
    assert m(x).shape == (3, 10, 8)
    assert m(x[:, :1]).shape == (3, 1, 8)  # shorter than d_conv
    assert m.backend == "torch"
    torch.testing.assert_close(m.A_log, torch.log(torch.arange(1, 17.0)).repeat(16, 1))
    torch.testing.assert_close(m.D, torch.ones(16))
    dt = F.softplus(m.dt_proj.bias)
    assert ((dt >= 1e-4 - 1e-7) & (dt <= 0.1 + 1e-7)).all()
    assert m.dt_proj.weight.abs().max() <= 1.0  # dt_rank**-0.5
    assert MambaMixer(40, dt_rank="auto").dt_rank == 3 and MambaMixer(8, dt_rank=5).x_proj.out_features == 37
    with pytest.raises(ValueError):
        m(torch.randn(3, 10, 7))


def test_state_dict_keys_match_mamba_ssm():
    source = MambaMixer(8)
    state = source.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == MAMBA_SSM_STATE
    other = MambaMixer(8)
    other.load_state_dict(state, strict=True)
    x = torch.randn(2, 6, 8)
    torch.testing.assert_close(other(x), source(x), rtol=0, atol=0)
    biased = MambaMixer(8, bias=True).state_dict()
    assert set(biased) == set(MAMBA_SSM_STATE) | {"in_proj.bias", "out_proj.bias"}


@pytest.mark.parametrize("scan_method", ["recurrent", "parallel", "loop"])
def test_mixer_is_causal(scan_method):
    torch.manual_seed(1)
    m = MambaMixer(8, d_state=4, scan_method=scan_method).double()
    x = torch.randn(2, 12, 8, dtype=torch.float64)
    y = m(x)
    for t in (0, 5, 11):
        x2 = x.clone()
        x2[:, t:] += torch.randn_like(x2[:, t:])
        y2 = m(x2)
        torch.testing.assert_close(y2[:, :t], y[:, :t], rtol=0, atol=0)
        assert not torch.allclose(y2[:, t], y[:, t])


def test_mixer_matches_step_by_step_decoding():
    """Full-sequence forward == the reference's one-token ``step`` recurrence (conv state + ssm state)."""
    torch.manual_seed(2)
    m = MambaMixer(8, d_state=4).double()
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    w = m.conv1d.weight[:, 0]  # [D, W]
    conv_state = torch.zeros(2, m.d_inner, m.d_conv, dtype=torch.float64)
    ssm_state = torch.zeros(2, m.d_inner, m.d_state, dtype=torch.float64)
    A = -torch.exp(m.A_log)
    outs = []
    for t in range(x.shape[1]):
        xt, zt = m.in_proj(x[:, t]).chunk(2, dim=-1)
        conv_state = torch.cat([conv_state[:, :, 1:], xt[:, :, None]], dim=-1)
        xt = F.silu((conv_state * w).sum(-1) + m.conv1d.bias)
        dt, B, C = torch.split(m.x_proj(xt), [m.dt_rank, m.d_state, m.d_state], dim=-1)
        dt = F.softplus(F.linear(dt, m.dt_proj.weight) + m.dt_proj.bias)
        ssm_state = ssm_state * torch.exp(dt[..., None] * A) + (dt * xt)[..., None] * B[:, None]
        y = (ssm_state * C[:, None]).sum(-1) + m.D * xt
        outs.append(m.out_proj(y * F.silu(zt)))
    torch.testing.assert_close(m(x), torch.stack(outs, 1), rtol=1e-10, atol=1e-10)


def test_mixer_gradients_flow():
    torch.manual_seed(3)
    m = MambaMixer(8, d_state=4)
    x = torch.randn(2, 7, 8, requires_grad=True)
    m(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_backend_resolution():
    assert resolve_backend("torch", "cuda") == "torch"
    assert resolve_backend("auto", "cpu") == "torch"
    assert resolve_backend("auto", "cuda") == ("mamba_ssm" if mamba_ssm_available() else "torch")
    with pytest.raises(RuntimeError):
        resolve_backend("mamba_ssm", "cpu")
    with pytest.raises(ValueError):
        MambaMixer(8, backend="triton")
    m = MambaMixer(8, backend="torch")
    m(torch.randn(1, 3, 8))
    assert m.backend == "torch"


def _mamba_ssm_importable():
    return torch.cuda.is_available() and importlib.util.find_spec("mamba_ssm") is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _mamba_ssm_importable(), reason="needs CUDA and mamba_ssm")
def test_matches_mamba_ssm_on_cuda():
    from mamba_ssm import Mamba

    torch.manual_seed(4)
    ours = MambaMixer(32, d_state=16, d_conv=4, expand=2).cuda()
    reference = Mamba(d_model=32, d_state=16, d_conv=4, expand=2).cuda()
    reference.load_state_dict(ours.state_dict(), strict=True)
    ours.load_state_dict(reference.state_dict(), strict=True)  # and back
    x = torch.randn(4, 50, 32, device="cuda")
    with torch.no_grad():
        expected = reference(x)
        ours.requested_backend = "torch"
        got_torch = ours(x)
        assert ours.backend == "torch"
        ours.requested_backend = "auto"
        got_fast = ours(x)
        assert ours.backend == "mamba_ssm"
    torch.testing.assert_close(got_torch, expected, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(got_fast, expected, rtol=1e-3, atol=1e-3)
    ours(x).sum().backward()  # the CUDA path trains this module's own parameters
    assert ours.in_proj.weight.grad is not None and ours.A_log.grad is not None
