"""HyFormer, a hybrid transformer of sequence modeling and feature interaction (Huang et al., ByteDance,
arXiv 2601.12681): a few query tokens, generated from the non-sequence features, alternately read the long
histories (query decoding) and mix with the non-sequence tokens (query boosting), layer after layer.

Tokens, all of width D (``d_model``):

- non-sequence tokens ``NS = [ns_1 .. ns_M]`` ``[B, M, D]`` (M = ``num_field_groups``): the field tokens (every
  categorical field, then one token ``x W + b`` for all dense features, ``x W`` with ``dense_bias=False``) are cut
  into M contiguous groups in feature-map order
  (sizes differing by at most one, larger first); ``ns_j = W_j [e_f for f in group j] + b_j``. The paper groups
  fields "by semantics" (RankMixer's tokenisation); here the feature map's order stands in for it.
- event tokens of sequence group g: ``H_g^0 = W_g [e(id_1); ..; e(id_S)] + b_g (+ TimeGap(Δt))`` ``[B, L_g, D]``,
  the ids looked up in the target fields' tables (as BST / DIN), the log2 time-gap bucket vector added when
  ``use_time_gaps`` and the data has times. No position embedding: order reaches the model through the time gaps.

Query generation (per sequence group g, N = ``num_queries``, each FFN_{g,n} a two-layer GELU MLP of its own):

    info_g = [Flatten(NS); MeanPool(H_g^0 over real events)]        (an empty history pools to 0)
    Q_g^0  = [FFN_{g,1}(info_g), .., FFN_{g,N}(info_g)]             [B, N, D]

Layer l = 1..num_layers, with weights of its own per layer and per group:

    H_g^l = SeqEnc(H_g^{l-1})                       "transformer": post-LN self-attention block over the history
                                                    (padding masked); "swiglu": LN(H + W_2(SiLU(W_1 H) ⊙ W_3 H));
                                                    "longer": LONGER's pre-LN self-causal layer (an event attends
                                                    to the real events at or before it)
    Q^_g  = LN(Q_g^{l-1} + CA(Q_g^{l-1}, H_g^l))    query decoding, CA = multi-head cross-attention (infnet_layers
                                                    CrossAttention; padding masked, an empty history reads 0)
    X     = [Q^_1; ..; Q^_G; NS^{l-1}]              [B, T, D], T = G*N + M
    S     = LN(TokenMixing(X) + X)                  query boosting (RankMixer): TokenMixing(X)_i = [x_1^i; ..; x_T^i]
    X'    = LN(PFFN(S) + S)                         where x_t = [x_t^1 .. x_t^T] cuts token t into T pieces of D/T
                                                    (D % T == 0, checked when the config is read), PFFN_t(s) =
                                                    W2_t GELU(W1_t s + b1_t) + b2_t, its own weights per token
    [Q_1^l; ..; Q_G^l; NS^l] = X'

Head: ``logits = MLP(Flatten([Q_1^L; ..; Q_G^L]))``, one logit per task.

Not in the paper or chosen here: the LONGER-style sequence encoder is one pre-LN self-causal layer
(``hyformer_layers.CausalSequenceLayer``, no token merge); FFN_{g,n} has hidden width D; dropout on attention weights, residual branches and the head's hidden layers; the
tables start at N(0, 0.05) (BST's). The paper's setting (for a preset): D 64, 2 layers, 4 heads.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.bst import EMBEDDING_INIT_STD
from ctrbench.models.hyformer_layers import FieldGroupTokens, QueryBoosting, QueryDecoding, sequence_layer
from ctrbench.models.infnet_layers import GroupedLinear
from ctrbench.models.layers import MLP, FeatureEmbedding
from ctrbench.models.registry import register
from ctrbench.models.sequence import BehaviourTokens, TimeGapEmbedding

SEQUENCE_ENCODERS = ("transformer", "swiglu", "longer")


@register
class HyFormer(CTRModel):
    arch = "hyformer"
    needs_sequences = True
    reads_several_histories = True

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        d_model: int = 48,
        num_layers: int = 2,
        num_heads: int = 2,
        num_queries: int = 2,
        num_field_groups: int = 2,
        sequence_encoder: str = "swiglu",
        ffn_multiplier: float = 2.0,
        dropout: float = 0.1,
        mlp_hidden: Sequence[int] = (64,),
        history_groups: Sequence[str] | None = None,
        use_time_gaps: bool = True,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        self.groups = list(history_groups or [g.name for g in feature_map.sequence_groups])
        if problems := self.param_problems(
            dict(_settings(locals())), tuple(g.name for g in feature_map.sequence_groups)
        ):
            raise ValueError("model arch 'hyformer': " + "; ".join(problems))
        D, N, G = d_model, num_queries, len(self.groups)
        self.d_model, self.num_queries = D, N
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="single", sparse=sparse_embeddings, init_std=EMBEDDING_INIT_STD,
            dense_bias=dense_bias,
        )
        self.ns_tokens = FieldGroupTokens(self.embedding.num_tokens, embedding_dim, D, num_field_groups)
        self.tokens = nn.ModuleList(BehaviourTokens(feature_map, self.embedding, group) for group in self.groups)
        self.event_project = nn.ModuleList(nn.Linear(t.token_dim, D) for t in self.tokens)
        self.time_gaps = nn.ModuleList(
            TimeGapEmbedding(D) if use_time_gaps and t.has_times else None for t in self.tokens
        )  # fmt: skip
        # the G*N query FFNs at once: slot g*N + n is FFN_{g,n}, reading info_g
        info_width = num_field_groups * D + D
        self.query_up = GroupedLinear(G * N, info_width, D)
        self.query_down = GroupedLinear(G * N, D, D)
        layer = {"num_heads": num_heads, "multiplier": ffn_multiplier, "dropout": dropout}
        self.encoders = nn.ModuleList(
            nn.ModuleList(sequence_layer(sequence_encoder, D, **layer) for _ in self.groups) for _ in range(num_layers)
        )  # fmt: skip
        self.decoders = nn.ModuleList(
            nn.ModuleList(QueryDecoding(D, num_heads=num_heads, dropout=dropout) for _ in self.groups) for _ in range(num_layers)
        )  # fmt: skip
        T = G * N + num_field_groups
        self.boosting = nn.ModuleList(
            QueryBoosting(T, D, multiplier=ffn_multiplier, dropout=dropout) for _ in range(num_layers)
        )
        self.head = MLP(
            G * N * D, mlp_hidden, activation_name="relu", dropout=dropout, output_dim=feature_map.num_tasks
        )

    @classmethod
    def param_problems(cls, params: dict, history_groups: tuple[str, ...] | None = None) -> list[str]:
        p = _settings(params)
        problems = super().param_problems(params, history_groups)
        for name in ("embedding_dim", "d_model", "num_layers", "num_heads", "num_queries", "num_field_groups"):
            if not (isinstance(p[name], int) and p[name] >= 1):
                problems.append(f"{name} must be a positive integer, got {p[name]!r}")
        if problems:
            return problems
        if p["sequence_encoder"] not in SEQUENCE_ENCODERS:
            problems.append(
                f"sequence_encoder must be one of {list(SEQUENCE_ENCODERS)}, got {p['sequence_encoder']!r}"
            )
        if p["d_model"] % p["num_heads"]:
            problems.append(f"d_model {p['d_model']} must be divisible by num_heads {p['num_heads']}")
        chosen = p["history_groups"]
        if chosen is not None:
            if isinstance(chosen, str) or not chosen or len(set(chosen)) != len(chosen):
                return [
                    *problems,
                    f"history_groups must be a non-empty list of distinct sequence groups, got {chosen!r}",
                ]
            if history_groups is not None and (unknown := [g for g in chosen if g not in history_groups]):
                return [
                    *problems,
                    f"history_groups {unknown} are not sequence groups of the dataset ({', '.join(history_groups) or 'none'})",
                ]
        groups = chosen if chosen is not None else history_groups
        if groups is not None:
            if not groups:
                return [*problems, "HyFormer reads behaviour histories, and the dataset has no sequence group"]
            T = len(groups) * p["num_queries"] + p["num_field_groups"]
            if p["d_model"] % T:
                problems.append(
                    f"query boosting cuts each of its T = {len(groups)} sequence group(s) x num_queries {p['num_queries']} "
                    f"+ num_field_groups {p['num_field_groups']} = {T} tokens into T pieces, so d_model must be "
                    f"divisible by {T} (got {p['d_model']}; e.g. {T * max(1, round(p['d_model'] / T))})"
                )
        return problems

    def model_info(self) -> dict:
        return {"history_groups": self.groups, "boosted_tokens": self.boosting[0].up.weight.shape[0]}

    def forward(self, batch: Batch) -> ModelOutput:
        fields = self.embedding(batch)  # [B, F, e]
        ns = self.ns_tokens(fields)  # [B, M, D]
        events, masks = [], []
        for tokens, project, gaps in zip(self.tokens, self.event_project, self.time_gaps):
            history, _, mask = tokens(batch)  # [B, L_g, S*e], [B, L_g]
            h = project(history)  # [B, L_g, D]
            if gaps is not None:
                h = h + gaps(tokens.time_gaps(batch))
            events.append(h)
            masks.append(mask)
        # query generation: info_g = [Flatten(NS); MeanPool(H_g)] -> N queries per group
        real = [m.unsqueeze(-1).to(h.dtype) for m in masks]
        pooled = torch.stack([(h * r).sum(1) / r.sum(1).clamp(min=1) for h, r in zip(events, real)], dim=1)  # [B, G, D]
        info = torch.cat([ns.flatten(1).unsqueeze(1).expand(-1, len(self.groups), -1), pooled], dim=-1)  # [B, G, M*D+D]
        info = info.repeat_interleave(self.num_queries, dim=1)  # [B, G*N, M*D+D]
        queries = self.query_down(F.gelu(self.query_up(info)))  # [B, G*N, D]
        N = self.num_queries
        for encoders, decoders, boost in zip(self.encoders, self.decoders, self.boosting):
            decoded = []
            for g, (encode, decode) in enumerate(zip(encoders, decoders)):
                events[g] = encode(events[g], masks[g])  # [B, L_g, D]
                decoded.append(decode(queries[:, g * N : (g + 1) * N], events[g], masks[g]))  # [B, N, D]
            x = boost(torch.cat([*decoded, ns], dim=1))  # [B, T, D]
            queries, ns = x[:, : queries.shape[1]], x[:, queries.shape[1] :]
        return ModelOutput(logits=self.head(queries.flatten(1)))


def _settings(params: dict) -> dict:
    """The constructor's defaults overridden by ``params`` (the hyper-parameters only)."""
    defaults = {
        name: p.default
        for name, p in inspect.signature(HyFormer.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty and name != "sparse_embeddings"
    }
    return defaults | {k: v for k, v in params.items() if k in defaults}
