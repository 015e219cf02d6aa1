"""Model names (the config's ``arch``) → classes, and construction with checked hyper-parameters."""

from __future__ import annotations

import inspect

from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel

MODELS: dict[str, type[CTRModel]] = {}


def register(cls: type[CTRModel]) -> type[CTRModel]:
    if not cls.arch or cls.arch in MODELS:
        raise ValueError(f"model class {cls.__name__} needs a unique arch name, got {cls.arch!r}")
    MODELS[cls.arch] = cls
    return cls


def _load_models() -> None:
    # imported here, not at module import, so that registering cannot be circular; every time (imports are
    # cached), since importing one model module first registers that model alone
    from ctrbench.models import (  # noqa: F401
        autoint,
        bst,
        dcnv2,
        dcnv3,
        deepfm,
        din,
        ft_transformer,
        hyformer,
        infnet,
        llm_ctr,
        longer,
        mamba4rec,
        mdaf,
        mmoe,
        omoe,
        ple,
        shared_bottom,
        sum_pooling,
    )


def model_class(arch: str) -> type[CTRModel]:
    _load_models()
    if arch not in MODELS:
        raise ValueError(f"unknown model arch {arch!r}; known: {', '.join(sorted(MODELS))}")
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
