"""INFNet, a Task-aware Information Flow Network (Li et al., Kuaishou, arXiv 2508.11565 v1, §3).

Equation numbers count the display equations of v1's §3 in order of appearance (1: c_j, 2: C, 3: C~, 4: S,
5: S~, 6: T, 7: T~, 8: initialisation, 9: CA, 10-12: the heterogeneous flows, 13: PGU, 14: its three uses,
15: the heads, 16-17: the loss).

Tokens, all of size d:

- categorical tokens C ``[B, M, d]`` (eqs. 1-2): one per categorical field; dense features become tokens too,
  ``x_i w_i + b_i`` each (``dense_mode="per_feature"``; ``x_i w_i`` with ``dense_bias=False``; the paper buckets
  continuous values into categorical fields instead, which the readers may do as well);
- categorical proxies ``C~ = Reshape(φ_cat(Flatten(C)))`` ``[B, m, d]`` (eq. 3), φ_cat an MLP;
- sequence tokens S ``[B, L, d]`` (eq. 4): the behaviour sequences concatenated (one sequence group per
  behaviour), each event from its ids' embeddings in the target fields' tables (see BehaviourSequenceTokens);
- sequence proxies ``S~_a = Σ_t φ_seq(s_{a,t})`` over the real events of behaviour a (eq. 5), φ_seq a shared
  linear map;
- task tokens T ``[N_task, d]`` (eq. 6) and shared task tokens T~ ``[N_s, d]`` (eq. 7), learned.

Block l (eqs. 10-14), CA as eq. 9 with its own weights for each of the eight uses, padding masked in every CA
that reads S:

    C~' = C~ + CA(C~, S, S) + CA(C~, T, T)        S~' = S~ + CA(S~, C, C) + CA(S~, T, T)
    T~' = T~ + CA(T~, C, C) + CA(T~, S, S)        T^  = T  + CA(T, C, C)  + CA(T, S, S)
    C' = PGU(C, C~'),   S' = PGU(S, S~'),   T' = PGU(T^, T~'),   PGU(X, X~) = X ⊙ σ(MLP(Flatten(X~)))

and the heads ``ŷ_i = σ(MLP_i(T_i^(N+1)))`` (eq. 15; the model returns the logits, the trainer applies the
loss of eqs. 16-17 with the dataset's task weights λ_i and label masks).

Where the paper is silent or loose, and what this implementation does:

- Residuals: §3.2 says only that "residual connections are used". ``residual=True`` adds the query to each
  heterogeneous update (the ``C~ +``, ``S~ +``, ``T~ +``, ``T +`` terms above): eqs. 10-12 replace a proxy by
  what it reads, so without them a proxy forgets itself. Not around the PGU: ``X + X ⊙ σ(·)`` would confine
  the gate to [1, 2], and it could no longer close a channel. ``residual=False`` is eqs. 10-12 as printed.
- The PGU reads the proxies just updated in the same block ("its proxy tokens from the heterogeneous
  stage", §3.2.2); eq. 14 writes the superscripts inconsistently (C~^(l) for C, T~^(l) for T).
- Sequence proxies: eq. 5 makes one per behaviour (F), while §4.4 varies "sequence proxies" (2 / 4 / 8, default
  4) as a free count. With ``sequence_proxies_per_behaviour = p`` φ_seq maps to ``p * d`` and each behaviour's
  sum is reshaped into p tokens (the Reshape of eq. 3), F * p proxies in all; p = 1 (the default) is eq. 5.
  Our reading of the paper's 4: F = 4 behaviours at p = 1 (its QB-Video has 12 sequence features, plausibly
  4 behaviours x 3 fields; the paper does not list them); 2 and 8 are then not one per behaviour. On
  ctrbench's KuaiRand (7 behaviours by default) p = 1 gives 7 sequence proxies.
- Event tokens: eq. 4 says only that s_{a,t} comes from "its embedding table"; here s_{a,t} = W_a [e(id_1);
  ...; e(id_k)] + b_a over the event's fields, the ids looked up in the target fields' tables.
- Empty sets: a CA whose keys are all padding (an empty history) returns zero; a behaviour without events has
  S~_a = 0. A dataset without sequences runs with S empty: every S term is left out (no S proxies, no S PGU),
  so flat multi-task datasets (AliExpress) and single-task ones work too.
- Only the task side of the last block reaches a head, so the last block computes T~' and T' alone (its
  C~', S~', C', S' would be dead weights); with one block the proxies C~ and S~ are not built.
- Not given in the paper, chosen here: CA without biases (eq. 9 has none), one head by default; φ_cat, the PGU
  MLPs and the heads' hidden widths; no normalisation layers (none is mentioned); tokens T and T~ start at
  U(±1/sqrt(d)); the tables at N(0, 1e-4), FuxiCTR's default (the paper's models ran in FuxiCTR, §4.1).
- Order: eqs. 4-5 and 9 carry no position or time, so the flows ignore the order of a behaviour's events.
  ``sequence_positions=True`` (ours, off by default) adds a learned vector per slot of each behaviour to S.
- The dropout rate (tuned in §4.1, placement unsaid) applies to the attention weights and the heads' hidden
  layers.

The paper's settings, for the presets (§4.1, §4.4): batch 4096, Adam or Adagrad, lr in {1e-4, 3e-4, 1e-3},
embedding size in {8, 16, 32, 64, 96, 128}, L2 in {0, 1e-7, 1e-6, 1e-5}, dropout in {0, 0.1, 0.2}, early
stopping after 5 evaluations without gain; 4 categorical proxies, 4 sequence proxies, 2 shared task tokens.
The number of blocks, heads and MLP widths are not reported; the defaults here are CPU-sized.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.infnet_layers import (
    BehaviourSequenceTokens,
    CrossAttention,
    ProxyGatedUnit,
    TaskHeads,
    behaviour_fields,
)
from ctrbench.models.layers import MLP, DenseMode, FeatureEmbedding, uniform_token
from ctrbench.models.registry import register

# the cross attentions of a block: (query set, key set); "task_proxies" is T~, "task" is T
FLOWS = (
    ("cat_proxies", "seq"), ("cat_proxies", "task"),
    ("seq_proxies", "cat"), ("seq_proxies", "task"),
    ("task_proxies", "cat"), ("task_proxies", "seq"),
    ("task", "cat"), ("task", "seq"),
)  # fmt: skip
TASK_SIDE = ("task_proxies", "task")  # what the last block computes


class INFNetBlock(nn.Module):
    """One heterogeneous + homogeneous flow (eqs. 10-14) over a dict of token sets ``{name: [B, n, d]}``
    (``cat``, ``seq``, ``task`` and their ``*_proxies``), ``seq_mask [B, L]`` True on real events."""

    def __init__(
        self,
        d: int,
        proxy_counts: dict[str, int],
        *,
        has_sequences: bool,
        task_only: bool,
        residual: bool,
        num_heads: int,
        dropout: float,
        gate_hidden: Sequence[int],
    ):
        super().__init__()
        self.residual = residual
        self.queries = [q for q in ("cat_proxies", "seq_proxies", *TASK_SIDE) if not task_only or q in TASK_SIDE]
        self.queries = [q for q in self.queries if has_sequences or q != "seq_proxies"]
        flows = [(q, k) for q, k in FLOWS if q in self.queries and (has_sequences or k != "seq")]
        self.attention = nn.ModuleDict(
            {f"{q}_from_{k}": CrossAttention(d, num_heads=num_heads, dropout=dropout) for q, k in flows}
        )
        self.flows = flows
        # token set -> the proxies gating it (eq. 14)
        gated = {"cat": "cat_proxies", "seq": "seq_proxies", "task": "task_proxies"}
        self.gated = {x: p for x, p in gated.items() if p in self.queries}
        self.gates = nn.ModuleDict(
            {x: ProxyGatedUnit(d, proxy_counts[p], hidden_units=gate_hidden) for x, p in self.gated.items()}
        )

    def forward(self, tokens: dict[str, torch.Tensor], seq_mask: torch.Tensor | None) -> dict[str, torch.Tensor]:
        updated = {q: tokens[q] if self.residual else 0 for q in self.queries}  # T^ for "task"
        for q, k in self.flows:
            mask = seq_mask if k == "seq" else None
            updated[q] = updated[q] + self.attention[f"{q}_from_{k}"](tokens[q], tokens[k], mask)
        out = dict(tokens)
        out.update({q: v for q, v in updated.items() if q != "task"})
        for x, p in self.gated.items():
            out[x] = self.gates[x](updated[x] if x == "task" else tokens[x], updated[p])
        return out


@register
class INFNet(CTRModel):
    arch = "infnet"
    needs_sequences = False  # without histories S is empty and the model is categorical x task flows

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        embedding_init_std: float = 1e-4,
        dense_mode: DenseMode = "per_feature",
        num_blocks: int = 2,
        num_heads: int = 1,
        categorical_proxies: int = 4,
        sequence_proxies_per_behaviour: int = 1,
        shared_task_tokens: int = 2,
        proxy_mlp_hidden: Sequence[int] = (64,),
        gate_mlp_hidden: Sequence[int] = (),
        head_hidden: Sequence[int] = (32,),
        residual: bool = True,
        sequence_positions: bool = False,
        dropout: float = 0.0,
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        for name, value in (("num_blocks", num_blocks), ("categorical_proxies", categorical_proxies),
                            ("sequence_proxies_per_behaviour", sequence_proxies_per_behaviour),
                            ("shared_task_tokens", shared_task_tokens)):  # fmt: skip
            if value < 1:
                raise ValueError(f"infnet: {name} must be at least 1, got {value}")
        if dense_mode == "none":
            raise ValueError("infnet: dense_mode must be 'per_feature' or 'single' (dense features are tokens of C)")
        d = self.d = embedding_dim
        self.embedding = FeatureEmbedding(
            feature_map, d, dense_mode=dense_mode, sparse=sparse_embeddings, init_std=embedding_init_std,
            dense_bias=dense_bias,
        )
        # one sequence group per behaviour; without any, S is empty
        self.has_sequences = bool(behaviour_fields(feature_map))
        self.sequence = (
            BehaviourSequenceTokens(feature_map, self.embedding, d, positions=sequence_positions)
            if self.has_sequences
            else None
        )
        self.per_behaviour = sequence_proxies_per_behaviour
        num_behaviours = self.sequence.num_behaviours if self.has_sequences else 0
        counts = {"cat_proxies": categorical_proxies, "seq_proxies": num_behaviours * self.per_behaviour,
                  "task_proxies": shared_task_tokens}  # fmt: skip
        self.proxy_counts = counts
        builds_proxies = num_blocks > 1  # C~ and S~ are read by the PGUs of every block but the last
        self.cat_proxies = (
            MLP(self.embedding.num_tokens * d, proxy_mlp_hidden, output_dim=categorical_proxies * d)
            if builds_proxies
            else None
        )  # φ_cat
        self.seq_proxies = (
            nn.Linear(d, self.per_behaviour * d) if builds_proxies and self.has_sequences else None
        )  # φ_seq
        self.task_tokens = nn.Parameter(torch.stack([uniform_token(d) for _ in range(feature_map.num_tasks)]))
        self.shared_task_tokens = nn.Parameter(torch.stack([uniform_token(d) for _ in range(shared_task_tokens)]))
        self.blocks = nn.ModuleList(
            INFNetBlock(
                d, counts, has_sequences=self.has_sequences, task_only=i == num_blocks - 1, residual=residual,
                num_heads=num_heads, dropout=dropout, gate_hidden=gate_mlp_hidden,
            )
            for i in range(num_blocks)
        )  # fmt: skip
        self.heads = TaskHeads(feature_map.num_tasks, d, head_hidden, dropout=dropout)

    def model_info(self) -> dict:
        return {
            "behaviours": self.proxy_counts["seq_proxies"] // self.per_behaviour,
            "sequence_proxies": self.proxy_counts["seq_proxies"],
        }

    def initial_tokens(self, batch: Batch) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Layer (0) of every token set (eq. 8) and the sequence mask."""
        cat = self.embedding(batch)  # [B, M, d]
        B = cat.shape[0]
        tokens = {
            "cat": cat,
            "task": self.task_tokens.expand(B, -1, -1),
            "task_proxies": self.shared_task_tokens.expand(B, -1, -1),
        }
        if self.cat_proxies is not None:
            tokens["cat_proxies"] = self.cat_proxies(cat.flatten(1)).view(B, -1, self.d)  # eq. 3
        mask = None
        if self.has_sequences:
            tokens["seq"], mask = self.sequence(batch)
            if self.seq_proxies is not None:  # eq. 5, then p tokens per behaviour
                tokens["seq_proxies"] = self.sequence.pool(self.seq_proxies(tokens["seq"]), mask).reshape(B, -1, self.d)
        return tokens, mask

    def task_representations(self, batch: Batch) -> torch.Tensor:
        """``T^(N+1)`` ``[B, N_task, d]``: the task tokens after every block, what the heads read."""
        tokens, mask = self.initial_tokens(batch)
        for block in self.blocks:
            tokens = block(tokens, mask)
        return tokens["task"]

    def forward(self, batch: Batch) -> ModelOutput:
        return ModelOutput(logits=self.heads(self.task_representations(batch)))
