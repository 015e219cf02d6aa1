"""The grouped optimizer: each parameter group a model declares gets its own optimizer and rate.

By default embedding tables are sparse and updated by plain SGD, which keeps no state, while the
dense weights use AdamW. Choosing Adam for the embeddings instead makes the report show what the
extra 2 x table-size of moment estimates costs. A group without settings of its own (a model's
extra group) is trained with ``dense``'s settings; the ``frozen`` group is never optimised. Weight
decay never applies to norms and biases (``CTRModel.no_weight_decay``).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ctrbench.models.base import FROZEN

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


def check_groups(model: nn.Module, groups: dict[str, list[nn.Parameter]]) -> None:
    """A model's ``parameter_groups()`` must hold each of its parameters exactly once: a parameter left out
    would silently not train, one listed twice would be stepped twice."""
    listed = [id(p) for params in groups.values() for p in params]
    if len(listed) != len(set(listed)):
        raise ValueError(f"{type(model).__name__}.parameter_groups() lists a parameter in two groups")
    missing = [name for name, p in model.named_parameters() if id(p) not in set(listed)]
    if missing:
        raise ValueError(f"{type(model).__name__}.parameter_groups() leaves out {missing}")
    if len(listed) != len(list(model.parameters())):
        raise ValueError(f"{type(model).__name__}.parameter_groups() lists parameters that are not the model's")


def group_settings(optimizer_config: dict, group: str) -> dict:
    return optimizer_config.get(group) or optimizer_config["dense"]


def _make(spec: dict, params: list[nn.Parameter], no_decay: set[int]) -> torch.optim.Optimizer:
    """The group's optimizer; with weight decay, the parameters in ``no_decay`` (norms, biases) get none."""
    spec = dict(spec)
    name = spec.pop("name")
    if name not in _FACTORIES:
        raise ValueError(f"unknown optimizer {name!r}; known: {', '.join(sorted(_FACTORIES))}")
    exempt = [p for p in params if id(p) in no_decay]
    factory = _FACTORIES[name]
    # the decay it applies: the configured one, else the optimizer's own default (AdamW's is 0.01)
    default = inspect.signature(factory).parameters.get("weight_decay")
    decay = spec.get("weight_decay", default.default if default is not None else 0)
    if not decay or not exempt:
        return factory(params, **spec)
    decayed = [p for p in params if id(p) not in no_decay]
    groups = ([{"params": decayed}] if decayed else []) + [{"params": exempt, "weight_decay": 0.0}]
    return factory(groups, **spec)


class GroupedOptimizer:
    """Steps one optimizer per trained parameter group, so each keeps its own kind of state."""

    def __init__(self, groups: dict[str, list[nn.Parameter]], optimizer_config: dict, no_decay: set[int]):
        """``groups``: ``CTRModel.parameter_groups()``, which must hold every parameter exactly once;
        ``no_decay``: ``CTRModel.no_weight_decay()``."""
        trained = {group: params for group, params in groups.items() if group != FROZEN}
        self.names = {group: group_settings(optimizer_config, group)["name"] for group in trained}
        self.optimizers = {
            group: _make(group_settings(optimizer_config, group), params, no_decay)
            for group, params in trained.items()
            if params
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
