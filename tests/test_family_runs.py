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
        config["benchmark"] = {"datasets": ["tiny_kuairand"], "models": models}
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
        gold = json.loads((work / "results/tiny_kuairand" / model / "gold_eval.json").read_text())
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
        config["benchmark"] = {"datasets": ["tiny_long"], "models": models}
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
        train = json.loads((work / "results/tiny_long" / model / "train_metrics.json").read_text())
        assert train["history_lengths"] == {"click": 8 if model.endswith("_short") else 64}
        assert train["cost"]["forward_flops_per_sample"] > 0
    html = (work / "results/report.html").read_text()
    for model in models:
        assert f'data-model="{model}"' in html
    assert html.count('class="length-chart"') == 3 and "vs history length" in html
