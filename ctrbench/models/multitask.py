"""Shared layers of the classic multi-task models: Shared-Bottom, OMoE, MMoE (Ma et al., KDD'18) and PLE
(Tang et al., RecSys'20), after FuxiCTR's ``model_zoo/multitask`` (``MMoE_Layer``, ``CGC_Layer``, towers).

Shapes: B = batch size, T = tasks, E = experts, D = input width, H = expert output width, L = history
length, S = id features of a sequence group, d = embedding size.

Every model reads the same input vector (:class:`MultiTaskInput`)::

    x = [e_1; ...; e_F; dense values; pool(history_1); ...; pool(history_G)]            [B, D]

``e_f`` is categorical field f's embedding; ``pool(g)`` concatenates, over the id features of sequence
group g, the mean of their embeddings over the group's real events (an event is real where any of its
ids is not the padding id 0; an empty history pools to 0). A history's ids are looked up in the table of
the categorical field whose vocabulary they share (``shares_vocab_with``), so a history of videos and the
target video live in one space; a sequence without one gets its own table. The papers' models, and
FuxiCTR's, see flat fields only: pooling lets them read the behaviour histories that INFNet reads, at the
cost of the events' order and of which event matters for this target (a mean, not attention).

Experts, gates and towers are :class:`ParallelMLP` s: n MLPs of one shape evaluated as one batched
einsum per layer rather than n modules in a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import MISSING_ID, FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import FeatureEmbedding, activation

EMBEDDING_INIT_STD = 1e-4  # FuxiCTR's, as the flat models'


class MultiTaskInput(nn.Module):
    """A batch as the flat vector ``x`` of the module docstring, ``[B, output_dim]``."""

    def __init__(
        self, feature_map: FeatureMap, embedding_dim: int, *, sparse: bool = False, init_std: float = EMBEDDING_INIT_STD
    ):
        super().__init__()
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="none", sparse=sparse, init_std=init_std
        )
        self.embedding_dim = embedding_dim
        categorical = {f.name: f for f in feature_map.categorical}
        by_name = {f.name: f for f in feature_map.sequences}
        # sequences that share no categorical vocabulary get rows of their own, one table for all of them
        own_sizes: dict[str, int] = {}
        self.groups: list[tuple[str, list[str], list[str]]] = []  # (group, features in the shared table, in their own)
        shared_offsets, own_features = [], []
        for group in feature_map.sequence_groups:
            in_shared, in_own = [], []
            for f in feature_map.sequences_of(group.name):
                root = _vocabulary_root(f.name, by_name, categorical)
                if root in categorical:
                    if f.vocab_size > categorical[root].vocab_size:
                        raise ValueError(
                            f"sequence {f.name!r} of {feature_map.dataset!r} has vocab_size {f.vocab_size}, larger "
                            f"than that of {root!r} ({categorical[root].vocab_size}) whose table it shares"
                        )
                    in_shared.append(f.name)
                    shared_offsets.append(self.embedding.field_index[root])
                else:
                    own_sizes[root] = max(own_sizes.get(root, 0), by_name[root].vocab_size, f.vocab_size)
                    in_own.append(f.name)
                    own_features.append(root)
            if in_shared or in_own:
                self.groups.append((group.name, in_shared, in_own))
        self.own_table: nn.Embedding | None = None
        if own_sizes:
            sizes = torch.tensor(list(own_sizes.values()))
            starts = dict(zip(own_sizes, (torch.cumsum(sizes, 0) - sizes).tolist()))
            self.own_table = nn.Embedding(int(sizes.sum()), embedding_dim, sparse=sparse)
            nn.init.normal_(self.own_table.weight, std=init_std)
            self.register_buffer("own_offsets", torch.tensor([starts[r] for r in own_features]), persistent=False)
        if shared_offsets:  # each shared-table sequence's first row: its categorical field's offset
            self.register_buffer("shared_offsets", self.embedding.offsets[shared_offsets].clone(), persistent=False)
        pooled = sum(len(shared) + len(own) for _, shared, own in self.groups)
        self.output_dim = (self.embedding.num_categorical + pooled) * embedding_dim + self.embedding.num_dense

    def pooled_histories(self, batch: Batch) -> list[torch.Tensor]:
        """Each group's masked mean event embedding, ``[B, S*d]`` per group."""
        pooled, shared_start, own_start = [], 0, 0
        for _, shared, own in self.groups:
            ids = torch.stack([batch.sequences[name] for name in shared + own], dim=1)  # [B, S, L]
            real = (ids != MISSING_ID).any(dim=1)  # [B, L]: an event is real where any of its ids is
            weights = real / real.sum(dim=1, keepdim=True).clamp(min=1)  # [B, L]: 1/(real events), 0 on padding
            n, parts = len(shared), []
            if shared:
                offsets = self.shared_offsets[shared_start : shared_start + n]
                parts.append(_weighted_sum(self.embedding.embedding, ids[:, :n] + offsets.view(1, -1, 1), weights))
            if own:
                offsets = self.own_offsets[own_start : own_start + len(own)]
                parts.append(_weighted_sum(self.own_table, ids[:, n:] + offsets.view(1, -1, 1), weights))
            shared_start, own_start = shared_start + n, own_start + len(own)
            pooled.append(parts[0] if len(parts) == 1 else torch.cat(parts, dim=1))
        return pooled

    @property
    def groups_read(self) -> tuple[str, ...]:
        """The histories it pools (every sequence group of the dataset)."""
        return tuple(name for name, _, _ in self.groups)

    def forward(self, batch: Batch) -> torch.Tensor:
        parts = []
        if self.embedding.num_categorical:
            parts.append(self.embedding(batch).flatten(1))  # [B, n_cat * d]
        if self.embedding.num_dense:
            parts.append(batch.dense)
        parts += self.pooled_histories(batch)
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def _weighted_sum(table: nn.Embedding, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum_l weights[b, l] * table[rows[b, s, l]]`` -> ``[B, S*d]`` by ``embedding_bag``, without the ``[B, S, L, d]``
    tensor of events; a row of weight 0 (padding) gets no gradient."""
    B, S, L = rows.shape
    bag_weights = weights.unsqueeze(1).expand(B, S, L).reshape(B * S, L).to(table.weight.dtype)
    summed = F.embedding_bag(
        rows.reshape(B * S, L), table.weight, mode="sum", per_sample_weights=bag_weights, sparse=table.sparse
    )  # [B*S, d]
    return summed.view(B, S * table.embedding_dim)


def _vocabulary_root(name: str, sequences: dict, categorical: dict) -> str:
    """The feature whose table a sequence uses: the categorical field at the end of its ``shares_vocab_with``
    chain, or the last sequence on that chain (which then gets rows of its own)."""
    seen = {name}
    while (target := sequences[name].shares_vocab_with) is not None and target not in seen:
        if target in categorical:
            return target
        if target not in sequences:  # a dense feature: nothing to share
            break
        seen.add(target)
        name = target
    return name


class ParallelLinear(nn.Module):
    """n linear maps in one op: ``y_j = x_j W_j + b_j`` with ``W`` ``[n, in, out]``; ``x`` is ``[B, in]`` (one
    input for all n) or ``[B, n, in]`` (one each); ``y`` is ``[B, n, out]``. Initialised as n ``nn.Linear``."""

    def __init__(self, n: int, input_dim: int, output_dim: int, *, bias: bool = True):
        super().__init__()
        bound = 1 / math.sqrt(input_dim)  # nn.Linear's kaiming_uniform(a=sqrt(5)) bound, weights and bias
        self.weight = nn.Parameter(torch.empty(n, input_dim, output_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, output_dim).uniform_(-bound, bound)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("bi,nio->bno" if x.dim() == 2 else "bni,nio->bno", x, self.weight)
        return y if self.bias is None else y + self.bias


class ParallelBatchNorm(nn.BatchNorm1d):
    """``BatchNorm1d`` on ``[B, n, units]``: every unit of every one of the n MLPs normalised on its own."""

    def __init__(self, n: int, units: int):
        super().__init__(n * units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.flatten(1)).view_as(x)


class ParallelMLP(nn.Sequential):
    """n MLPs of one shape as one batched op, each ``[Linear -> (BatchNorm) -> activation -> (Dropout)]`` per
    hidden layer (as :class:`~ctrbench.models.layers.MLP`), then an optional ``Linear(-> output_dim)``:
    ``[B, in]`` or ``[B, n, in]`` -> ``[B, n, output_dim]``."""

    def __init__(
        self,
        n: int,
        input_dim: int,
        hidden_units: Sequence[int] = (),
        *,
        dropout: float = 0.0,
        batch_norm: bool = False,
        output_dim: int | None = None,
        output_bias: bool = True,
    ):
        if not hidden_units and output_dim is None:
            raise ValueError("a ParallelMLP needs hidden units or an output_dim")
        layers: list[nn.Module] = []
        width = input_dim
        for units in hidden_units:
            layers.append(ParallelLinear(n, width, units))
            if batch_norm:
                layers.append(ParallelBatchNorm(n, units))
            layers.append(activation("relu"))
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        if output_dim is not None:
            layers.append(ParallelLinear(n, width, output_dim, bias=output_bias))
            width = output_dim
        super().__init__(*layers)
        self.output_dim = width


def gates(n: int, input_dim: int, num_experts: int, hidden_units: Sequence[int], dropout: float, batch_norm: bool):
    """n gate networks, ``softmax(W x)`` over ``num_experts`` when ``hidden_units`` is empty (the papers' gate;
    no bias, as they write it), else an MLP before ``W`` (FuxiCTR's ``gate_hidden_units``)."""
    return ParallelMLP(
        n,
        input_dim,
        tuple(hidden_units),
        dropout=dropout,
        batch_norm=batch_norm,
        output_dim=num_experts,
        output_bias=False,
    )


class MixtureOfExperts(nn.Module):
    """MMoE's layer (``num_gates = T``) or OMoE's (``num_gates = 1``)::

        f^k(x) = sum_i g^k(x)_i f_i(x),    g^k(x) = softmax(W_gk x),    f_i = expert MLP i

    ``x`` ``[B, D]`` -> mixtures ``f^k(x)`` ``[B, num_gates, H]`` and gates ``g^k(x)`` ``[B, num_gates, E]``.
    """

    def __init__(self, input_dim: int, num_experts: int, expert_hidden: Sequence[int], *, num_gates: int,
                 gate_hidden: Sequence[int] = (), dropout: float = 0.0, batch_norm: bool = False):  # fmt: skip
        super().__init__()
        if num_experts < 1 or not expert_hidden:
            raise ValueError(
                f"a mixture of experts needs num_experts >= 1 and expert_hidden units, got {num_experts}, {expert_hidden}"
            )
        self.experts = ParallelMLP(num_experts, input_dim, tuple(expert_hidden), dropout=dropout, batch_norm=batch_norm)
        self.gates = gates(num_gates, input_dim, num_experts, gate_hidden, dropout, batch_norm)
        self.output_dim = self.experts.output_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        experts = self.experts(x)  # [B, E, H]
        g = self.gates(x).softmax(dim=-1)  # [B, G, E]
        return torch.einsum("bge,beh->bgh", g, experts), g


class CGC(nn.Module):
    """One extraction level of PLE (Customized Gate Control): ``num_specific`` experts per task, ``num_shared``
    shared experts, a gate per task and (below the last level) a gate of the shared module::

        y_k = sum_i g^k(x_k)_i [E_k(x_k); E_s(x_s)]_i                  g^k = softmax(W_k x_k)  (task k)
        y_s = sum_i g^s(x_s)_i [E_1(x_1); ...; E_T(x_T); E_s(x_s)]_i   g^s = softmax(W_s x_s)  (shared)

    ``E_k`` are task k's experts, ``E_s`` the shared ones. At the first level every input is ``x``. As in the
    paper the shared gate mixes every expert of the level; FuxiCTR's ``CGC_Layer`` mixes the shared experts only.
    ``x``: ``[B, D]`` (the first level) or ``[B, T+1, D]`` (tasks, then shared) -> ``[B, T(+1), H]`` and the task
    gates ``[B, T, num_specific + num_shared]`` (task k's experts first, then the shared ones).
    """

    def __init__(self, input_dim: int, num_tasks: int, num_specific: int, num_shared: int, expert_hidden: Sequence[int],
                 *, shared_gate: bool, gate_hidden: Sequence[int] = (), dropout: float = 0.0, batch_norm: bool = False):  # fmt: skip
        super().__init__()
        if num_specific < 0 or num_shared < 0 or num_specific + num_shared < 1 or not expert_hidden:
            raise ValueError(
                f"a CGC level needs expert_hidden units and at least one expert per task "
                f"(num_specific_experts={num_specific}, num_shared_experts={num_shared})"
            )
        self.num_tasks, self.num_specific, self.num_shared = num_tasks, num_specific, num_shared
        total = num_tasks * num_specific + num_shared  # task 0's experts, task 1's, ..., then the shared ones
        self.experts = ParallelMLP(total, input_dim, tuple(expert_hidden), dropout=dropout, batch_norm=batch_norm)
        self.task_gates = gates(num_tasks, input_dim, num_specific + num_shared, gate_hidden, dropout, batch_norm)
        self.shared_gate = gates(1, input_dim, total, gate_hidden, dropout, batch_norm) if shared_gate else None
        self.output_dim = self.experts.output_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T, n_specific, n_shared = self.num_tasks, self.num_specific, self.num_shared
        if x.dim() == 2:  # the first level: every expert and gate reads x
            task_inputs = shared_input = x
            experts = self.experts(x)  # [B, E_total, H]
        else:  # task k's experts read x_k, the shared ones x_s (expand and reshape: no index gather to scatter back)
            B, _, D = x.shape
            task_inputs, shared_input = x[:, :T], x[:, T:]  # [B, T, D], [B, 1, D]
            by_task = task_inputs.unsqueeze(2).expand(B, T, n_specific, D).reshape(B, T * n_specific, D)
            experts = self.experts(torch.cat([by_task, shared_input.expand(B, n_shared, D)], dim=1))
        B, _, H = experts.shape
        own, shared = experts[:, : T * n_specific].view(B, T, n_specific, H), experts[:, T * n_specific :]
        g = self.task_gates(task_inputs).softmax(dim=-1)  # [B, T, n_specific + n_shared], own experts first
        g_own, g_common = g[..., :n_specific], g[..., n_specific:]  # weights on its own experts, on the shared ones
        outputs = torch.einsum("bte,bteh->bth", g_own, own) + torch.einsum("bte,beh->bth", g_common, shared)
        if self.shared_gate is not None:
            g_shared = self.shared_gate(shared_input).softmax(dim=-1)  # [B, 1, E_total]
            outputs = torch.cat([outputs, torch.einsum("bse,beh->bsh", g_shared, experts)], dim=1)  # [B, T+1, H]
        return outputs, g


class MultiTaskModel(CTRModel):
    """``x`` -> the model's task representations (:meth:`represent`) -> one tower per task, ``y_k = h^k(.)``:
    an MLP and a linear output, the logits ``[B, T]``. Subclasses build ``self.towers`` with :meth:`make_towers`."""

    towers: ParallelMLP

    def __init__(
        self, feature_map: FeatureMap, *, sparse_embeddings: bool, embedding_dim: int, embedding_init_std: float
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        self.inputs = MultiTaskInput(feature_map, embedding_dim, sparse=sparse_embeddings, init_std=embedding_init_std)

    def make_towers(self, input_dim: int, tower_hidden: Sequence[int], dropout: float, batch_norm: bool) -> ParallelMLP:
        n = self.feature_map.num_tasks
        return ParallelMLP(n, input_dim, tuple(tower_hidden), dropout=dropout, batch_norm=batch_norm, output_dim=1)

    def represent(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # pragma: no cover - abstract
        """``x`` ``[B, D]`` -> the towers' inputs, ``[B, H]`` (one for all) or ``[B, T, H]``, and the aux outputs."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> ModelOutput:
        h, aux = self.represent(self.inputs(batch))
        return ModelOutput(logits=self.towers(h).squeeze(-1), aux=aux)
