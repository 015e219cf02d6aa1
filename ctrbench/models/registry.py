"""Model names (the config's ``arch``) → classes, and construction with checked hyper-parameters.

A job builds one model, so ``model_class`` imports the module of that arch alone (``BUILT_IN``): a job does not pay
for every model's imports, and a model whose module needs a heavy package (a pretrained-LM model importing
``transformers``) costs only the jobs that build it. ``_load_models`` imports them all (the config check, the tests).
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the registry itself imports no torch (the config check and report use it)
    from ctrbench.data.schema import FeatureMap
    from ctrbench.models.base import CTRModel

MODELS: dict[str, type[CTRModel]] = {}

# arch -> the module that defines (and registers) it; test_models checks each module registers its arch
BUILT_IN: dict[str, str] = {
    arch: f"ctrbench.models.{arch}"
    for arch in (
        "autoint", "autoint_plus", "bst", "dcnv2", "dcnv3", "deepfm", "din", "field_transformer", "ft_transformer",
        "hyformer", "infnet", "llm_ctr", "longer", "mamba4rec", "mdaf", "mmoe", "omoe", "ple", "shared_bottom",
        "sum_pooling",
    )
}  # fmt: skip


def register(cls: type[CTRModel]) -> type[CTRModel]:
    if not cls.arch or cls.arch in MODELS:
        raise ValueError(f"model class {cls.__name__} needs a unique arch name, got {cls.arch!r}")
    MODELS[cls.arch] = cls
    return cls


def _load_models() -> None:
    """Import every built-in model module (each registers its model; imports are cached, so calling again is free)."""
    for module in BUILT_IN.values():
        importlib.import_module(module)


def model_class(arch: str) -> type[CTRModel]:
    # imported here, not at module import, so that registering cannot be circular
    if arch not in MODELS and arch in BUILT_IN:
        importlib.import_module(BUILT_IN[arch])
    if arch not in MODELS:
        raise ValueError(f"unknown model arch {arch!r}; known: {', '.join(sorted({*BUILT_IN, *MODELS}))}")
    return MODELS[arch]


def check_params(arch: str, params: dict, history_groups: tuple[str, ...] | None = None) -> None:
    """Raise ValueError naming any key that the model's constructor does not take, or what its ``param_problems``
    finds in the values (given the dataset's sequence groups where known)."""
    accepted = set(inspect.signature(model_class(arch).__init__).parameters) - {"self", "feature_map", "sparse_embeddings"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(f"model arch {arch!r} has no parameter(s) {unknown}; it takes {sorted(accepted)}")
    if problems := model_class(arch).param_problems(params, history_groups):
        raise ValueError(f"model arch {arch!r}: " + "; ".join(problems))


def build_model(arch: str, feature_map: FeatureMap, params: dict | None = None, *, sparse_embeddings: bool = False) -> CTRModel:
    params = dict(params or {})
    check_params(arch, params, tuple(g.name for g in feature_map.sequence_groups))
    return model_class(arch)(feature_map, sparse_embeddings=sparse_embeddings, **params)
