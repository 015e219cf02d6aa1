"""CUDA paths: run where a GPU is present (the GPU machines of the project), skipped elsewhere."""

import importlib.util

import pytest
import torch

from ctrbench.evaluate import evaluate_gold
from ctrbench.train.trainer import TrainOutputs, train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

TRAINING = {"device": "cuda", "batch_size": 256, "steps_per_epoch": None, "max_epochs": 2, "patience": 2,
            "eval_batch_size": 1000,
            "optimizer": {"embedding": {"name": "sgd", "lr": 1.0}, "dense": {"name": "adamw", "lr": 0.003}}}


@pytest.mark.parametrize("arch", ["dcnv2", "autoint_plus", "field_transformer", "ft_transformer", "deepfm"])
def test_cuda_training_accounts_cuda_memory_and_scores_like_cpu(tiny_processed, tmp_path, arch):
    outputs = TrainOutputs(tmp_path / "ckpt.pt", tmp_path / "metrics.json", tmp_path / "log.jsonl")
    metrics = train(train_path=tiny_processed["train"], valid_path=tiny_processed["valid"],
                    feature_map_path=tiny_processed["feature_map"], arch=arch, params={}, training=TRAINING,
                    seed=0, outputs=outputs, progress=False)
    cost = metrics.cost
    assert cost.device == "cuda" and cost.peak_memory_kind == "cuda_max_allocated"
    # at least the weights themselves were on the GPU at the peak
    assert cost.peak_memory_bytes >= sum(g.bytes for g in cost.parameter_groups.values())
    on_gpu = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"],
                           output_path=tmp_path / "gpu.json", device="cuda")
    on_cpu = evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"],
                           output_path=tmp_path / "cpu.json", device="cpu")
    assert on_gpu.tasks["label"].auc == pytest.approx(on_cpu.tasks["label"].auc, abs=1e-4)
    assert on_gpu.tasks["label"].logloss == pytest.approx(on_cpu.tasks["label"].logloss, abs=1e-4)


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="needs flash_attn")
def test_llm_ctr_flash_attention_agrees_with_sdpa():
    """LLM-CTR's LM under FlashAttention-2 and under SDPA: the same weights give the same click probabilities (bf16
    autocast, as the presets train), and ``auto`` chooses flash here."""
    from test_models import feature_map, random_batch

    from ctrbench.inference import autocast
    from ctrbench.models.registry import build_model

    fm = feature_map(n_dense=1)
    params = {"prompt": "Click? 1/0:", "lm_width": 64, "lm_heads": 4, "lm_kv_heads": 2}
    torch.manual_seed(0)
    flash = build_model("llm_ctr", fm, {**params, "attention": "auto"}).cuda().eval()
    torch.manual_seed(0)
    sdpa = build_model("llm_ctr", fm, {**params, "attention": "sdpa"}).cuda().eval()
    sdpa.load_state_dict(flash.state_dict())
    batch = random_batch(fm, 64).to(torch.device("cuda"))
    with torch.no_grad(), autocast(torch.device("cuda"), "bf16"):
        p_flash, p_sdpa = (torch.sigmoid(m(batch).logits) for m in (flash, sdpa))
    assert p_flash.dtype == torch.float32 and flash.model_info()["attention"] == "flash_attention_2"
    torch.testing.assert_close(p_flash, p_sdpa, atol=2e-2, rtol=0)
    with torch.no_grad():  # fp32 on CUDA: flash's kernels take only half precision, so auto runs SDPA here
        torch.testing.assert_close(torch.sigmoid(flash(batch).logits), torch.sigmoid(sdpa(batch).logits))
    assert flash.lm.config._attn_implementation == "sdpa"
