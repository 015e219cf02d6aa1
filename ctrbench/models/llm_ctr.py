"""LLM-CTR: a CTR model's field embeddings, through GEN and a projector, become soft tokens after a text prompt, and
a causal language model (Qwen3) scores the next token "1" (click) against "0".

    E = embed(x)                                   [B, F, d]
    G = gamma * ReLU(W vec(E))  (GEN; G = E off)   [B, F, d]
    S = LayerNorm(W2 GELU(W1 G + b1) + b2)         [B, F, D]   one soft token per field, D the LM's width
    H = LM([prompt token embeddings; S])           [B, P + F, D]
    z = H[:, -1] @ head[("0", "1")]^T              [B, 2]      the last position's two next-token logits, in fp32
    p = sigmoid(z_1 - z_0)                         = softmax(z_0, z_1)[1]; loss: binary cross-entropy

The prompt's embeddings are looked up in the LM's input table at every forward pass (a cache would go stale
while the table trains). ``freeze`` names the parts that do not train: the two-phase run ("path A") trains the
projector alone on frozen embeddings, GEN and LM copied from a DeepFM+GEN result (config ``init_from``), then the
projector and the LM; the single-phase run ("path C") trains everything. ``lora_rank`` > 0 trains LoRA adapters
(``peft``) instead of the LM's weights.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.models.base import FROZEN, CTRModel, ModelOutput
from ctrbench.models.gen import GEN_GAMMA, FeatureGeneration
from ctrbench.models.language_model import (
    LORA_TARGETS,
    PUBLISHED_PROMPT,
    TinyLM,
    add_lora,
    answer_token_ids,
    attention_implementation,
    load_language_model,
    path_problem,
)
from ctrbench.models.layers import FeatureEmbedding
from ctrbench.models.registry import register

PARTS = ("embedding", "gen", "projector", "lm")  # what ``freeze`` may name; also the parameter groups


@register
class LLMCTR(CTRModel):
    arch = "llm_ctr"

    def __init__(
        self,
        feature_map: FeatureMap,
        *,
        sparse_embeddings: bool = False,
        embedding_dim: int = 16,
        gen: bool = True,
        gen_gamma: float = GEN_GAMMA,
        projector_hidden: int = 512,
        prompt: str = PUBLISHED_PROMPT,
        lm_path: str | None = None,
        lm_layers: int = 2,
        lm_width: int = 64,
        lm_heads: int = 4,
        lm_kv_heads: int = 2,
        lm_intermediate: int = 128,
        lm_head_dim: int | None = None,
        lm_vocab_size: int = 256,
        attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = "auto",
        lora_rank: int = 0,
        lora_alpha: float = 16.0,
        lora_dropout: float = 0.0,
        lora_targets: Sequence[str] = LORA_TARGETS,
        gradient_checkpointing: bool = False,
        freeze: Sequence[str] = (),
        dense_bias: bool = True,
    ):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        if feature_map.num_tasks != 1:
            raise ValueError(f"llm_ctr answers one question; dataset {feature_map.dataset!r} has tasks {feature_map.labels}")
        self.embedding = FeatureEmbedding(
            feature_map, embedding_dim, dense_mode="per_feature", sparse=sparse_embeddings, dense_bias=dense_bias
        )
        fields = self.embedding.num_tokens
        self.gen = FeatureGeneration(fields, embedding_dim, gen_gamma) if gen else None
        # chosen per forward pass (device and precision decide whether FlashAttention-2 can run); what ran is counted
        self.attention = attention
        self.attention_ran: Counter[str] = Counter()
        tiny = TinyLM(lm_layers, lm_width, lm_heads, lm_kv_heads, lm_intermediate, lm_head_dim, lm_vocab_size)
        self.lm, tokenizer, self.lm_description = load_language_model(lm_path, tiny, "eager" if attention == "eager" else "sdpa")
        width = self.lm.config.hidden_size
        self.projector = nn.Sequential(
            nn.Linear(embedding_dim, projector_hidden), nn.GELU(), nn.Linear(projector_hidden, width), nn.LayerNorm(width)
        )
        self.lora_rank = lora_rank
        if lora_rank:
            add_lora(self.lm, lora_rank, lora_alpha, lora_dropout, tuple(lora_targets))
        if gradient_checkpointing:
            self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.register_buffer("prompt_ids", torch.tensor(tokenizer.encode(prompt, add_special_tokens=False)), persistent=False)
        self.register_buffer("answer_ids", torch.tensor(answer_token_ids(tokenizer)), persistent=False)  # ("0", "1")
        for part in freeze:
            for param in self._part(part).parameters():
                param.requires_grad = False

    @classmethod
    def param_problems(cls, params: dict, history_groups: tuple[str, ...] | None = None) -> list[str]:
        problems = super().param_problems(params, history_groups)
        defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
        value = {**defaults, **params}
        if isinstance(value["freeze"], str):
            problems.append(f"freeze is a list of parts, e.g. [{value['freeze']}], got the string {value['freeze']!r}")
        elif unknown := sorted(set(value["freeze"]) - set(PARTS)):
            problems.append(f"freeze names {unknown}; the parts are {list(PARTS)}")
        elif "gen" in value["freeze"] and not value["gen"]:
            problems.append("freeze names gen, but gen is off")
        if value["lm_path"] is not None and (problem := path_problem(value["lm_path"])):
            problems.append(problem)
        if value["lm_head_dim"] is None and value["lm_width"] % value["lm_heads"]:
            problems.append(f"lm_width {value['lm_width']} is not divisible by lm_heads {value['lm_heads']}")
        if value["lm_heads"] % value["lm_kv_heads"]:
            problems.append(f"lm_heads {value['lm_heads']} is not a multiple of lm_kv_heads {value['lm_kv_heads']}")
        if value["lm_vocab_size"] < 256:
            problems.append(f"lm_vocab_size must hold the byte tokenizer's 256 ids, got {value['lm_vocab_size']}")
        if value["lora_rank"] < 0:
            problems.append(f"lora_rank must be >= 0 (0: no adapters), got {value['lora_rank']}")
        return problems

    def _part(self, name: str) -> nn.Module:
        part = getattr(self, name)
        if part is None:
            raise ValueError(f"llm_ctr has no {name} to freeze (gen is off)")
        return part

    def soft_tokens(self, batch: Batch) -> torch.Tensor:
        tokens = self.embedding(batch)  # [B, F, d]
        fields = tokens if self.gen is None else self.gen(tokens)  # [B, F, d]
        return self.projector(fields)  # [B, F, D]

    def forward(self, batch: Batch) -> ModelOutput:
        soft = self.soft_tokens(batch)  # [B, F, D]
        prompt = self.lm.get_input_embeddings()(self.prompt_ids)  # [P, D], from the table as it is now
        inputs = torch.cat([prompt.to(soft.dtype).expand(soft.shape[0], -1, -1), soft], dim=1)  # [B, P + F, D]
        half = inputs.dtype in (torch.float16, torch.bfloat16) or torch.is_autocast_enabled(inputs.device.type)
        attention = attention_implementation(self.attention, inputs.is_cuda, half)
        self.lm.config._attn_implementation = attention  # transformers reads it at every attention call
        self.attention_ran[attention] += 1
        last = self.lm.get_decoder()(inputs_embeds=inputs, use_cache=False).last_hidden_state[:, -1]  # [B, D]
        head = self.lm.get_output_embeddings()
        with torch.autocast(last.device.type, enabled=False):  # autocast would run the product in bf16
            answers = last.float() @ head.weight[self.answer_ids].float().T  # [B, 2]: z_0, z_1 in fp32
            if head.bias is not None:
                answers = answers + head.bias[self.answer_ids].float()
        return ModelOutput(logits=(answers[:, 1] - answers[:, 0]).unsqueeze(1))  # [B, 1]

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``embedding`` (the field tables), ``dense`` (GEN and the dense-feature tokens: the embeddings' rate),
        ``projector``, ``lm`` (its weights, or only the LoRA adapters) and ``frozen``: each its own optimizer and
        rate (the published runs: 1e-3 for embeddings and GEN, 1e-4 for the projector and the LM)."""
        tables = {id(m.weight) for m in self.embedding.modules() if isinstance(m, nn.Embedding)}
        groups: dict[str, list[nn.Parameter]] = {"embedding": [], "dense": [], "projector": [], "lm": [], FROZEN: []}
        owners = [("lm", self.lm), ("projector", self.projector), ("dense", self.gen), ("embedding", self.embedding)]
        for owner, module in owners:
            for param in module.parameters() if module is not None else ():
                group = owner if owner != "embedding" or id(param) in tables else "dense"
                groups[FROZEN if not param.requires_grad else group].append(param)
        # a part that is frozen leaves its group empty: no optimizer for it, nor a trainable 0 in the record
        return {group: params for group, params in groups.items() if params or group == FROZEN}

    def model_info(self) -> dict:
        return {
            "lm": self.lm_description,
            # the attention most forward passes ran (training's, in a train record; the gold pass's, in a gold one)
            "attention": self.attention_ran.most_common(1)[0][0] if self.attention_ran else self.attention,
            "lora_rank": self.lora_rank,
            "prompt_tokens": int(self.prompt_ids.numel()),
        }
