"""The causal language model of LLM-CTR: a Qwen3 from a local folder, or a tiny randomly initialised one with a
byte-level tokenizer built here; nothing is downloaded.

``transformers`` and ``peft`` are imported inside the functions: building any other model never pays for them.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

# the prompt of the published Avazu runs
PUBLISHED_PROMPT = (
    "Based on the user's browsing behavior and ad interaction features, predict if they will click on this "
    "advertisement. Answer with 1 for click or 0 for no click:"
)
ANSWERS = ("0", "1")  # the no-click and click answers, each one token
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class TinyLM:
    """The shape of the randomly initialised Qwen3 used when no ``lm_path`` is given (its defaults: LLM-CTR's params)."""

    layers: int
    width: int
    heads: int
    kv_heads: int
    intermediate: int
    head_dim: int | None = None  # None: width // heads
    vocab_size: int = 256  # the byte tokenizer's ids are the first 256; a larger table only costs memory


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot hold a Hugging Face model with its tokenizer, or None."""
    folder = Path(path)
    if not folder.is_dir():
        return f"lm_path {path!r} is not a directory (a local Qwen3 folder: config.json, weights and tokenizer files)"
    if not (folder / "config.json").is_file():
        return f"lm_path {path!r} has no config.json: it is not a Hugging Face model folder"
    return None


@functools.cache
def byte_level_tokenizer():
    """A tokenizer over the 256 bytes, ids in GPT-2's byte order (Qwen's first 256 ids), with no merges: every
    byte is one token, and "0" / "1" get Qwen's ids (15 / 16)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {char: i for i, char in enumerate(bytes_to_unicode().values())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """The ids of "0" and "1", checked to be single tokens (the read-out compares two next-token logits)."""
    ids = []
    for answer in ANSWERS:
        encoded = tokenizer.encode(answer, add_special_tokens=False)
        if len(encoded) != 1:
            raise ValueError(f"the tokenizer splits the answer {answer!r} into {len(encoded)} tokens {encoded}; LLM-CTR needs one")
        ids.append(encoded[0])
    return ids[0], ids[1]


@functools.cache
def flash_attention_installed() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def attention_implementation(requested: str, on_cuda: bool, half_precision: bool) -> str:
    """The attention one forward pass runs: ``auto`` is FlashAttention-2 where it can run (the ``flash_attn``
    package, inputs on CUDA, in bf16 / fp16: its kernels take nothing else), else PyTorch's SDPA."""
    if requested != "auto":
        return requested
    return "flash_attention_2" if on_cuda and half_precision and flash_attention_installed() else "sdpa"


def load_language_model(path: str | None, tiny: TinyLM, attention: str = "sdpa") -> tuple[nn.Module, object, str]:
    """(causal LM, tokenizer, description): the Qwen3 in ``path`` with its own tokenizer, or the tiny random one
    (initialised from torch's global seed, which the trainer sets) with the byte-level tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    if path is not None:
        if problem := path_problem(path):
            raise FileNotFoundError(problem)
        model = AutoModelForCausalLM.from_pretrained(path, attn_implementation=attention, torch_dtype=torch.float32)
        return model, AutoTokenizer.from_pretrained(path), f"{model.config.model_type} from {path}"
    config = Qwen3Config(
        vocab_size=tiny.vocab_size,
        hidden_size=tiny.width,
        intermediate_size=tiny.intermediate,
        num_hidden_layers=tiny.layers,
        num_attention_heads=tiny.heads,
        num_key_value_heads=tiny.kv_heads,
        head_dim=tiny.head_dim or tiny.width // tiny.heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    config._attn_implementation = attention
    description = f"tiny random Qwen3 ({tiny.layers} layers, width {tiny.width}, {tiny.heads} heads)"
    return Qwen3ForCausalLM(config), byte_level_tokenizer(), description


def add_lora(model: nn.Module, rank: int, alpha: float, dropout: float, targets: tuple[str, ...]) -> None:
    """LoRA adapters (``peft``) on ``targets`` of ``model`` in place; the base weights stop training."""
    from peft import LoraConfig, inject_adapter_in_model

    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets)), model)
    for name, param in model.named_parameters():
        param.requires_grad = "lora_" in name
