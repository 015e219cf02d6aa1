"""The Snakemake workflow itself: config errors before any job, lint, and a tiny run end to end."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO

WORKFLOW_PARTS = ["Snakefile", "rules", "workflow_scripts", "config", "envs", "containers"]
MODELS = ["dcnv2", "autoint", "ft_transformer", "deepfm"]

TINY_CONFIG = {
    "seed": 11,
    "benchmark": {"datasets": ["tiny_criteo"], "models": MODELS},
    "datasets": {
        "tiny_criteo": {
            "format": "criteo_dac",
            "synthetic": {"rows": 6000, "seed": 3},
            "hash_bins": 500,
            "splits": {"train": 0.7, "valid": 0.15, "gold": 0.15},
        }
    },
    "models": {
        "dcnv2": {"arch": "dcnv2", "params": {"embedding_dim": 4, "num_cross_layers": 1, "mlp_hidden": [16]}},
        # attention models learn slowly from 6k rows: a per-model training override speeds them up
        "autoint": {"arch": "autoint", "params": {"embedding_dim": 8, "num_layers": 1, "num_heads": 2},
                    "training": {"optimizer": {"embedding": {"name": "sgd", "lr": 10.0}, "dense": {"name": "adamw", "lr": 0.01}}}},
        "ft_transformer": {"arch": "ft_transformer", "params": {"d_token": 8, "num_layers": 1, "num_heads": 2},
                           "training": {"optimizer": {"embedding": {"name": "sgd", "lr": 10.0}, "dense": {"name": "adamw", "lr": 0.01}}}},
        "deepfm": {"arch": "deepfm", "params": {"embedding_dim": 4, "mlp_hidden": [16]}},
    },
    "training": {
        "device": "cpu",
        "batch_size": 256,
        "steps_per_epoch": None,
        "max_epochs": 3,
        "patience": 2,
        "eval_batch_size": 2048,
        "optimizer": {"embedding": {"name": "sgd", "lr": 1.0}, "dense": {"name": "adamw", "lr": 0.003}},
    },
    "resources": {
        "preprocess": {"mem_mb": 1000, "runtime": 10, "threads": 1},
        "train": {"mem_mb": 2000, "runtime": 10, "threads": 1, "gpu": 0},
        "gold_eval": {"mem_mb": 1000, "runtime": 10, "threads": 1, "gpu": 0},
        "report": {"mem_mb": 500, "runtime": 5, "threads": 1},
    },
}


def workflow_copy(tmp_path: Path) -> Path:
    """The workflow files in a scratch directory, so results/ and .snakemake/ land there."""
    work = tmp_path / "wf"
    work.mkdir()
    for part in WORKFLOW_PARTS:
        source = REPO / part
        (shutil.copytree if source.is_dir() else shutil.copy)(source, work / part)
    return work


def snakemake(work: Path, *args: str, config: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    if config is not None:
        (work / "test_config.yaml").write_text(yaml.safe_dump(config))
        command += ["--configfile", "test_config.yaml"]
    return subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout)


def planned_jobs(dry_run_output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs = set()
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n?)*)", dry_run_output, flags=re.M):
        wildcards = re.search(r"^    wildcards: (.*)$", body, flags=re.M)
        jobs.add((rule, wildcards.group(1) if wildcards else ""))
    return jobs


def with_changes(config: dict, change) -> dict:
    changed = json.loads(json.dumps(config))
    change(changed)
    return changed


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["models"]["dcnv2"].update(arch="dcn_v9"), "unknown model arch 'dcn_v9'"),
        (lambda c: c["benchmark"]["models"].append("lr"), "benchmark.models names 'lr'"),
        (lambda c: c["benchmark"]["datasets"].append("avazu"), "benchmark.datasets names 'avazu'"),
        (lambda c: c["models"]["deepfm"]["params"].update(embeding_dim=8), "no parameter(s) ['embeding_dim']"),
        (lambda c: c["training"].update(batch_size="big"), "'big' is not of type 'integer'"),
        (
            lambda c: c["datasets"]["tiny_criteo"].pop("synthetic") and c["datasets"]["tiny_criteo"].update(path="/nonexistent/train.txt"),
            "'/nonexistent/train.txt' does not exist",
        ),
        (lambda c: c["datasets"]["tiny_criteo"]["splits"].update(valid=0.6, gold=0.6), "datasets.tiny_criteo.splits"),
        (lambda c: c["datasets"]["tiny_criteo"]["splits"].update(valid=100), "do not mix fractions and row counts"),
        (lambda c: c["models"].update(data={"arch": "dcnv2"}), "models.data: the name is reserved"),
    ],
    ids=["unknown-arch", "unknown-model", "unknown-dataset", "unknown-param", "wrong-type", "missing-path",
         "splits-over-one", "splits-mixed", "reserved-name"],
)
def test_config_errors_are_reported_before_any_job(tmp_path, change, message):
    work = workflow_copy(tmp_path)
    run = snakemake(work, "-n", "results/report.html", config=with_changes(TINY_CONFIG, change))
    assert run.returncode != 0
    assert message in run.stdout + run.stderr
    assert not (work / "results").exists()


def test_lint_is_clean(tmp_path):
    run = snakemake(workflow_copy(tmp_path), "--lint")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.slow
def test_tiny_run_end_to_end_renders_every_model(tmp_path):
    work = workflow_copy(tmp_path)
    run = snakemake(work, "results/report.html", config=TINY_CONFIG)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = work / "results"
    html = (results / "report.html").read_text()
    gold_hashes = set()
    for model in MODELS:
        gold = json.loads((results / "tiny_criteo" / model / "gold_eval.json").read_text())
        assert gold["rows"] == json.loads((results / "tiny_criteo/data/manifest.json").read_text())["splits"]["gold"]["rows"]
        assert 0.0 <= gold["metrics"]["auc"] <= 1.0
        if model in ("dcnv2", "deepfm"):  # the fast learners pick up the planted signal even from 6k rows
            assert gold["metrics"]["auc"] > 0.65
        gold_hashes.add(gold["gold_sha256"])
        assert model in html
        assert f"{gold['metrics']['auc']:.4f}" in html  # the model's number, as the report formats it
        assert (results / "tiny_criteo" / model / "benchmarks" / "train.tsv").exists()
        assert (results / "tiny_criteo" / model / "logs" / "train.log").stat().st_size > 0
    assert len(gold_hashes) == 1 and gold_hashes.pop() in html
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"?https?:", html)

    # asking for one model's gold evaluation again finds nothing to do
    again = snakemake(work, "-n", "results/tiny_criteo/dcnv2/gold_eval.json", config=TINY_CONFIG)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # changing one model's hyper-parameter retrains exactly that model (params trigger), then the report
    changed = with_changes(TINY_CONFIG, lambda c: c["models"]["dcnv2"]["params"].update(embedding_dim=6))
    plan = snakemake(work, "-n", "results/report.html", config=changed)
    assert plan.returncode == 0, plan.stderr[-2000:]
    model_wildcards = "dataset=tiny_criteo, model=dcnv2"
    assert planned_jobs(plan.stdout + plan.stderr) == {("train", model_wildcards), ("gold_eval", model_wildcards), ("report", "")}


@pytest.mark.slow
def test_a_failing_model_is_retried_others_finish_and_the_partial_report_names_it(tmp_path):
    work = workflow_copy(tmp_path)

    def add_broken_model(config):
        # an absurd embedding learning rate makes training diverge: a real failure, deterministic
        config["models"]["broken"] = {"arch": "deepfm", "params": {"embedding_dim": 4, "mlp_hidden": [8]},
                                      "training": {"optimizer": {"embedding": {"name": "sgd", "lr": 1.0e9}}}}
        config["benchmark"]["models"] = ["dcnv2", "broken"]
        config["resources"]["train"]["retries"] = 1

    config = with_changes(TINY_CONFIG, add_broken_model)
    run = snakemake(work, "--keep-going", "results/report.html", config=config)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert output.count("Error in rule train") == 2 and "model=broken" in output  # the first try and the retry
    results = work / "results" / "tiny_criteo"
    assert (results / "dcnv2" / "gold_eval.json").exists()
    assert not any((results / "broken").glob("*.json")) and not (results / "broken" / "checkpoint.pt").exists()
    assert not (work / "results" / "report.html").exists()

    partial = snakemake(work, "results/report_partial.html", config=config)
    assert partial.returncode == 0, partial.stderr[-2000:]
    html = (work / "results" / "report_partial.html").read_text()
    dcnv2_auc = json.loads((results / "dcnv2" / "gold_eval.json").read_text())["metrics"]["auc"]
    assert f"{dcnv2_auc:.4f}" in html
    assert re.search(r"Missing models.*broken", html, flags=re.S)
