"""A job that starts again clears what a killed attempt left, and a retrain removes the results it replaces."""

import json
import re

import pytest
from test_workflow import TINY_CONFIG, snakemake, with_changes, workflow_copy


def plant(paths):
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.name.startswith(".train.parquet.buckets."):
            path.mkdir()
            (path / "bucket00000.parquet").write_text("bucket")
        else:
            path.write_text("partial")
    return paths


@pytest.mark.slow
def test_leftovers_are_cleared_and_a_failed_retrain_leaves_no_stale_gold_eval(tmp_path):
    work = workflow_copy(tmp_path)
    results = work / "results" / "tiny_criteo"

    def two_quick_models(config):
        config["benchmark"]["models"] = ["dcnv2", "deepfm"]
        config["training"]["max_epochs"] = 1
        config["resources"]["train"]["retries"] = 0

    config = with_changes(TINY_CONFIG, two_quick_models)
    # what `kill -9` of earlier preprocess and train jobs leaves (pid 4242: long gone), and a file of the user's
    leftovers = plant([
        results / "data" / ".train.parquet.buckets.k3j2x9",
        results / "data" / ".manifest.json.4242.partial",
        results / "dcnv2" / "seed11" / ".checkpoint.pt.4242.partial",
        results / "dcnv2" / "seed11" / ".checkpoint.pt.4242.partial.tmp",
        results / "dcnv2" / "seed11" / ".train_log.jsonl.4242.partial",
    ])  # fmt: skip
    (results / "dcnv2" / "notes.txt").write_text("mine")
    run = snakemake(work, "results/report.html", config=config)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert [path for path in leftovers if path.exists()] == []
    assert (results / "dcnv2" / "notes.txt").read_text() == "mine"
    assert "left by an earlier attempt that was killed" in (results / "dcnv2" / "seed11" / "logs" / "train.log").read_text()
    deepfm_gold = (results / "deepfm" / "seed11" / "gold_eval.json").read_text()

    # dcnv2's training changes and now fails (an absurd embedding learning rate diverges): its old gold evaluation
    # scored a checkpoint that is gone, and must go with it, as must a killed evaluation's partial file
    leftovers = plant([results / "dcnv2" / "seed11" / ".checkpoint.pt.4242.partial", results / "dcnv2" / "seed11" / ".gold_eval.json.4242.partial"])
    broken = with_changes(config, lambda c: c["models"]["dcnv2"].update(training={"optimizer": {"embedding": {"name": "sgd", "lr": 1.0e9}}}))
    run = snakemake(work, "--keep-going", "results/report.html", config=broken)
    output = run.stdout + run.stderr
    assert run.returncode != 0 and "Error in rule train" in output and "model=dcnv2" in output
    assert not (results / "dcnv2" / "seed11" / "gold_eval.json").exists()
    assert not (results / "dcnv2" / "seed11" / "gold_predictions.parquet").exists()  # scored the same checkpoint
    assert not any((results / "dcnv2" / "seed11").glob("*.json")) and not (results / "dcnv2" / "seed11" / "checkpoint.pt").exists()
    assert [path for path in leftovers if path.exists()] == []
    assert "removed results/tiny_criteo/dcnv2/seed11/gold_eval.json" in (results / "dcnv2" / "seed11" / "logs" / "train.log").read_text()
    assert (results / "deepfm" / "seed11" / "gold_eval.json").read_text() == deepfm_gold  # the other model is untouched

    partial = snakemake(work, "results/report_partial.html", config=broken)
    assert partial.returncode == 0, partial.stderr[-2000:]
    html = (work / "results" / "report_partial.html").read_text()
    assert re.search(r"Missing models.*dcnv2", html, flags=re.DOTALL)
    assert f"{json.loads(deepfm_gold)['tasks']['label']['auc']:.4f}" in html
