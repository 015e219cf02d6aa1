"""Shared building blocks of the CTR models (after FuxiCTR's layers and rtdl's FT-Transformer).

Shapes: B = batch size, F = number of field tokens, d = embedding / token size, D = flat width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap

DenseMode = Literal["per_feature", "single", "none"]

_ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "identity": nn.Identity}


def activation(name: str | None) -> nn.Module:
    """An activation module by name (``None`` means identity)."""
    key = "identity" if name is None else name.lower()
    if key not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(sorted(_ACTIVATIONS))}")
    return _ACTIVATIONS[key]()


class FeatureEmbedding(nn.Module):
    """Field tokens of a flat batch: ``[B, n_cat + n_dense_tokens, d]``, categorical tokens first.

    All categorical fields share ONE ``nn.Embedding`` (rows concatenated field after field, per-field
    offsets in a buffer), so a batch costs a single lookup and ``sparse=True`` yields one sparse
    gradient. Row 0 of each field (the missing value) is an ordinary learnable row: missingness is
    signal in CTR data. Dense features become, by ``dense_mode``:

    - ``"per_feature"``: one token each, ``x_i * w_i + b_i`` (rtdl's numerical embedding); with
      ``dense_bias=False`` it is ``x_i * w_i``, as in the AutoInt paper (``e_m = v_m x_m``) and FuxiCTR
      (``nn.Linear(1, d, bias=False)`` per numeric feature), where a dense value of 0 gives a zero token;
    - ``"single"``:      one token for all of them, ``x W + b`` (``Linear(n_dense -> d)``; without ``b`` when
      ``dense_bias=False``);
    - ``"none"``:        no token; the model uses ``batch.dense`` itself (``dense_bias`` is then moot).

    Sequence features are not embedded here; a sequence model can look its ids up in the table of
    the categorical field it shares a vocabulary with via :meth:`embed_field`.
    """

    def __init__(
        self,
        feature_map: FeatureMap,
        embedding_dim: int,
        *,
        dense_mode: DenseMode = "per_feature",
        sparse: bool = False,
        init_std: float = 1e-4,
        dense_bias: bool = True,
    ):
        super().__init__()
        if dense_mode not in ("per_feature", "single", "none"):
            raise ValueError(f"dense_mode must be 'per_feature', 'single' or 'none', got {dense_mode!r}")
        cat, dense = feature_map.categorical, feature_map.dense
        if not cat and not dense:
            raise ValueError(f"feature map of {feature_map.dataset!r} has no categorical or dense feature")
        self.embedding_dim = embedding_dim
        self.dense_mode = dense_mode
        self.num_categorical = len(cat)
        self.num_dense = len(dense)
        self.field_index = {f.name: i for i, f in enumerate(cat)}

        self.embedding: nn.Embedding | None = None
        if cat:
            sizes = torch.tensor([f.vocab_size for f in cat], dtype=torch.long)
            # first row of each field in the shared table; derived from the feature map, so not saved
            self.register_buffer("offsets", torch.cumsum(sizes, 0) - sizes, persistent=False)
            self.embedding = nn.Embedding(int(sizes.sum()), embedding_dim, sparse=sparse)
            nn.init.normal_(self.embedding.weight, std=init_std)

        self.dense_weight = self.dense_bias = self.dense_linear = None
        if dense and dense_mode == "per_feature":
            self.dense_weight = nn.Parameter(torch.empty(len(dense), embedding_dim).normal_(std=init_std))
            if dense_bias:
                self.dense_bias = nn.Parameter(torch.empty(len(dense), embedding_dim).normal_(std=init_std))
        elif dense and dense_mode == "single":
            self.dense_linear = nn.Linear(len(dense), embedding_dim, bias=dense_bias)
            nn.init.normal_(self.dense_linear.weight, std=init_std)
            if dense_bias:
                nn.init.zeros_(self.dense_linear.bias)

    @property
    def num_dense_tokens(self) -> int:
        if not self.num_dense or self.dense_mode == "none":
            return 0
        return 1 if self.dense_mode == "single" else self.num_dense

    @property
    def num_tokens(self) -> int:
        return self.num_categorical + self.num_dense_tokens

    def embed_field(self, name: str, ids: torch.Tensor) -> torch.Tensor:
        """Rows of categorical field ``name`` for local ``ids`` of any shape -> ``[*ids.shape, d]``."""
        return self.embedding(ids + self.offsets[self.field_index[name]])

    def categorical_tokens(self, categorical: torch.Tensor) -> torch.Tensor:
        """``[B, n_cat]`` local ids -> ``[B, n_cat, d]`` in one lookup."""
        return self.embedding(categorical + self.offsets)

    def dense_tokens(self, dense: torch.Tensor) -> torch.Tensor:
        """``[B, n_dense]`` -> ``[B, num_dense_tokens, d]``."""
        if self.dense_weight is not None:
            tokens = dense.unsqueeze(-1) * self.dense_weight  # [B, n_dense, d]
            return tokens if self.dense_bias is None else tokens + self.dense_bias
        return self.dense_linear(dense).unsqueeze(1)

    def forward(self, batch: Batch) -> torch.Tensor:
        tokens = []
        if self.num_categorical:
            tokens.append(self.categorical_tokens(batch.categorical))
        if self.num_dense_tokens:
            tokens.append(self.dense_tokens(batch.dense))
        return tokens[0] if len(tokens) == 1 else torch.cat(tokens, dim=1)


class MLP(nn.Sequential):
    """``[Linear -> (BatchNorm) -> activation -> (Dropout)] * len(hidden_units)``, then an optional
    ``Linear(-> output_dim)``. With no hidden units and no output_dim it is the identity."""

    def __init__(
        self,
        input_dim: int,
        hidden_units: Sequence[int] = (),
        *,
        activation_name: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        output_dim: int | None = None,
    ):
        layers: list[nn.Module] = []
        width = input_dim
        for units in hidden_units:
            layers.append(nn.Linear(width, units))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(activation(activation_name))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        if output_dim is not None:
            layers.append(nn.Linear(width, output_dim))
            width = output_dim
        super().__init__(*layers)
        self.output_dim = width


class CrossNetV2(nn.Module):
    """DCN-V2 full-rank cross network: ``x_{l+1} = x0 * (W_l x_l + b_l) + x_l`` on ``[B, D]``."""

    def __init__(self, input_dim: int, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(num_layers))

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x
        return x


class CrossNetMix(nn.Module):
    """DCN-V2 low-rank mixture of cross experts (FuxiCTR ``CrossNetMix``), on ``[B, D]``.

    Expert e of layer l: ``E_e(x) = x0 * (U_e g(C_e g(V_e^T x)) + b_l)`` with rank-r ``U, V``
    (``[D, r]``) and ``C`` (``[r, r]``), ``g`` = tanh or identity; the layer output is
    ``sum_e softmax(G x_l)_e E_e(x_l) + x_l``. The gate ``G`` is shared by all layers, as in
    FuxiCTR / DeepCTR. All experts are evaluated at once with einsum.
    """

    def __init__(self, input_dim: int, num_layers: int, *, low_rank: int = 32, num_experts: int = 4, nonlinearity: str | None = "tanh"):
        super().__init__()
        self.U = nn.Parameter(torch.empty(num_layers, num_experts, input_dim, low_rank))
        self.V = nn.Parameter(torch.empty(num_layers, num_experts, input_dim, low_rank))
        self.C = nn.Parameter(torch.empty(num_layers, num_experts, low_rank, low_rank))
        self.bias = nn.Parameter(torch.zeros(num_layers, input_dim))
        self.gate = nn.Linear(input_dim, num_experts, bias=False)
        self.g = activation(nonlinearity)
        for p in (self.U, self.V, self.C):
            for matrix in p.view(-1, *p.shape[-2:]):  # xavier per expert matrix, not per 4-d stack
                nn.init.xavier_normal_(matrix)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for U, V, C, b in zip(self.U, self.V, self.C, self.bias):
            h = self.g(torch.einsum("bd,edr->ber", x, V))  # [B, E, r]
            h = self.g(torch.einsum("ber,esr->bes", h, C))  # C_e @ h: [B, E, r]
            experts = x0.unsqueeze(1) * (torch.einsum("ber,edr->bed", h, U) + b)  # [B, E, D]
            weights = self.gate(x).softmax(dim=-1)  # [B, E]
            x = torch.einsum("bed,be->bd", experts, weights) + x
        return x


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over tokens ``[B, T, d]`` with an output projection."""

    def __init__(self, d: int, num_heads: int, *, dropout: float = 0.0):
        super().__init__()
        if d % num_heads:
            raise ValueError(f"token size {d} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``key_mask``: ``[B, T]`` bool, False for padding tokens no query may attend to (every row needs a True)."""
        B, T, d = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]  # [B, 1, 1, T], broadcast over heads and queries
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # [B, H, T, d/H]
        return self.out(y.transpose(1, 2).reshape(B, T, d))


class InteractingLayer(nn.Module):
    """AutoInt's interacting layer (Song et al., 2019; FuxiCTR's ``MultiHeadSelfAttention``): field tokens
    ``[B, F, d_in] -> [B, F, d_att]``. For head ``h`` (``H`` heads of size ``d_h = d_att / H``) and fields ``m, k``:

        alpha^h_mk = softmax_k(<W_Q^h e_m, W_K^h e_k> / s)       s = sqrt(d_h) if scale else 1 (the paper: 1)
        e~^h_m     = sum_k alpha^h_mk W_V^h e_k
        e~_m       = [e~^1_m || ... || e~^H_m]
        e^Res_m    = ReLU(LN(e~_m + R e_m))                      LN only with layer_norm; no R e_m without residual

    ``W_Q, W_K, W_V`` and ``W_Res`` have no bias; there is no output projection and no FFN. ``R = W_Res``
    (``[d_att, d_in]``) when ``d_in != d_att`` or ``project_residual``, else the identity: FuxiCTR keeps the
    identity when the widths agree, the paper writes ``W_Res`` always. Dropout applies to ``alpha``.
    """

    def __init__(
        self,
        d_in: int,
        d_att: int,
        num_heads: int,
        *,
        scale: bool = False,
        residual: bool = True,
        project_residual: bool = False,
        layer_norm: bool = False,
        dropout: float = 0.0,
    ):
        super().__init__()
        if d_att % num_heads:
            raise ValueError(f"attention width {d_att} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.sdpa_scale = None if scale else 1.0  # None: SDPA's own 1/sqrt(d_h)
        self.dropout = dropout
        self.qkv = nn.Linear(d_in, 3 * d_att, bias=False)  # [W_Q; W_K; W_V], one matmul
        self.residual = residual
        self.w_res = nn.Linear(d_in, d_att, bias=False) if residual and (project_residual or d_in != d_att) else None
        self.norm = nn.LayerNorm(d_att) if layer_norm else None
        for w in (*self.qkv.weight.data.chunk(3), *(() if self.w_res is None else (self.w_res.weight.data,))):
            nn.init.xavier_normal_(w)  # per matrix, as FuxiCTR initialises each nn.Linear

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        B, F_, _ = e.shape
        q, k, v = self.qkv(e).view(B, F_, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # 3 x [B, H, F, d_h]
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, scale=self.sdpa_scale)  # [B, H, F, d_h]
        y = y.transpose(1, 2).reshape(B, F_, -1)  # heads concatenated: [B, F, d_att]
        if self.residual:
            y = y + (e if self.w_res is None else self.w_res(e))
        if self.norm is not None:
            y = self.norm(y)
        return torch.relu(y)


class FeedForward(nn.Sequential):
    """Position-wise FFN: ``Linear(d -> multiplier*d) -> activation -> Dropout -> Linear(-> d)``."""

    def __init__(self, d: int, *, multiplier: float = 4.0, activation_name: str = "gelu", dropout: float = 0.0):
        hidden = round(d * multiplier)
        super().__init__(nn.Linear(d, hidden), activation(activation_name), nn.Dropout(dropout), nn.Linear(hidden, d))


class TransformerBlock(nn.Module):
    """Self-attention + FFN, each with a residual connection, on ``[B, T, d]``.

    ``prenorm=False`` (field_transformer, HyFormer, the original Transformer): ``x = LN(x + drop(f(x)))``.
    ``prenorm=True``  (FT-Transformer): ``x = x + drop(f(LN(x)))``; the stack then needs a final LN.
    """

    def __init__(
        self,
        d: int,
        num_heads: int,
        *,
        prenorm: bool,
        ffn_multiplier: float = 4.0,
        ffn_activation: str = "gelu",
        attention_dropout: float = 0.0,
        ffn_dropout: float = 0.0,
        residual_dropout: float = 0.0,
    ):
        super().__init__()
        self.prenorm = prenorm
        self.attention = MultiHeadSelfAttention(d, num_heads, dropout=attention_dropout)
        self.ffn = FeedForward(d, multiplier=ffn_multiplier, activation_name=ffn_activation, dropout=ffn_dropout)
        self.norm1 = nn.LayerNorm(d)
        self.norm2 = nn.LayerNorm(d)
        self.residual_dropout = nn.Dropout(residual_dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        attend = lambda h: self.attention(h, key_mask)
        for f, norm in ((attend, self.norm1), (self.ffn, self.norm2)):
            if self.prenorm:
                x = x + self.residual_dropout(f(norm(x)))
            else:
                x = norm(x + self.residual_dropout(f(x)))
        return x


class FMInteraction(nn.Module):
    """FM second-order term ``sum_{i<j} <v_i, v_j>`` as ``0.5 * ((sum v)^2 - sum v^2)``: ``[B, F, d] -> [B, 1]``."""

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        square_of_sum = v.sum(dim=1).pow(2)  # [B, d]
        sum_of_squares = v.pow(2).sum(dim=1)  # [B, d]
        return 0.5 * (square_of_sum - sum_of_squares).sum(dim=1, keepdim=True)


def uniform_token(d: int) -> nn.Parameter:
    """A learned ``[d]`` token (e.g. CLS) initialised as in rtdl: U(-1/sqrt(d), 1/sqrt(d))."""
    bound = 1 / math.sqrt(d)
    return nn.Parameter(torch.empty(d).uniform_(-bound, bound))
