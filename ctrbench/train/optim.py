"""The grouped optimizer: embedding tables and dense weights each get their own optimizer and rate.

By default embedding tables are sparse and updated by plain SGD, which keeps no state, while the
dense weights use AdamW. Choosing Adam for the embeddings instead makes the report show what the
extra 2 × table-size of moment estimates costs.
"""

from __future__ import annotations

import torch
from torch import nn

# optimizers that accept sparse gradients; the others need dense embedding gradients
SPARSE_CAPABLE = {"sgd", "sparse_adam", "adagrad"}
_FACTORIES = {
    "sgd": torch.optim.SGD,
    "adagrad": torch.optim.Adagrad,
    "sparse_adam": torch.optim.SparseAdam,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def embeddings_are_sparse(optimizer_config: dict) -> bool:
    """Sparse embedding gradients whenever the embedding optimizer can take them."""
    return optimizer_config["embedding"]["name"] in SPARSE_CAPABLE


def split_parameters(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """'embedding': weights of every nn.Embedding; 'dense': every other trainable parameter."""
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    groups: dict[str, list[nn.Parameter]] = {"embedding": [], "dense": []}
    for param in model.parameters():
        if param.requires_grad:
            groups["embedding" if id(param) in embedding_ids else "dense"].append(param)
    return groups


def _make(spec: dict, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    spec = dict(spec)
    name = spec.pop("name")
    if name not in _FACTORIES:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(sorted(_FACTORIES))}")
    return _FACTORIES[name](params, **spec)


class GroupedOptimizer:
    """Steps one optimizer per parameter group, so each keeps its own kind of state."""

    def __init__(self, model: nn.Module, optimizer_config: dict):
        groups = split_parameters(model)
        self.names = {group: optimizer_config[group]["name"] for group in groups}
        self.optimizers = {
            group: _make(optimizer_config[group], params) for group, params in groups.items() if params
        }

    def zero_grad(self) -> None:
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)

    def step(self) -> None:
        for opt in self.optimizers.values():
            opt.step()

    def state_bytes(self) -> dict[str, int]:
        """Bytes held in each optimizer's state tensors (moments, step counters), measured, not estimated."""
        sizes = {}
        for group, opt in self.optimizers.items():
            sizes[group] = sum(
                value.numel() * value.element_size()
                for state in opt.state.values()
                for value in state.values()
                if torch.is_tensor(value)
            )
        return sizes

    def state_dict(self) -> dict:
        return {group: opt.state_dict() for group, opt in self.optimizers.items()}
