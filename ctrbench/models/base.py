"""The interface every CTR model implements; the trainer, evaluator and report know nothing else."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap

FROZEN = "frozen"  # the parameter group of weights that are not trained (kept in the cost bill)
NORMALIZATIONS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)


@dataclass
class ModelOutput:
    logits: torch.Tensor  # [B, n_tasks], before the sigmoid
    aux: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. branch logits, gate values


@dataclass(frozen=True)
class OutputDescription:
    """An extra per-sample output of a model (an ``aux`` key) that the gold evaluation summarises and the
    report draws, so that neither needs to know the model: e.g. MDAF's gate."""

    key: str  # the ModelOutput.aux key
    title: str  # what it is, e.g. "gate g"
    axis_label: str  # the x axis of its histogram
    reading: str  # one line on how to read it
    kind: Literal["distribution"] = "distribution"  # summarised as a histogram with mean and quantiles
    value_range: tuple[float, float] = (0.0, 1.0)
    # a sanity flag in the report when the gold mean lies this close to either end of value_range, with this warning
    collapse_margin: float | None = None
    collapse_warning: str = ""


def task_losses(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``[T]``: each task's mean binary cross-entropy over the rows where its label is known."""
    if batch.label_mask is None:
        return F.binary_cross_entropy_with_logits(logits, batch.labels, reduction="none").mean(dim=0)
    known = batch.label_mask.to(logits.dtype)
    # unknown labels may hold anything (NaN, -1): zero them before the loss, then leave them out of the mean
    labels = torch.where(batch.label_mask, batch.labels, torch.zeros_like(batch.labels))
    per_row = F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * known
    return per_row.sum(dim=0) / known.sum(dim=0).clamp(min=1)


class CTRModel(nn.Module):
    """Base class: a model maps a ``Batch`` to logits, one column per task of the feature map.

    Hyper-parameters are keyword arguments of ``__init__`` (with CPU-sized defaults); the config's
    ``params`` mapping is passed as they are, so an unknown key fails before training starts.
    ``sparse_embeddings`` asks for ``nn.Embedding(sparse=True)`` so that SGD / SparseAdam update
    only the rows a batch touched.
    """

    arch: ClassVar[str] = ""
    needs_sequences: ClassVar[bool] = False  # True: the dataset must have behaviour sequences
    # True: the model reads several sequence groups (its ``history_groups`` param, default all), not one ``history_group``
    reads_several_histories: ClassVar[bool] = False

    def __init__(self, feature_map: FeatureMap, *, sparse_embeddings: bool = False):
        super().__init__()
        self.feature_map = feature_map
        self.sparse_embeddings = sparse_embeddings
        self.register_buffer(
            "task_weights", torch.tensor([t.weight for t in feature_map.tasks], dtype=torch.float32), persistent=False
        )

    @classmethod
    def param_problems(cls, params: dict, history_groups: tuple[str, ...] | None = None) -> list[str]:
        """What is wrong with ``params`` (values, not names), checked when the config is read; ``history_groups``: the
        dataset's sequence groups where one is known (None: check what does not depend on the dataset). Here: every
        param annotated with a ``Literal`` takes one of its values, and one annotated ``bool`` is true or false (not
        0, 1 or a string such as "no"); models add their own checks."""
        hints = typing.get_type_hints(cls.__init__)
        problems = []
        for name, value in params.items():
            hint = hints.get(name)
            if typing.get_origin(hint) is Literal and value not in typing.get_args(hint):
                problems.append(f"{name} must be one of {list(typing.get_args(hint))}, got {value!r}")
            elif hint is bool and not isinstance(value, bool):
                problems.append(f"{name} must be true or false, got {value!r}")
        return problems

    def forward(self, batch: Batch) -> ModelOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def history_groups_read(self) -> list[str]:
        """The sequence groups whose events this model reads: what its history modules name (``groups_read``);
        none for a model that reads no history. The train record keeps their lengths."""
        return list(dict.fromkeys(g for module in self.modules() for g in getattr(module, "groups_read", ())))

    def model_info(self) -> dict:
        """Facts about how the model ran that its params do not fix (e.g. which Mamba kernel), for the results."""
        return {}

    def extra_outputs(self) -> list[OutputDescription]:
        """The ``aux`` outputs worth summarising on the gold set (none by default)."""
        return []

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Every parameter in exactly one named group; the trainer gives each group its own optimizer.

        Default: ``embedding`` = the weights of every ``nn.Embedding`` (sparse-capable tables),
        ``dense`` = every other trained weight, ``frozen`` = weights with ``requires_grad=False``
        (counted in the cost bill, never optimised). A model with other needs (a pretrained backbone,
        a projector with its own rate) overrides this; a group without optimizer settings of its own
        is trained with ``dense``'s.
        """
        embedding_ids = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        groups: dict[str, list[nn.Parameter]] = {"embedding": [], "dense": [], FROZEN: []}
        for param in self.parameters():
            name = FROZEN if not param.requires_grad else "embedding" if id(param) in embedding_ids else "dense"
            groups[name].append(param)
        return groups

    def no_weight_decay(self) -> set[int]:
        """``id``s of the parameters weight decay must not shrink: the weights and biases of normalisation
        layers, every bias (a parameter named ``*bias``), and any parameter marked ``_no_weight_decay``
        (mamba_ssm's convention for Mamba's ``A_log`` and ``D``)."""
        exempt = set()
        for module in self.modules():
            for name, param in module.named_parameters(recurse=False):
                if isinstance(module, NORMALIZATIONS) or name.endswith("bias") or getattr(param, "_no_weight_decay", False):
                    exempt.add(id(param))
        return exempt

    def weighted_loss(self, per_task: torch.Tensor) -> torch.Tensor:
        """``sum_t w_t L_t / sum_t w_t``: the weighted mean over the tasks (the feature map's weights, or the
        training's overrides), so weights are relative and the loss's scale does not grow with the task count."""
        return (self.task_weights * per_task).sum() / self.task_weights.sum()

    def loss(self, output: ModelOutput, batch: Batch) -> torch.Tensor:
        """Weighted mean of the tasks' mean binary cross-entropies; models with auxiliary losses override it."""
        return self.weighted_loss(task_losses(output.logits, batch))
