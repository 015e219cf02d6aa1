"""AutoInt (Song et al., CIKM'19), as published and as FuxiCTR 2.3.10 implements it (model_zoo/AutoInt).

Every field m (categorical, and each dense feature) is a token ``e_m`` (``[B, F, d]``): a row of its embedding
table, or ``e_m = x_m v_m`` for a dense value (the paper's numerical embedding; ``dense_bias=True`` adds a bias,
rtdl style). ``num_layers`` interacting layers (``layers.InteractingLayer``, its equations there):

    alpha^h_mk = softmax_k(<W_Q^h e_m, W_K^h e_k>)          (/ sqrt(d_h) with use_scale)
    e~_m       = [sum_k alpha^1_mk W_V^1 e_k || ... || sum_k alpha^H_mk W_V^H e_k]
    e^Res_m    = ReLU(e~_m + R e_m)                          R = W_Res, or I when the widths agree (FuxiCTR)

then every field's output, flattened, into one linear head:

    logit = w^T [e^Res_1 || ... || e^Res_F] + b

No biases in W_Q, W_K, W_V, W_Res; no output projection, LayerNorm (``layer_norm`` adds one before the ReLU) or FFN.
AutoInt+ (``autoint_plus.py``) adds a DNN on the flattened embeddings whose logit is added to this one.

FuxiCTR's defaults (``AutoInt.__init__``): embedding_dim 10, attention_layers 2, num_heads 1, attention_dim 8,
use_scale False, use_residual True, layer_norm False, net_dropout 0 (attention weights and DNN), batch_norm False,
use_wide False, dnn_hidden_units [64, 64, 64] (so FuxiCTR's ``AutoInt`` is AutoInt+ unless the DNN is emptied).
Ours: ``num_layers`` is FuxiCTR's ``attention_layers``, ``dropout`` its ``net_dropout``; ``attention_dim`` defaults
to ``embedding_dim``; FuxiCTR's optional wide (LR) term is not offered. Weights start as in FuxiCTR (Xavier-normal
per matrix, zero biases, categorical embeddings N(0, 1e-4)) but for the dense ``v_m``: N(0, 1e-4) as in every model
here, where FuxiCTR's ``reset_parameters`` gives its ``nn.Linear(1, d)`` Xavier-normal weights.
"""

from __future__ import annotations

import inspect

from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import CTRModel, ModelOutput
from ctrbench.models.layers import FeatureEmbedding, InteractingLayer
from ctrbench.models.registry import register


def xavier_linears(module: nn.Module) -> None:
    """FuxiCTR's ``reset_parameters`` for the ``nn.Linear`` layers of ``module``: Xavier-normal weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@register
class AutoInt(CTRModel):
    """Field tokens -> ``num_layers`` interacting layers -> every field's output flattened -> linear head."""

    arch = "autoint"

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
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if problems := self.param_problems({"embedding_dim": embedding_dim, "num_layers": num_layers,
                                            "num_heads": num_heads, "attention_dim": attention_dim}):  # fmt: skip
            raise ValueError(f"{self.arch}: " + "; ".join(problems))
        d_att = attention_dim or embedding_dim
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="per_feature", sparse=sparse_embeddings, dense_bias=dense_bias
        )
        self.interacting = nn.Sequential(
            *(
                InteractingLayer(
                    embedding_dim if i == 0 else d_att,
                    d_att,
                    num_heads,
                    scale=use_scale,
                    residual=use_residual,
                    project_residual=project_residual,
                    layer_norm=layer_norm,
                    dropout=dropout,
                )
                for i in range(num_layers)
            )
        )
        self.head = nn.Linear(self.embedding.num_tokens * d_att, feature_map.num_tasks)
        xavier_linears(self.head)
        self.dnn: nn.Module | None = None  # AutoInt+'s

    @classmethod
    def param_problems(cls, params: dict, history_groups: tuple[str, ...] | None = None) -> list[str]:
        """Besides the base checks: at least one interacting layer, and heads that split the attention width."""
        problems = super().param_problems(params, history_groups)
        defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
        p = {
            name: params.get(name, defaults[name])
            for name in ("num_layers", "num_heads", "attention_dim", "embedding_dim")
        }
        width, heads = p["attention_dim"] or p["embedding_dim"], p["num_heads"]
        sizes = {"num_layers": p["num_layers"], "num_heads": heads, "attention width": width}
        bad = [
            f"{name} must be an integer >= 1, got {v!r}" for name, v in sizes.items() if not isinstance(v, int) or v < 1
        ]
        problems += bad
        if not bad and width % heads:
            problems.append(
                f"attention width {width} (attention_dim, else embedding_dim) is not divisible by num_heads={heads}"
            )
        return problems

    def forward(self, batch: Batch) -> ModelOutput:
        tokens = self.embedding(batch)  # [B, F, d]
        logits = self.head(self.interacting(tokens).flatten(1))  # [B, F * d_att] -> [B, T]
        if self.dnn is not None:
            logits = logits + self.dnn(tokens.flatten(1))
        return ModelOutput(logits=logits)
