"""AutoInt+ (Song et al., CIKM'19): AutoInt and a feed-forward network trained jointly, their logits added
(FuxiCTR 2.3.10 model_zoo/AutoInt with ``dnn_hidden_units`` set, its default [64, 64, 64]):

    logit = w^T [e^Res_1 || ... || e^Res_F] + b  +  MLP([e_1 || ... || e_F])

The MLP (``layers.MLP``: Linear -> (BatchNorm) -> ReLU -> (Dropout) per hidden layer, then Linear -> one logit per
task) reads the field tokens themselves, not the interacting layers' output; ``dropout`` is shared with the
attention weights, as FuxiCTR's ``net_dropout`` is.
"""

from __future__ import annotations

from collections.abc import Sequence

from ctrbench.data.schema import FeatureMap
from ctrbench.models.autoint import AutoInt, xavier_linears
from ctrbench.models.layers import MLP
from ctrbench.models.registry import register


@register
class AutoIntPlus(AutoInt):
    """AutoInt with a parallel DNN on the flattened field tokens (see the module docstring)."""

    arch = "autoint_plus"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        num_layers: int = 2,
        num_heads: int = 2,
        attention_dim: int | None = None,
        use_scale: bool = False,
        use_residual: bool = True,
        project_residual: bool = False,
        layer_norm: bool = False,
        dropout: float = 0.0,
        dense_bias: bool = False,
        mlp_hidden: Sequence[int] = (64, 64, 64),
        batch_norm: bool = False,
    ):
        super().__init__(
            feature_map, sparse_embeddings=sparse_embeddings, embedding_dim=embedding_dim, num_layers=num_layers,
            num_heads=num_heads, attention_dim=attention_dim, use_scale=use_scale, use_residual=use_residual,
            project_residual=project_residual, layer_norm=layer_norm, dropout=dropout, dense_bias=dense_bias,
        )  # fmt: skip
        if problems := self.param_problems({"mlp_hidden": mlp_hidden}):
            raise ValueError(f"{self.arch}: " + "; ".join(problems))
        self.dnn = MLP(
            self.embedding.num_tokens * embedding_dim, tuple(mlp_hidden), dropout=dropout, batch_norm=batch_norm,
            output_dim=feature_map.num_tasks,
        )  # fmt: skip
        xavier_linears(self.dnn)

    @classmethod
    def param_problems(cls, params: dict, history_groups: tuple[str, ...] | None = None) -> list[str]:
        problems = super().param_problems(params, history_groups)
        if "mlp_hidden" in params and not params["mlp_hidden"]:
            problems.append("mlp_hidden is empty, which leaves AutoInt alone: use arch autoint")
        return problems
