"""The model families end to end on synthetic KuaiRand data, through the whole workflow: the multi-task section
(a column group per task) and the long-sequence section (charts against the history length)."""

import json
import re

import pytest
from test_workflow import TINY_CONFIG, snakemake, with_changes, workflow_copy


@pytest.mark.slow
def test_a_multi_task_run_renders_every_model_and_task(tmp_path):
    """The multi-task family end to end on synthetic KuaiRand: one column group per task, their means, a chart per
    task, and every model's gold record per task (with each task's own AUC and gAUC)."""
    tasks = ["is_click", "is_like", "long_view"]
    models = ["dcnv2", "mmoe", "ple", "infnet"]

    def change(config):
        config["benchmark"] = {"datasets": ["tiny_kuairand"], "models": models, "seeds": [11]}
        config["datasets"] = {"tiny_kuairand": {
            "format": "kuairand", "synthetic": {"rows": 6000, "seed": 2}, "tasks": tasks,
            "history": {"behaviors": ["click", "like"], "max_len": 6}, "time_split": {"valid_days": 2, "gold_days": 2},
        }}  # fmt: skip
        config["models"].update({
            "mmoe": {"arch": "mmoe", "params": {"embedding_dim": 4, "num_experts": 2, "expert_hidden": [8], "tower_hidden": [8]}},
            "ple": {"arch": "ple", "params": {"embedding_dim": 4, "num_levels": 1, "expert_hidden": [8], "tower_hidden": [8]}},
            "infnet": {"arch": "infnet", "params": {"embedding_dim": 8, "num_blocks": 1, "head_hidden": [8]}},
        })  # fmt: skip

    work = workflow_copy(tmp_path)
    run = snakemake(work, "results/report.html", config=with_changes(TINY_CONFIG, change))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for model in models:
        gold = json.loads((work / "results/tiny_kuairand" / model / "seed11" / "gold_eval.json").read_text())
        assert list(gold["tasks"]) == tasks and all(gold["tasks"][t]["auc"] is not None for t in tasks)
    html = (work / "results/report.html").read_text()
    assert re.findall(r'data-group="([^"]*)"', html) == [*tasks, "mean over tasks", ""]
    assert html.count('class="task-chart"') == len(tasks)
    for model in models:
        assert f'data-model="{model}"' in html
    assert "label rates is_click" in html


@pytest.mark.slow
def test_a_long_sequence_run_renders_every_model_and_the_length_charts(tmp_path):
    """The long-sequence family end to end on the synthetic KuaiRand profile ``long_history``: every model trains on
    one history read at two lengths (``training.history_max_len``), each record keeps the length it read and its
    forward FLOPs, and the report draws quality and cost against the length."""
    models = ["sum_pooling", "din", "din_short", "longer", "hyformer", "bst_short"]

    def change(config):
        config["benchmark"] = {"datasets": ["tiny_long"], "models": models, "seeds": [11]}
        config["datasets"] = {"tiny_long": {
            "format": "kuairand", "synthetic": {"rows": 4000, "seed": 2, "profile": "long_history"}, "tasks": ["is_click"],
            "statistics": [], "history": {"behaviors": ["click"], "fields": ["video_id", "author_id"], "max_len": 64},
            "time_split": {"valid_days": 2, "gold_days": 2},
        }}  # fmt: skip
        short = {"history_max_len": {"click": 8}}
        config["models"].update({
            "sum_pooling": {"arch": "sum_pooling", "params": {"embedding_dim": 4, "mlp_hidden": [8]}},
            "din": {"arch": "din", "params": {"embedding_dim": 4, "attention_hidden": [8], "mlp_hidden": [8]}},
            "din_short": {"arch": "din", "params": {"embedding_dim": 4, "attention_hidden": [8], "mlp_hidden": [8]}, "training": short},
            "longer": {"arch": "longer", "params": {"embedding_dim": 4, "d_model": 8, "merge_size": 4, "num_query_tokens": 4, "mlp_hidden": [8]}},
            "hyformer": {"arch": "hyformer", "params": {"embedding_dim": 4, "d_model": 8, "num_layers": 1, "mlp_hidden": [8]}},
            "bst_short": {"arch": "bst", "params": {"embedding_dim": 4, "num_heads": 2, "mlp_hidden": [8]}, "training": short},
        })  # fmt: skip

    work = workflow_copy(tmp_path)
    run = snakemake(work, "results/report.html", config=with_changes(TINY_CONFIG, change))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for model in models:
        train = json.loads((work / "results/tiny_long" / model / "seed11" / "train_metrics.json").read_text())
        assert train["history_lengths"] == {"click": 8 if model.endswith("_short") else 64}
        assert train["cost"]["forward_flops_per_sample"] > 0
    html = (work / "results/report.html").read_text()
    for model in models:
        assert f'data-model="{model}"' in html
    assert html.count('class="length-chart"') == 3 and "vs history length" in html


@pytest.mark.slow
def test_an_llm_ctr_run_trains_both_paths_and_carries_frozen_parts_through_the_phases(tmp_path):
    """The LLM-CTR family end to end on synthetic Avazu: DeepFM, DeepFM+GEN, LLM-CTR in one phase (path C) and in two
    (path A: the projector alone on DeepFM+GEN's frozen embeddings and GEN, then the projector and the LM), each phase
    its own target whose input is the earlier checkpoint; the frozen embeddings reach phase 2 unchanged."""
    import torch

    models = ["deepfm", "deepfm_gen", "llm_ctr", "llm_phase1", "llm_phase2"]
    llm = {"embedding_dim": 4, "projector_hidden": 8, "prompt": "Click?", "lm_layers": 1, "lm_width": 16, "lm_heads": 2,
           "lm_kv_heads": 1, "lm_intermediate": 16}  # fmt: skip

    def change(config):
        config["benchmark"] = {"datasets": ["tiny_avazu"], "models": models, "seeds": [11]}
        config["datasets"] = {"tiny_avazu": {"format": "avazu", "synthetic": {"rows": 3000, "seed": 2}}}
        config["training"]["optimizer"].update(projector={"name": "adam", "lr": 1e-3}, lm={"name": "adam", "lr": 1e-4})
        config["models"].update({
            "deepfm": {"arch": "deepfm", "params": {"embedding_dim": 4, "mlp_hidden": [8]}},
            "deepfm_gen": {"arch": "deepfm", "params": {"embedding_dim": 4, "mlp_hidden": [8], "gen": True}},
            "llm_ctr": {"arch": "llm_ctr", "params": llm},
            "llm_phase1": {"arch": "llm_ctr", "params": {**llm, "freeze": ["embedding", "gen", "lm"]},
                           "init_from": {"model": "deepfm_gen", "parts": ["embedding", "gen"]}},
            "llm_phase2": {"arch": "llm_ctr", "params": {**llm, "freeze": ["embedding", "gen"]},
                           "init_from": {"model": "llm_phase1", "parts": ["embedding", "gen", "projector", "lm"]}},
        })  # fmt: skip

    work = workflow_copy(tmp_path)
    config = with_changes(TINY_CONFIG, change)
    plan = snakemake(work, "-n", "results/tiny_avazu/llm_phase2/seed11/checkpoint.pt", config=config)
    assert plan.returncode == 0, plan.stdout[-3000:] + plan.stderr[-3000:]
    trained = re.findall(r"wildcards: dataset=tiny_avazu, model=(\w+)", plan.stdout)
    assert sorted(trained) == ["deepfm_gen", "llm_phase1", "llm_phase2"]  # the phase-2 target plans its chain
    run = snakemake(work, "results/report.html", config=config)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = work / "results/tiny_avazu"
    records = {m: json.loads((results / m / "seed11" / "train_metrics.json").read_text()) for m in models}
    assert records["llm_phase1"]["initialised_from"]["parts"] == ["embedding", "gen"]
    assert records["llm_phase1"]["initialised_from"]["model"] == "deepfm_gen"
    assert records["llm_phase1"]["initialised_from"]["checkpoint"] == "results/tiny_avazu/deepfm_gen/seed11/checkpoint.pt"
    assert records["llm_ctr"]["initialised_from"] is None
    groups = {m: records[m]["cost"]["parameter_groups"] for m in models[2:]}
    assert not groups["llm_ctr"]["frozen"]["params"] and set(groups["llm_phase1"]) == {"projector", "frozen"}
    assert groups["llm_phase2"]["lm"]["params"] == groups["llm_ctr"]["lm"]["params"] > 0
    assert records["llm_ctr"]["model_info"]["attention"] == "sdpa"

    def weights(model):
        return torch.load(results / model / "seed11" / "checkpoint.pt", weights_only=True)["state_dict"]

    baseline, phase1, phase2 = weights("deepfm_gen"), weights("llm_phase1"), weights("llm_phase2")
    for key in ("embedding.embedding.weight", "gen.linear.weight"):
        assert torch.equal(phase2[key], baseline[key]), key  # frozen since DeepFM+GEN trained them
    assert not torch.equal(phase2["projector.0.weight"], phase1["projector.0.weight"])  # phase 2 trained it on
    lm_keys = [k for k in phase1 if k.startswith("lm.")]
    assert any(not torch.equal(phase2[k], phase1[k]) for k in lm_keys)  # the LM trains in phase 2 only
    html = (work / "results/report.html").read_text()
    for model in models:
        assert f'data-model="{model}"' in html
    epoch = records["llm_phase1"]["initialised_from"]["epoch"]
    assert f"from deepfm_gen&#39;s embedding, gen (epoch {epoch})" in html  # the phase's start, beside its name
