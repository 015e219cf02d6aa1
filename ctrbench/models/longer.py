"""LONGER, Long-sequence Optimized traNsformer for GPU-Efficient Recommenders (Chai et al., 2025, arXiv 2505.04421).

Tokens (width d = ``d_model``):

- global tokens ``G [B, m, d]``: the candidate ``W_e t`` (its target fields' embeddings, through the event
  projection ``W_e`` so candidate and events share a space), a learned CLS token, and one token per other
  non-sequence field ``W_f e_f`` (every categorical field that is not a target field, user id included, or
  the ``global_fields`` subset; plus one token for all dense features, ``W_f (x W + b)``, without ``b`` when
  ``dense_bias=False``): ``m = 2 + fields``;
- event tokens ``x_t = W_e e_t + P[r_t] + T(gap_t)``: the event's embeddings (BehaviourTokens), an absolute
  position embedding by recency rank ``r_t`` (0 = most recent, so extra left padding changes nothing) and,
  where the data has times and ``use_time_gaps``, the log2-bucket embedding of its time gap to the sample;
- token merge (``long_sequence.TokenMerge``): ``H_i = W_M [x_{iK+1}; ...; x_{(i+1)K}]`` (``concat``), after one
  transformer block inside each group for ``inner_trans`` (InnerTrans); ``L' = ceil(L / K)`` tokens ``H``.

Hybrid attention (pre-LN layers, ``long_sequence.CausalAttentionLayer``): a first cross-causal layer with
queries ``O = [G; H_s]`` (``H_s``: the k = ``num_query_tokens`` most recent merged tokens, the paper's best
sampling; ``None`` = all L') over keys and values ``R = [G; H]``: ``O <- O + softmax(Q K^T / sqrt(d_h) + M) V``,
``Q = LN(O) W_Q``, ``K, V = LN(R) W_K, LN(R) W_V``, then ``O <- O + FFN(LN(O))``; then ``num_layers``
self-causal layers over the m + k tokens ``O`` with the same rule; a final LN. The mask M
(``long_sequence.global_causal_mask``):

- a global token attends to every global token and every real sequence token (it sees the whole history);
- a sequence token at position i attends to real sequence tokens at positions j <= i and to no global token.

The paper's mask is ``M_ij = 0 if j >= i`` over global tokens first and sequence tokens after them: sequence
tokens see no global token, which is what lets a server compute (and cache) the sequence side once per
request for every candidate. We keep that, and causality in time; global tokens see each other in full (the
paper's ordering would let the first global token see the later ones only; they are never cached either way).
With K > 1 causality holds per merged token (InnerTrans is bidirectional inside a group). The mask is never built
at ``[m+k, m+L']`` (L' x L' for the full model): global queries attend with a key-padding mask, sequence queries
causally with SDPA's ``is_causal`` (``MaskedAttention.global_causal``); tests check it equals the masked form.

Head: an MLP over the flattened outputs of the m global tokens (CLS, candidate and field tokens), one logit per
task. Switching off token merge (``merge_size: 1``) and query sampling (``num_query_tokens: null``) gives the
full-attention model the paper compares cost with.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.infnet_layers import GroupedLinear
from ctrbench.models.layers import MLP, FeatureEmbedding, uniform_token
from ctrbench.models.long_sequence import CausalAttentionLayer, MergeMode, TokenMerge
from ctrbench.models.registry import register
from ctrbench.models.sequence import BehaviourTokens, TimeGapEmbedding

EMBEDDING_INIT_STD = 0.05  # as BST: target-history matching leaves its plateau sooner than at 1e-4
POSITION_INIT_STD = 0.02


@register
class LONGER(CTRModel):
    arch = "longer"
    needs_sequences = True

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = EMBEDDING_INIT_STD,
        d_model: int = 32,
        merge: MergeMode = "concat",
        merge_size: int = 4,
        num_query_tokens: int | None = 32,
        num_layers: int = 1,
        num_heads: int = 2,
        ffn_multiplier: float = 2.0,
        dropout: float = 0.1,
        attention_dropout: float = 0.0,
        mlp_hidden: Sequence[int] = (128, 64),
        mlp_dropout: float = 0.1,
        history_group: str | None = None,
        use_time_gaps: bool = True,
        global_fields: Sequence[str] | None = None,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if num_query_tokens is not None and num_query_tokens < 1:
            raise ValueError(f"num_query_tokens must be >= 1 or null (all tokens), got {num_query_tokens}")
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="single", sparse=sparse_embeddings, init_std=embedding_init_std,
            dense_bias=dense_bias,
        )
        self.tokens = BehaviourTokens(feature_map, self.embedding, history_group)
        self.field_columns = self._global_field_columns(feature_map, global_fields)
        self.register_buffer("field_index", torch.tensor(self.field_columns, dtype=torch.long), persistent=False)
        self.field_project = (
            GroupedLinear(len(self.field_columns), embedding_dim, d_model) if self.field_columns else None
        )
        self.event_project = nn.Linear(self.tokens.token_dim, d_model)  # events and the candidate: one space
        self.cls = uniform_token(d_model)
        # absolute positions by recency (row 0: the most recent event), so extra left padding changes nothing
        self.position = nn.Parameter(torch.empty(self.tokens.max_len, d_model).normal_(std=POSITION_INIT_STD))
        self.time_gap = TimeGapEmbedding(d_model) if use_time_gaps and self.tokens.has_times else None
        self.merge = TokenMerge(
            d_model, merge_size, mode=merge, num_heads=num_heads, ffn_multiplier=ffn_multiplier, dropout=dropout
        )
        self.num_global = 2 + len(self.field_columns)
        self.num_merged = self.merge.merged_length(self.tokens.max_len)
        self.num_query = self.num_merged if num_query_tokens is None else min(num_query_tokens, self.num_merged)
        layer = lambda: CausalAttentionLayer(
            d_model, num_heads, ffn_multiplier=ffn_multiplier, dropout=dropout, attention_dropout=attention_dropout
        )
        self.cross = layer()
        self.layers = nn.ModuleList(layer() for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.mlp = MLP(self.num_global * d_model, mlp_hidden, dropout=mlp_dropout, output_dim=feature_map.num_tasks)

    def _global_field_columns(self, feature_map: FeatureMap, chosen: Sequence[str] | None) -> list[int]:
        """Columns of ``self.embedding(batch)`` that become global field tokens: the chosen (default: every
        non-target) categorical fields, then the dense token where the dataset has dense features."""
        names = [f.name for f in feature_map.categorical]
        targets = {field for _, field in self.tokens.pairs}
        if chosen is None:
            chosen = [n for n in names if n not in targets]
        unknown = sorted(set(chosen) - set(names) | set(chosen) & targets)
        if unknown:
            raise ValueError(
                f"global_fields {unknown} are not non-target categorical fields of {feature_map.dataset!r}"
            )
        dense = [len(names)] if self.embedding.num_dense_tokens else []
        return [names.index(n) for n in chosen] + dense

    @classmethod
    def param_problems(cls, params: dict, history_groups: tuple[str, ...] | None = None) -> list[str]:
        problems = super().param_problems(params, history_groups)  # merge: concat | inner_trans
        if not (isinstance(k := params.get("merge_size", 1), int) and k >= 1):
            problems.append(f"merge_size must be an integer >= 1, got {k!r}")
        if (q := params.get("num_query_tokens")) is not None and not (isinstance(q, int) and q >= 1):
            problems.append(f"num_query_tokens must be >= 1 or null (all tokens), got {q!r}")
        d, heads = params.get("d_model", 32), params.get("num_heads", 2)
        if isinstance(d, int) and isinstance(heads, int) and heads >= 1 and d % heads:
            problems.append(f"d_model {d} must be divisible by num_heads {heads}")
        return problems

    def model_info(self) -> dict:
        return {
            "global_tokens": self.num_global,
            "merged_tokens": self.num_merged,
            "query_tokens": self.num_query,
            "time_gaps": self.time_gap is not None,
        }

    def global_tokens(self, batch: Batch, target: torch.Tensor) -> torch.Tensor:
        """``G = [W_e t; CLS; W_f e_f ...]``: ``[B, m, d]``."""
        B = target.shape[0]
        tokens = [self.event_project(target).unsqueeze(1), self.cls.expand(B, 1, -1)]
        if self.field_project is not None:
            tokens.append(self.field_project(self.embedding(batch)[:, self.field_index]))  # [B, fields, d]
        return torch.cat(tokens, dim=1)

    def sequence_tokens(
        self, batch: Batch, history: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Merged event tokens ``H [B, L', d]`` and their mask ``[B, L']``."""
        L = history.shape[1]
        x = self.event_project(history) + self.position[:L].flip(0)  # slot L-1 (most recent) takes row 0
        if self.time_gap is not None:
            x = x + self.time_gap(self.tokens.time_gaps(batch))
        return self.merge(x, mask)

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The final states of ``O = [G; H_s]``, ``[B, m+k, d]`` (padded sequence tokens zeroed), and their mask."""
        history, target, mask = self.tokens(batch)  # [B, L, S*d_e], [B, S*d_e], [B, L]
        G = self.global_tokens(batch, target)  # [B, m, d]
        H, real = self.sequence_tokens(batch, history, mask)  # [B, L', d], [B, L']
        (B, m), n = G.shape[:2], H.shape[1]
        k = min(self.num_query, n)
        query_real = torch.cat([real.new_ones(B, m), real[:, n - k :]], dim=1)  # [B, m+k]
        keep = query_real.unsqueeze(-1).to(H.dtype)
        # no [m+k, m+L'] mask: global queries read every real token, sequence queries only earlier real events
        O = self.cross(torch.cat([G, H[:, n - k :]], dim=1), torch.cat([G, H], dim=1), num_global=m, key_real=real)
        O = O * keep  # [B, m+k, d]
        for layer in self.layers:
            O = layer(O, num_global=m, key_real=real[:, n - k :]) * keep
        return self.norm(O) * keep, query_real

    def forward(self, batch: Batch) -> ModelOutput:
        states, _ = self.encode(batch)
        return ModelOutput(logits=self.mlp(states[:, : self.num_global].flatten(1)))
