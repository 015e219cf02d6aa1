"""The Mamba block of Mamba4Rec (arXiv 2403.03900), after ``mamba_ssm.Mamba`` (state-spaces/mamba).

:class:`MambaMixer` has the parameters of ``mamba_ssm.Mamba`` under the same names (``in_proj``,
``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``, ``out_proj``), so a state dict moves between
the two unchanged. Its forward runs ``mamba_ssm.Mamba.forward`` itself (CUDA kernels) with this
module's parameters when that is possible, else a pure-PyTorch path with the same maths
(:func:`selective_scan` is ``mamba_ssm.ops.selective_scan_interface.selective_scan_ref``).

Shapes: B = batch size, L = sequence length, d_model = token size, D_inner = ``expand * d_model``
channels, N = ``d_state``, R = ``dt_rank``.
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Backend = Literal["auto", "torch", "mamba_ssm"]
ScanMethod = Literal["recurrent", "parallel", "loop"]

__all__ = ["MambaMixer", "mamba_ssm_available", "resolve_backend", "selective_scan"]


@functools.cache
def _mamba_ssm_importable() -> bool:
    try:
        import mamba_ssm  # noqa: F401
    except Exception:  # noqa: BLE001 (missing, or a CUDA extension / triton that fails to load: then the torch path runs)
        return False
    return True


def mamba_ssm_available() -> bool:
    """Whether the ``mamba_ssm`` CUDA implementation can run here (CUDA present and the package imports)."""
    return torch.cuda.is_available() and _mamba_ssm_importable()


def resolve_backend(requested: Backend, device: torch.device | str | None) -> str:
    """The backend that runs for an input on ``device``: ``"mamba_ssm"`` or ``"torch"``.

    ``"auto"`` picks ``"mamba_ssm"`` only for a CUDA input when :func:`mamba_ssm_available`;
    ``"mamba_ssm"`` raises where it cannot run; ``"torch"`` always runs.
    """
    if requested not in ("auto", "torch", "mamba_ssm"):
        raise ValueError(f"backend must be 'auto', 'torch' or 'mamba_ssm', got {requested!r}")
    if requested == "torch":
        return "torch"
    on_cuda = device is not None and torch.device(device).type == "cuda"
    usable = on_cuda and mamba_ssm_available()
    if requested == "mamba_ssm" and not usable:
        raise RuntimeError(
            "backend='mamba_ssm' needs CUDA, an input on a CUDA device and an importable mamba_ssm "
            f"(cuda available: {torch.cuda.is_available()}, input device: {device}, "
            f"mamba_ssm importable: {_mamba_ssm_importable()})"
        )
    return "mamba_ssm" if usable else "torch"


def _scan_loop(dA: torch.Tensor, dBu: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``h_t = dA_t * h_{t-1} + dBu_t``, ``y_t = <h_t, C_t>`` one step at a time. ``dA, dBu: [B, D, L, N]``."""
    h = dA.new_zeros(dA.shape[0], dA.shape[1], dA.shape[3])
    ys = []
    for t in range(dA.shape[2]):
        h = dA[:, :, t] * h + dBu[:, :, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, :, t]))
    return torch.stack(ys, dim=2), h


def _scan_parallel(dA: torch.Tensor, dBu: torch.Tensor, C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same recurrence as :func:`_scan_loop` by a Hillis-Steele scan: ceil(log2 L) vectorised steps.

    Composes the affine maps ``h -> a h + b`` over windows of doubling width; only products of the
    decays ``dA <= 1`` appear, so it is as stable as the loop (no division by cumulative decays).
    """
    a, b = dA, dBu
    length, k = dA.shape[2], 1
    while k < length:
        # the window ending at t-k, padded with the identity map (a=1, b=0) before the sequence start
        a_prev = F.pad(a[:, :, :-k], (0, 0, k, 0), value=1.0)
        b_prev = F.pad(b[:, :, :-k], (0, 0, k, 0))
        b = a * b_prev + b
        a = a * a_prev
        k *= 2
    y = torch.einsum("bdln,bnl->bdl", b, C)
    return y, b[:, :, -1]


class _RecurrentScan(torch.autograd.Function):
    """``h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t``, ``y_t = <h_t, C_t>`` one step at a time, with a hand-written
    backward (the reverse-time recurrence of dL/dh_t). It keeps only the states ``h_t`` (``[L, B, D, N]``) and
    recomputes each step's decay, where autograd through :func:`_scan_loop` keeps ~6 tensors of that size
    (Mamba4Rec trains 2.3x faster on a CPU: bench/sequence_models.py). The CPU counterpart of the fused CUDA
    kernel, not a copy of it."""

    @staticmethod
    def forward(ctx, u, delta, A, B, C):
        # u, delta: [B, D, L]; A: [D, N]; B, C: [B, N, L]
        batch, d_inner, length = u.shape
        states = u.new_empty(length, batch, d_inner, A.shape[1])  # h_t for every t: [L, B, D, N]
        h = u.new_zeros(batch, d_inner, A.shape[1])
        du = delta * u
        for t in range(length):
            h = torch.exp(delta[:, :, t, None] * A) * h + du[:, :, t, None] * B[:, None, :, t]
            states[t] = h
        y = torch.einsum("lbdn,bnl->bdl", states, C)
        ctx.save_for_backward(u, delta, A, B, C, states)
        return y, h

    @staticmethod
    def backward(ctx, grad_y, grad_last):
        u, delta, A, B, C, states = ctx.saved_tensors
        length = u.shape[2]
        grad_u = torch.empty_like(u)
        grad_delta = torch.empty_like(delta)
        grad_B = torch.empty_like(B)
        grad_C = torch.einsum("bdl,lbdn->bnl", grad_y, states)
        grad_A = torch.zeros_like(A)
        grad_h = torch.zeros_like(states[0]) if grad_last is None else grad_last.clone()
        for t in range(length - 1, -1, -1):
            grad_h = grad_h + grad_y[:, :, t, None] * C[:, None, :, t]  # dL/dh_t
            decay = torch.exp(delta[:, :, t, None] * A)  # [B, D, N]
            # through dBu_t = Δ_t u_t B_t
            g_input = torch.einsum("bdn,bn->bd", grad_h, B[:, :, t])
            grad_u[:, :, t] = g_input * delta[:, :, t]
            grad_B[:, :, t] = torch.einsum("bdn,bd->bn", grad_h, delta[:, :, t] * u[:, :, t])
            # through exp(Δ_t A) h_{t-1}
            if t > 0:
                g_decay = grad_h * states[t - 1] * decay  # dL/d(Δ_t A)
                grad_delta[:, :, t] = g_input * u[:, :, t] + torch.einsum("bdn,dn->bd", g_decay, A)
                grad_A += torch.einsum("bdn,bd->dn", g_decay, delta[:, :, t])
            else:
                grad_delta[:, :, t] = g_input * u[:, :, t]
            grad_h = grad_h * decay
        return grad_u, grad_delta, grad_A, grad_B, grad_C


def _scan_no_grad(u, delta, A, B, C) -> tuple[torch.Tensor, torch.Tensor]:
    """The recurrence for inference: one state ``[B, D, N]`` at a time, no ``[L, B, D, N]`` history kept
    (at the presets' evaluation batch that history would be tens of GB per layer)."""
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    y = torch.empty_like(u)
    du = delta * u
    for t in range(u.shape[2]):
        h = torch.exp(delta[:, :, t, None] * A) * h + du[:, :, t, None] * B[:, None, :, t]
        y[:, :, t] = torch.einsum("bdn,bn->bd", h, C[:, :, t])
    return y, h


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = True,
    return_last_state: bool = False,
    method: ScanMethod = "recurrent",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The selective scan (S6) of Mamba in pure PyTorch; the maths of ``mamba_ssm``'s ``selective_scan_ref``.

    ``u, delta: [B, D_inner, L]``, ``A: [D_inner, N]``, ``B, C: [B, N, L]``, ``D: [D_inner]``,
    ``z: [B, D_inner, L]``, ``delta_bias: [D_inner]``. With ``Δ = softplus(delta + delta_bias)``::

        h_t = exp(Δ_t A) * h_{t-1} + Δ_t B_t u_t        (h_0 = 0, h_t: [B, D_inner, N])
        y_t = <h_t, C_t> + D u_t,   out = y * silu(z)

    Returns ``out: [B, D_inner, L]`` in ``u``'s dtype (computed in at least float32), and with
    ``return_last_state`` also ``h_L: [B, D_inner, N]``. ``method``: ``"recurrent"`` (the default: a step
    loop with a hand-written backward, :class:`_RecurrentScan`), ``"parallel"`` (log-depth scan under
    autograd) or ``"loop"`` (one step per position under autograd, as the reference); all give the same result.
    """
    if method not in ("recurrent", "parallel", "loop"):
        raise ValueError(f"method must be 'recurrent', 'parallel' or 'loop', got {method!r}")
    if B.dim() != 3 or C.dim() != 3:
        raise ValueError(f"B and C must be [batch, d_state, length], got {tuple(B.shape)} and {tuple(C.shape)}")
    dtype_in = u.dtype
    dtype = torch.promote_types(u.dtype, torch.float32)
    u, delta, A, B, C = (t.to(dtype) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    if method == "recurrent":
        # float32 throughout: autocast would run the Function's einsums in bf16 and mix dtypes in its backward
        with torch.autocast(u.device.type, enabled=False):
            needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (u, delta, A, B, C))
            y, last_state = (_RecurrentScan.apply if needs_grad else _scan_no_grad)(u, delta, A, B, C)
    else:
        dA = torch.exp(torch.einsum("bdl,dn->bdln", delta, A))  # [B, D, L, N]
        dBu = torch.einsum("bdl,bnl,bdl->bdln", delta, B, u)  # [B, D, L, N]
        y, last_state = (_scan_parallel if method == "parallel" else _scan_loop)(dA, dBu, C)
    if D is not None:
        y = y + u * D.to(dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    y = y.to(dtype_in)
    return (y, last_state) if return_last_state else y


class MambaMixer(nn.Module):
    """One Mamba block (``mamba_ssm.Mamba``): ``[B, L, d_model] -> [B, L, d_model]``, causal in L.

    ``in_proj`` splits into x and the gate z; x goes through a causal depthwise ``conv1d`` and SiLU,
    then ``x_proj`` gives the input-dependent Δ (rank ``dt_rank``, lifted by ``dt_proj``), B and C of
    the selective scan; the result, gated by ``silu(z)``, goes through ``out_proj``. Initialisation
    is the reference's: ``dt_proj`` weight uniform in ``±dt_rank**-0.5 * dt_scale`` (or constant),
    ``dt_proj.bias = softplus⁻¹(dt)`` with dt log-uniform in ``[dt_min, dt_max]`` floored at
    ``dt_init_floor``, S4D-real ``A_log = log(1..N)``, ``D = 1``.

    ``backend``: ``"auto"`` (``mamba_ssm.Mamba.forward`` on this module's parameters for a CUDA
    input where ``mamba_ssm`` imports, else PyTorch), ``"torch"`` or ``"mamba_ssm"`` (raises where it
    cannot run). The attribute ``backend`` holds the one the last forward used (before any forward:
    the one a CPU input would use); ``requested_backend`` holds the argument.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | Literal["auto"] = "auto",
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init: Literal["random", "constant"] = "random",
        dt_scale: float = 1.0,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        *,
        backend: Backend = "auto",
        scan_method: ScanMethod = "recurrent",
        use_fast_path: bool = True,
    ):
        super().__init__()
        if dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init must be 'random' or 'constant', got {dt_init!r}")
        resolve_backend(backend, None)  # validates the name
        self.requested_backend: Backend = backend
        self.backend: str = "torch" if backend == "auto" else backend
        self.scan_method: ScanMethod = scan_method
        self.use_fast_path = use_fast_path  # passed to mamba_ssm.Mamba (fused kernel where causal_conv1d exists)
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.expand = expand
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self._config = {
            "d_model": d_model, "d_state": d_state, "d_conv": d_conv, "expand": expand, "dt_rank": self.dt_rank,
            "conv_bias": conv_bias, "bias": bias, "use_fast_path": use_fast_path,
        }  # fmt: skip

        self.in_proj = nn.Linear(d_model, self.d_inner * 2, bias=bias)
        self.conv1d = nn.Conv1d(
            self.d_inner, self.d_inner, kernel_size=d_conv, groups=self.d_inner, padding=d_conv - 1, bias=conv_bias
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)

        dt_init_std = self.dt_rank**-0.5 * dt_scale
        if dt_init == "constant":
            nn.init.constant_(self.dt_proj.weight, dt_init_std)
        else:
            nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(
            min=dt_init_floor
        )
        inv_dt = dt + torch.log(-torch.expm1(-dt))  # inverse of softplus
        with torch.no_grad():
            self.dt_proj.bias.copy_(inv_dt)
        self.dt_proj.bias._no_reinit = True  # as the reference: a model-wide init must leave it alone

        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)  # S4D real
        self.A_log = nn.Parameter(torch.log(A))
        self.A_log._no_weight_decay = True
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.D._no_weight_decay = True

        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        # the mamba_ssm.Mamba that runs the CUDA path, built on first use; kept in a dict so that it
        # is no submodule (no parameters of its own in state_dict / parameters() / .to())
        self._reference: dict[str, nn.Module] = {}

    def extra_repr(self) -> str:
        return (
            f"d_model={self.d_model}, d_state={self.d_state}, d_conv={self.d_conv}, expand={self.expand}, "
            f"dt_rank={self.dt_rank}, backend={self.requested_backend!r}, scan_method={self.scan_method!r}"
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.dim() != 3 or hidden_states.shape[-1] != self.d_model:
            raise ValueError(f"expected [batch, length, {self.d_model}], got {tuple(hidden_states.shape)}")
        self.backend = resolve_backend(self.requested_backend, hidden_states.device)
        if self.backend == "mamba_ssm":
            return self._forward_mamba_ssm(hidden_states)
        return self._forward_torch(hidden_states)

    def _forward_torch(self, hidden_states: torch.Tensor) -> torch.Tensor:
        length = hidden_states.shape[1]
        xz = self.in_proj(hidden_states).transpose(1, 2)  # [B, 2 D_inner, L]
        x, z = xz.chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :length])  # causal: padding d_conv-1 both sides, keep the first L
        x_dbl = self.x_proj(x.transpose(1, 2))  # [B, L, R + 2N]
        dt, B, C = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.linear(dt, self.dt_proj.weight).transpose(1, 2)  # [B, D_inner, L]; bias added in the scan
        A = -torch.exp(self.A_log.float())
        y = selective_scan(
            x, dt, A, B.transpose(1, 2), C.transpose(1, 2), self.D.float(), z=z,
            delta_bias=self.dt_proj.bias.float(), delta_softplus=True, method=self.scan_method,
        )  # fmt: skip
        return self.out_proj(y.transpose(1, 2))

    def _forward_mamba_ssm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        reference = self._reference.get("mamba")
        if reference is None:
            from mamba_ssm import Mamba

            reference = Mamba(**self._config, device="meta")  # shapes only; this module's tensors are used
            self._reference["mamba"] = reference
        tensors = {**dict(self.named_parameters()), **dict(self.named_buffers())}
        return torch.func.functional_call(reference, tensors, (hidden_states,), strict=True)
