"""The LLM-CTR family: GEN and its pair term against their formulas, DeepFM+GEN, the LLM read-out, prompt embeddings
that follow a trained table, frozen parts, LoRA, and phases that start from another run's checkpoint."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from test_models import feature_map, random_batch

from ctrbench.models.base import FROZEN
from ctrbench.models.gen import FeatureGeneration, GeneratedPairInteraction
from ctrbench.models.language_model import answer_token_ids, attention_implementation, byte_level_tokenizer
from ctrbench.models.layers import FMInteraction
from ctrbench.models.registry import build_model, check_params
from ctrbench.train.checkpoint import load_parts, save_checkpoint
from ctrbench.train.optim import GroupedOptimizer

FM = feature_map(n_dense=1)
TINY = {"prompt": "Click? 1/0:", "projector_hidden": 16, "lm_width": 16, "lm_heads": 2, "lm_kv_heads": 1, "lm_intermediate": 32}


def llm(seed: int = 0, **params):
    torch.manual_seed(seed)
    return build_model("llm_ctr", FM, {**TINY, **params})


def test_gen_is_gamma_relu_of_one_linear_map_of_all_fields():
    torch.manual_seed(0)
    gen = FeatureGeneration(num_fields=3, dim=2, gamma=6.0)
    e = torch.randn(4, 3, 2)
    w = gen.linear.weight  # [6, 6]
    expected = torch.stack([6.0 * torch.relu(w @ e[b].reshape(6)).reshape(3, 2) for b in range(4)])
    torch.testing.assert_close(gen(e), expected)


def test_pair_term_is_the_asymmetric_sum_over_ordered_pairs():
    torch.manual_seed(0)
    g, e = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    expected = torch.stack([sum(g[b, i] @ e[b, j] for i in range(4) for j in range(i + 1, 4)) for b in range(2)])
    pairs = GeneratedPairInteraction()
    torch.testing.assert_close(pairs(g, e).squeeze(1), expected)
    swapped = [1, 0, 2, 3]  # field order matters once G != E
    assert not torch.allclose(pairs(g[:, swapped], e[:, swapped]), pairs(g, e))
    torch.testing.assert_close(pairs(e, e), FMInteraction()(e))  # G = E: the FM term


def test_deepfm_with_gen_off_is_deepfm():
    """DeepFM+GEN with its generator replaced by the identity (G = E) gives plain DeepFM's logits, same weights."""
    torch.manual_seed(0)
    with_gen = build_model("deepfm", FM, {"gen": True, "mlp_hidden": [8]}).eval()
    torch.manual_seed(0)
    plain = build_model("deepfm", FM, {"mlp_hidden": [8]}).eval()
    plain.load_state_dict({k: v for k, v in with_gen.state_dict().items() if not k.startswith("gen.")})
    batch = random_batch(FM)
    assert not torch.allclose(with_gen(batch).logits, plain(batch).logits)
    with_gen.gen = torch.nn.Identity()
    torch.testing.assert_close(with_gen(batch).logits, plain(batch).logits)


def test_the_answers_are_single_tokens_with_qwens_ids():
    assert answer_token_ids(byte_level_tokenizer()) == (15, 16)  # Qwen's (GPT-2's) byte ids of "0" and "1"

    class Splitting:
        def encode(self, text, add_special_tokens=False):
            return [1, 2]

    with pytest.raises(ValueError, match="splits the answer '0' into 2 tokens"):
        answer_token_ids(Splitting())


def test_read_out_is_the_two_way_softmax_of_the_full_lm_logits():
    """sigmoid(z_1 - z_0) from the last hidden state and two head rows equals the softmax over the two answers of the
    LM's own next-token logits (its full forward, lm_head included)."""
    model = llm().eval()
    batch = random_batch(FM, 6)
    soft = model.soft_tokens(batch)
    prompt = model.lm.get_input_embeddings()(model.prompt_ids).expand(6, -1, -1)
    logits = model.lm(inputs_embeds=torch.cat([prompt, soft], 1)).logits[:, -1]  # [B, V]
    two_way = logits[:, [15, 16]].softmax(dim=1)[:, 1]
    torch.testing.assert_close(torch.sigmoid(model(batch).logits[:, 0]), two_way)


def test_prompt_embeddings_follow_the_lm_table_after_an_optimizer_step():
    model = llm()
    table = model.lm.get_input_embeddings()
    stale = table(model.prompt_ids).detach().clone()
    optimizer = GroupedOptimizer(model.parameter_groups(), {"dense": {"name": "adam", "lr": 0.01}}, set())
    batch = random_batch(FM, 8)
    model.loss(model(batch), batch).backward()
    optimizer.step()
    fresh = table(model.prompt_ids)
    assert not torch.allclose(fresh, stale)  # the table moved

    def output_with(prompt):
        soft = model.soft_tokens(batch)
        hidden = model.lm.get_decoder()(inputs_embeds=torch.cat([prompt.expand(8, -1, -1), soft], 1)).last_hidden_state
        head = model.lm.get_output_embeddings().weight[[16]] - model.lm.get_output_embeddings().weight[[15]]
        return hidden[:, -1] @ head.T

    model.eval()
    torch.testing.assert_close(model(batch).logits, output_with(fresh))
    assert not torch.allclose(model(batch).logits, output_with(stale))


def test_frozen_parts_get_no_gradient_and_no_optimizer_state():
    model = llm(freeze=["embedding", "gen", "lm"])  # path A, phase 1: the projector alone
    groups = model.parameter_groups()
    assert {g for g, params in groups.items() if params} == {"projector", FROZEN}
    optimizer = GroupedOptimizer(groups, {"dense": {"name": "adam", "lr": 0.01}}, set())
    batch = random_batch(FM, 8)
    model.loss(model(batch), batch).backward()
    optimizer.step()
    for name, param in model.named_parameters():
        trained = name.startswith("projector.")
        assert (param.grad is not None) == trained, name
    assert set(optimizer.optimizers) == {"projector"}
    assert optimizer.state_bytes()["projector"] > 0


def test_every_part_trains_in_the_single_phase_run_with_its_own_group():
    model = llm()
    groups = model.parameter_groups()
    assert {g: bool(p) for g, p in groups.items()} == {"embedding": True, "dense": True, "projector": True, "lm": True, FROZEN: False}
    lm_ids = {id(p) for p in model.lm.parameters()}
    assert {id(p) for p in groups["lm"]} == lm_ids  # the LM's own table is in lm, not with the field tables
    batch = random_batch(FM, 8)
    model.loss(model(batch), batch).backward()
    assert all(p.grad is not None for p in model.parameters())


def test_lora_trains_adapters_only_and_starts_as_the_plain_lm():
    plain, adapted = llm().eval(), llm(lora_rank=4).eval()
    batch = random_batch(FM, 5)
    torch.testing.assert_close(adapted(batch).logits, plain(batch).logits)  # LoRA's B starts at zero
    lm_group = adapted.parameter_groups()["lm"]
    assert lm_group and all("lora_" in n for n, p in adapted.lm.named_parameters() if p.requires_grad)
    assert sum(p.numel() for p in lm_group) < sum(p.numel() for p in plain.lm.parameters()) / 4


def test_gradient_checkpointing_changes_nothing_but_memory():
    batch = random_batch(FM, 6)
    grads = []
    for checkpointing in (False, True):
        model = llm(gradient_checkpointing=checkpointing)
        model.train()
        model.loss(model(batch), batch).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)


def test_attention_is_flash_only_where_it_can_run(monkeypatch):
    """FlashAttention-2 needs the package, CUDA inputs and half precision: ``auto`` takes it only then, per forward
    pass (so the trainer's fp32 FLOP count or a CPU evaluation of a GPU-trained model runs SDPA)."""
    from ctrbench.models import language_model

    monkeypatch.setattr(language_model, "flash_attention_installed", lambda: True)
    assert attention_implementation("auto", on_cuda=True, half_precision=True) == "flash_attention_2"
    assert attention_implementation("auto", on_cuda=True, half_precision=False) == "sdpa"
    assert attention_implementation("auto", on_cuda=False, half_precision=True) == "sdpa"
    assert attention_implementation("eager", on_cuda=True, half_precision=True) == "eager"
    monkeypatch.setattr(language_model, "flash_attention_installed", lambda: False)
    assert attention_implementation("auto", on_cuda=True, half_precision=True) == "sdpa"
    model = llm().eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(random_batch(FM, 4))
    assert model.model_info()["attention"] == "sdpa" and model.lm.config._attn_implementation == "sdpa"


@pytest.mark.parametrize(
    "params,problem",
    [
        ({"freeze": ["lm", "head"]}, "freeze names ['head']"),
        ({"gen": False, "freeze": ["gen"]}, "gen is off"),
        ({"lm_path": "/nonexistent/qwen3"}, "is not a directory"),
        ({"lm_width": 30, "lm_heads": 4}, "not divisible"),
        ({"attention": "flash"}, "attention must be one of"),
        ({"lm_vocab_size": 100}, "lm_vocab_size must hold the byte tokenizer's 256 ids"),
        ({"lm_heads": 4, "lm_kv_heads": 3}, "lm_heads 4 is not a multiple of lm_kv_heads 3"),
        ({"freeze": "lm"}, "freeze is a list of parts, e.g. [lm], got the string 'lm'"),
    ],
)
def test_bad_params_are_refused_when_the_config_is_read(params, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        check_params("llm_ctr", params)


def test_the_lm_shape_follows_its_params():
    """Qwen3-0.6B's shape has heads of 128 over a width of 1024: ``lm_head_dim`` apart from the width, and a table
    larger than the byte tokenizer's (as bench/llm_ctr_cost.py builds it)."""
    config = llm(lm_width=16, lm_heads=4, lm_kv_heads=2, lm_head_dim=8, lm_vocab_size=300).lm.config
    assert (config.head_dim, config.num_attention_heads, config.num_key_value_heads, config.vocab_size) == (8, 4, 2, 300)
    assert llm().lm.config.head_dim == 8  # width 16 / 2 heads


def test_one_task_only():
    with pytest.raises(ValueError, match="answers one question"):
        build_model("llm_ctr", feature_map(n_labels=2), TINY)


def test_a_phase_loads_the_named_parts_of_an_earlier_checkpoint(tmp_path):
    torch.manual_seed(1)
    baseline = build_model("deepfm", FM, {"gen": True, "embedding_dim": 16})
    path = tmp_path / "deepfm_gen.pt"
    save_checkpoint(path, baseline, "deepfm", {"gen": True, "embedding_dim": 16}, epoch=3, precision="fp32")
    phase1 = llm(seed=2)
    projector_before = phase1.projector[0].weight.clone()
    loaded = load_parts(phase1, path, ["embedding", "gen"])
    assert loaded["arch"] == "deepfm" and loaded["epoch"] == 3 and loaded["parts"] == ["embedding", "gen"]
    torch.testing.assert_close(phase1.embedding.embedding.weight, baseline.embedding.embedding.weight)
    torch.testing.assert_close(phase1.gen.linear.weight, baseline.gen.linear.weight)
    torch.testing.assert_close(phase1.projector[0].weight, projector_before)  # not named: untouched

    with pytest.raises(ValueError, match="part 'projector': the deepfm checkpoint .* has no such part"):
        load_parts(llm(), path, ["projector"])
    with pytest.raises(ValueError, match="other tensors or shapes"):
        load_parts(llm(embedding_dim=8), path, ["embedding"])
    other = feature_map(n_dense=1, n_cat=2)
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="other features or vocabularies"):
        load_parts(build_model("llm_ctr", other, TINY), path, ["embedding"])


def test_bf16_autocast_keeps_the_read_out_in_fp32():
    model = llm().eval()
    batch = random_batch(FM, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch).logits
    assert logits.dtype == torch.float32
    torch.testing.assert_close(torch.sigmoid(logits), torch.sigmoid(model(batch).logits), atol=0.05, rtol=0)
    assert F.binary_cross_entropy_with_logits(logits, batch.labels).isfinite()


def test_a_local_qwen3_folder_is_loaded_with_its_own_tokenizer(tmp_path):
    """``lm_path``: the weights and tokenizer of a local Hugging Face folder (here a tiny Qwen3 saved in that layout),
    not the random tiny LM: the model's LM holds the saved weights."""
    from preset_data import local_qwen3
    from transformers import AutoModelForCausalLM

    folder = local_qwen3(tmp_path)
    model = llm(seed=5, lm_path=str(folder))
    saved = AutoModelForCausalLM.from_pretrained(folder)
    for (name, ours), theirs in zip(model.lm.state_dict().items(), saved.state_dict().values()):
        torch.testing.assert_close(ours, theirs, msg=name)
    assert model.model_info()["lm"] == f"qwen3 from {folder}"
    assert model.answer_ids.tolist() == [15, 16]


def test_the_avazu_preset_runs_the_published_prompt_after_the_merge_into_the_default():
    """A --configfile is merged key by key into config/config.yaml, whose LLM models of the same names carry a short
    CPU prompt: the preset's models must still end up with the published prompt and Adam without weight decay."""
    import yaml
    from conftest import REPO
    from snakemake.utils import update_config

    from ctrbench.config import model_training
    from ctrbench.models.language_model import PUBLISHED_PROMPT

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((REPO / "config" / "presets" / "avazu_x4_llm.yaml").read_text()))
    for name in ("llm_ctr", "llm_ctr_phase1", "llm_ctr_phase2"):
        assert config["models"][name]["params"]["prompt"] == PUBLISHED_PROMPT
        assert config["models"][name]["params"]["lm_path"] == "/models/Qwen3-0.6B"
        optimizer = model_training(config, name, "avazu_x4")["optimizer"]
        assert {group: settings.get("weight_decay") for group, settings in optimizer.items()} == dict.fromkeys(optimizer, 0.0)


def test_phase_two_loads_every_named_part_even_into_lora_adapters(tmp_path):
    """Phase 2 takes phase 1's projector and LM (not only the embeddings); an LM phase 1 trained whole loads into
    phase 2's LoRA-wrapped layers (peft's base_layer weights), the adapters keeping their zero start."""
    phase1 = llm(seed=3)
    path = tmp_path / "phase1.pt"
    save_checkpoint(path, phase1, "llm_ctr", TINY, epoch=2, precision="fp32")
    for params in ({}, {"lora_rank": 4}):
        phase2 = llm(seed=4, **params)
        load_parts(phase2, path, ["embedding", "gen", "projector", "lm"])
        batch = random_batch(FM, 6)
        torch.testing.assert_close(phase2.eval()(batch).logits, phase1.eval()(batch).logits)
        torch.testing.assert_close(phase2.projector[0].weight, phase1.projector[0].weight)


@pytest.mark.parametrize(
    "dataset,problem",
    [
        ("avazu_synthetic", "init_from.dataset 'avazu_synthetic' is the dataset it runs on: leave it out"),
        ("nope", "init_from.dataset 'nope' is not under datasets:"),
        ("criteo_synthetic", "training phases across datasets need one feature map"),
    ],
)
def test_a_phase_names_another_dataset_only_to_be_told_why_not(dataset, problem):
    import copy

    import yaml
    from conftest import REPO

    from ctrbench.config import ConfigError, check_config

    config = copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    config["models"]["llm_ctr_phase1"]["init_from"]["dataset"] = dataset
    with pytest.raises(ConfigError, match=re.escape(problem)):
        check_config(config)
