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
from preset_data import stand_ins

# ctrbench (and its report templates) too: Snakemake and the jobs then import this checkout's package, whatever
# `pip install -e` points at
WORKFLOW_PARTS = ["Snakefile", "rules", "workflow_scripts", "config", "envs", "containers", "ctrbench", "report"]
MODELS = ["dcnv2", "field_transformer", "ft_transformer", "deepfm"]

TINY_CONFIG = {
    "benchmark": {"datasets": ["tiny_criteo"], "models": MODELS, "seeds": [11]},
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
        "field_transformer": {
            "arch": "field_transformer",
            "params": {"embedding_dim": 8, "num_layers": 1, "num_heads": 2},
            "training": {
                "optimizer": {"embedding": {"name": "sgd", "lr": 10.0}, "dense": {"name": "adamw", "lr": 0.01}}
            },
        },
        "ft_transformer": {
            "arch": "ft_transformer",
            "params": {"d_token": 8, "num_layers": 1, "num_heads": 2},
            "training": {
                "optimizer": {"embedding": {"name": "sgd", "lr": 10.0}, "dense": {"name": "adamw", "lr": 0.01}}
            },
        },
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


SEQUENCE_MODELS = ["dcnv3", "bst", "mamba4rec", "mdaf_mamba"]

# the tiny config plus a behaviour-sequence dataset with its own models and training settings
TINY_SEQUENCE_CONFIG = json.loads(json.dumps(TINY_CONFIG))
TINY_SEQUENCE_CONFIG["benchmark"]["datasets"].append("tiny_userbehavior")
TINY_SEQUENCE_CONFIG["datasets"]["tiny_userbehavior"] = {
    "format": "taobao_userbehavior",
    "synthetic": {"rows": 8000, "seed": 5},
    "history": {"max_len": 8},
    "models": SEQUENCE_MODELS,
    "training": {"batch_size": 256, "max_epochs": 2,
                 "optimizer": {"embedding": {"name": "adam", "lr": 0.005}, "dense": {"name": "adamw", "lr": 0.005}}},
}  # fmt: skip
# one model of the end-to-end run trains in two data-parallel processes, through the same train rule
TINY_SEQUENCE_CONFIG["models"]["deepfm"]["training"] = {"distributed": {"processes": 2}}
TINY_SEQUENCE_CONFIG["models"].update({
    "dcnv3": {"arch": "dcnv3", "params": {"embedding_dim": 4}},
    "bst": {"arch": "bst", "params": {"embedding_dim": 8, "num_heads": 2, "mlp_hidden": [16]}},
    "mamba4rec": {"arch": "mamba4rec", "params": {"embedding_dim": 8, "d_model": 8, "d_state": 4, "mlp_hidden": [16]}},
    "mdaf_mamba": {"arch": "mdaf", "params": {"sequence_encoder": "mamba", "static_embedding_dim": 4, "sequence_embedding_dim": 8,
                                             "d_model": 8, "d_state": 4, "fusion_dim": 16, "mlp_hidden": [16, 8]}},
})  # fmt: skip


def workflow_copy(tmp_path: Path) -> Path:
    """The workflow files in a scratch directory, so results/ and .snakemake/ land there."""
    work = tmp_path / "wf"
    work.mkdir()
    for part in WORKFLOW_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, work / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, work / part)
    return work


def snakemake(work: Path, *args: str, config: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--cores", "2", *args]
    if config is not None:
        (work / "test_config.yaml").write_text(yaml.safe_dump(config))
        command += ["--configfile", "test_config.yaml"]
    return subprocess.run(command, check=False, cwd=work, capture_output=True, text=True, timeout=timeout)


def planned_jobs(dry_run_output: str) -> set[tuple[str, str]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs = set()
    for rule, body in re.findall(r"^rule (\w+):\n((?:    .*\n?)*)", dry_run_output, flags=re.MULTILINE):
        wildcards = re.search(r"^    wildcards: (.*)$", body, flags=re.MULTILINE)
        jobs.add((rule, wildcards.group(1) if wildcards else ""))
    return jobs


def with_changes(config: dict, change) -> dict:
    changed = json.loads(json.dumps(config))
    change(changed)
    return changed


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c["models"]["dcnv2"].update(arch="dcn_v9"), "models.dcnv2: unknown model arch 'dcn_v9'"),
        (lambda c: c["benchmark"]["models"].append("lr"), "benchmark.models names 'lr'"),
        (lambda c: c.update(seed=7), "seed: 7 is now benchmark.seeds, a list of training seeds (e.g. [7])"),
        (lambda c: c["benchmark"].update(seeds=[1, 1]), "benchmark.seeds"),
        (lambda c: c["benchmark"].update(seeds=["3"]), "'3' is not of type 'integer' (Snakemake's --config reads a number inside a list or mapping as a string"),
        (lambda c: c.update(seeds=[1]), "it takes benchmark, containers, datasets, models, report, resources, training"),
        (lambda c: c["benchmark"]["datasets"].append("avazu"), "benchmark.datasets names 'avazu'"),
        (lambda c: c["models"]["deepfm"]["params"].update(embeding_dim=8), "no parameter(s) ['embeding_dim']"),
        (lambda c: c["training"].update(batch_size="big"), "'big' is not of type 'integer'"),
        (
            lambda c: (
                c["datasets"]["tiny_criteo"].pop("synthetic")
                and c["datasets"]["tiny_criteo"].update(path="/nonexistent/train.txt")
            ),
            "'/nonexistent/train.txt' does not exist",
        ),
        (lambda c: c["datasets"]["tiny_criteo"]["splits"].update(valid=0.6, gold=0.6), "datasets.tiny_criteo.splits"),
        (lambda c: c["datasets"]["tiny_criteo"]["splits"].update(valid=100), "do not mix fractions and row counts"),
        (lambda c: c["models"].update(data={"arch": "dcnv2"}), "models.data: the name is reserved"),
        (
            lambda c: c["benchmark"]["models"].append("bst"),
            "models.bst (bst) reads behaviour sequences, but dataset 'tiny_criteo'",
        ),
        (
            lambda c: c["datasets"]["tiny_userbehavior"].update(splits={"valid": 0.1, "gold": 0.1}),
            "'splits' is not a key of a taobao_userbehavior dataset; it takes format, history, input_hash, max_bad_rows, models, path, reference, seeds, split_seed, synthetic, targets, time_range, time_split, training",
        ),
        (
            lambda c: c["datasets"]["tiny_userbehavior"]["models"].append("mdaf_bts"),
            "datasets.tiny_userbehavior.models names 'mdaf_bts'",
        ),
        (
            lambda c: c["datasets"]["tiny_userbehavior"].update(history={"max_len": 0}),
            "0 is less than the minimum of 1",
        ),
        (
            lambda c: c["datasets"].update(
                ads={"format": "taobao_ad", "path": str(REPO / "tests/data/taobao_ad/test_sample.csv")}
            ),
            "must be a directory holding train.csv, test.csv",
        ),
        (
            lambda c: c["datasets"]["tiny_criteo"].update(time_split={"valid_days": 1}),
            "datasets.tiny_criteo: 'time_split' is not a key of a criteo_dac dataset; it takes format, hash_bins",
        ),
        (
            lambda c: c["datasets"]["tiny_criteo"].update(
                training={"optimizer": {"embedding": {"name": "sgd", "lr": 1.0, "weight_decay": 0.1}}}
            ),
            "models.dcnv2 on dataset 'tiny_criteo': the sparse embedding optimizer 'sgd' takes no weight_decay",
        ),
        # a misspelt training key is refused, named with where it is (it used to be ignored: six epochs ran)
        (
            lambda c: c["training"].update(max_epoch=2),
            "- training: Additional properties are not allowed ('max_epoch' was unexpected)",
        ),
        (
            lambda c: c["datasets"]["tiny_userbehavior"]["training"].update(max_epoch=2),
            "- datasets.tiny_userbehavior.training: Additional properties are not allowed ('max_epoch' was unexpected)",
        ),
        (
            lambda c: c["models"]["field_transformer"]["training"].update(max_epoch=2),
            "- models.field_transformer.training: Additional properties are not allowed ('max_epoch' was unexpected)",
        ),
        (
            lambda c: c["training"]["optimizer"]["dense"].update(weight_decy=0.1),
            "- training.optimizer.dense: Additional properties are not allowed ('weight_decy' was unexpected)",
        ),
        # what data-parallel training cannot do is refused before any job
        (
            lambda c: c["models"]["deepfm"]["training"].update(distributed={"processes": 3}),
            "models.deepfm on dataset 'tiny_criteo': batch_size 256 does not split evenly over distributed.processes=3",
        ),
        (
            lambda c: c["models"]["dcnv2"].update(training={"device": "cuda", "distributed": {"processes": 2}}),
            "sparse embedding gradients cannot be all-reduced by NCCL",
        ),
        (lambda c: c["training"].update(precision="fp16"), "'fp16' is not one of ['fp32', 'bf16']"),
        (
            lambda c: c["models"]["dcnv2"].update(training={"history_max_len": {"history": 100}}),
            "models.dcnv2 on dataset 'tiny_criteo': training.history_max_len names ['history'], but this dataset's histories",
        ),
        # a group the dataset's options do not make (KuaiRand makes one per configured behaviour)
        (
            lambda c: (
                c["datasets"].update(
                    kr={
                        "format": "kuairand",
                        "synthetic": {"rows": 500},
                        "history": {"behaviors": ["click"]},
                        "models": ["dcnv2"],
                        "training": {"history_max_len": {"like": 5}},
                    }
                ),
                c["benchmark"]["datasets"].append("kr"),
            ),
            "models.dcnv2 on dataset 'kr': training.history_max_len names ['like'], but this dataset's histories stored by reference are ['click']",
        ),
        # a one-history model on a dataset of several histories: it must choose one, and one the dataset makes
        (
            lambda c: (
                c["datasets"].update(kr={"format": "kuairand", "synthetic": {"rows": 500}, "models": ["bst"]}),
                c["benchmark"]["datasets"].append("kr"),
            ),
            "models.bst (bst) reads one behaviour history, but dataset 'kr' has 7 (click, like, follow",
        ),
        (
            lambda c: (
                c["datasets"].update(
                    kr={"format": "kuairand", "synthetic": {"rows": 500}, "history": {"behaviors": ["click"]}, "models": ["din"]}
                ),
                c["models"].update(din={"arch": "bst", "params": {"history_group": "like"}}),
                c["benchmark"]["datasets"].append("kr"),
            ),
            "models.din (bst): history_group 'like' is not a history of dataset 'kr' (click)",
        ),
        (
            lambda c: c["datasets"]["tiny_criteo"]["synthetic"].update(profile="long_history"),
            "datasets.tiny_criteo.synthetic: format 'criteo_dac' has no synthetic profile 'long_history' (it has: default)",
        ),
        # training phases: the model a phase starts from must exist and train on the same dataset; never across datasets
        (
            lambda c: c["models"]["deepfm"].update(init_from={"model": "dcn9", "parts": ["embedding"]}),
            "models.deepfm.init_from.model 'dcn9' is not another model under models:",
        ),
        (
            lambda c: (
                c["models"].update(other={"arch": "deepfm", "params": {"embedding_dim": 4}}),
                c["models"]["deepfm"].update(init_from={"model": "other", "parts": ["embedding"]}),
            ),
            "models.deepfm starts from 'other' (init_from) on dataset 'tiny_criteo', but 'other' is not among that dataset's models",
        ),
        (
            lambda c: (
                c["models"]["deepfm"].update(init_from={"model": "dcnv2", "parts": ["embedding"]}),
                c["models"]["dcnv2"].update(init_from={"model": "deepfm", "parts": ["embedding"]}),
            ),
            "models.deepfm.init_from: the phases start from each other in a cycle (deepfm -> dcnv2 -> deepfm)",
        ),
        (
            lambda c: c["models"]["deepfm"].update(init_from={"model": "dcnv2", "parts": ["embedding"], "dataset": "tiny_userbehavior"}),
            "training phases across datasets need one feature map (the same fields and one vocabulary)",
        ),
        (
            lambda c: c["models"].update(llm={"arch": "llm_ctr", "params": {"lm_path": "/models/Qwen3-0.6B"}}),
            "models.llm: model arch 'llm_ctr': lm_path '/models/Qwen3-0.6B' is not a directory",
        ),
    ],
    ids=[
        "unknown-arch",
        "unknown-model",
        "top-level-seed",
        "repeated-seed",
        "seed-as-string",
        "top-level-seeds",
        "unknown-dataset",
        "unknown-param",
        "wrong-type",
        "missing-path",
        "splits-over-one",
        "splits-mixed",
        "reserved-name",
        "sequence-model-on-flat-data",
        "time-split-with-fractions",
        "unknown-dataset-model",
        "empty-history",
        "taobao-ad-file-not-directory",
        "key-of-another-format",
        "dataset-training-override-checked",
        "training-typo",
        "dataset-training-typo",
        "model-training-typo",
        "optimizer-typo",
        "ddp-batch-not-divisible",
        "ddp-sparse-on-nccl",
        "unknown-precision",
        "history-length-on-flat-data",
        "history-length-of-a-group-not-made",
        "one-history-model-on-several",
        "history-group-not-made",
        "unknown-synthetic-profile",
        "phase-from-unknown-model",
        "phase-from-a-model-not-on-the-dataset",
        "phase-cycle",
        "phase-across-datasets",
        "missing-lm-path",
    ],
)
def test_config_errors_are_reported_before_any_job(tmp_path, change, message):
    work = workflow_copy(tmp_path)
    run = snakemake(work, "-n", "results/report.html", config=with_changes(TINY_SEQUENCE_CONFIG, change))
    assert run.returncode != 0
    assert message in run.stdout + run.stderr
    assert not (work / "results").exists()


def test_lint_is_clean(tmp_path):
    run = snakemake(workflow_copy(tmp_path), "--lint")
    assert run.returncode == 0, run.stdout + run.stderr


PRESETS = sorted(path.stem for path in (REPO / "config" / "presets").glob("*.yaml"))


@pytest.mark.parametrize("preset", PRESETS)
def test_presets_plan_every_model_on_a_sample(tmp_path, preset):
    """Each preset is a valid config whose DAG trains every model it lists, once its path points at data in its
    layout (a real sample, or a generated file where no sample exists: tests/preset_data.py)."""
    text = (REPO / "config" / "presets" / f"{preset}.yaml").read_text()
    assert text.count("snakemake --cores all results/report.html --configfile") == 1
    config = yaml.safe_load(text)
    stand_in = stand_ins(tmp_path)
    for dataset in config["benchmark"]["datasets"]:
        config["datasets"][dataset]["path"] = stand_in[config["datasets"][dataset]["path"]]
    for model in config["models"].values():  # a local language model's folder
        if "lm_path" in model.get("params", {}):
            model["params"]["lm_path"] = stand_in[model["params"]["lm_path"]]
    run = snakemake(workflow_copy(tmp_path), "-n", "results/report.html", config=config)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    jobs = planned_jobs(run.stdout + run.stderr)
    (dataset,) = config["benchmark"]["datasets"]
    assert {m for rule, w in jobs if rule == "train" for m in re.findall(r"model=(\w+)", w)} == set(
        config["benchmark"]["models"]
    )
    assert ("preprocess", f"dataset={dataset}") in jobs and not any(rule == "generate_synthetic" for rule, _ in jobs)


@pytest.mark.slow
def test_tiny_run_end_to_end_renders_every_model(tmp_path):
    work = workflow_copy(tmp_path)
    run = snakemake(work, "results/report.html", config=TINY_SEQUENCE_CONFIG)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = work / "results"
    html = (results / "report.html").read_text()
    gold_hashes = set()
    for model in MODELS:
        gold = json.loads((results / "tiny_criteo" / model / "seed11" / "gold_eval.json").read_text())
        assert (
            gold["rows"]
            == json.loads((results / "tiny_criteo/data/manifest.json").read_text())["splits"]["gold"]["rows"]
        )
        assert 0.0 <= gold["tasks"]["label"]["auc"] <= 1.0
        if model in ("dcnv2", "deepfm"):  # the fast learners pick up the planted signal even from 6k rows
            assert gold["tasks"]["label"]["auc"] > 0.65
        gold_hashes.add(gold["gold_sha256"])
        assert model in html
        assert f"{gold['tasks']['label']['auc']:.4f}" in html  # the model's number, as the report formats it
        assert (results / "tiny_criteo" / model / "seed11" / "benchmarks" / "train.tsv").exists()
        assert (results / "tiny_criteo" / model / "seed11" / "logs" / "train.log").stat().st_size > 0
    assert len(gold_hashes) == 1 and gold_hashes.pop() in html
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"?https?:", html)

    # the sequence dataset: its own models only, gAUC per user, the Mamba backend and MDAF's gate
    sequence = results / "tiny_userbehavior"
    assert sorted(p.name for p in sequence.iterdir() if (p / "seed11" / "gold_eval.json").exists()) == sorted(SEQUENCE_MODELS)
    assert not (results / "tiny_criteo" / "bst").exists() and not (sequence / "dcnv2").exists()
    manifest = json.loads((sequence / "data/manifest.json").read_text())
    for model in SEQUENCE_MODELS:
        gold = json.loads((sequence / model / "seed11" / "gold_eval.json").read_text())
        assert gold["rows"] == manifest["splits"]["gold"]["rows"]
        assert 0.0 <= gold["tasks"]["label"]["gauc"] <= 1.0 and f"{gold['tasks']['label']['gauc']:.4f}" in html
    for model in ("mamba4rec", "mdaf_mamba"):
        assert (
            json.loads((sequence / model / "seed11" / "train_metrics.json").read_text())["model_info"]["mamba_backend"] == "torch"
        )
    (gate_output,) = json.loads((sequence / "mdaf_mamba" / "seed11" / "gold_eval.json").read_text())["extra_outputs"]
    gate = gate_output["summary"]
    assert 0 < gate["mean"] < 1 and sum(gate["histogram"]["counts"]) == manifest["splits"]["gold"]["rows"]
    assert "Model outputs on the gold set" in html and "mamba_backend" in html
    # deepfm trained in two data-parallel CPU processes (torchrun, gloo) through the same rule
    deepfm = json.loads((results / "tiny_criteo" / "deepfm" / "seed11" / "train_metrics.json").read_text())
    assert deepfm["cost"]["processes"] == 2 and "rank 0" in (results / "tiny_criteo/deepfm/seed11/logs/train.log").read_text()

    # asking for one model's gold evaluation again finds nothing to do
    again = snakemake(work, "-n", "results/tiny_criteo/dcnv2/seed11/gold_eval.json", config=TINY_SEQUENCE_CONFIG)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr

    # changing one model's hyper-parameter retrains exactly that model (params trigger), then the report
    changed = with_changes(TINY_SEQUENCE_CONFIG, lambda c: c["models"]["dcnv2"]["params"].update(embedding_dim=6))
    plan = snakemake(work, "-n", "results/report.html", config=changed)
    assert plan.returncode == 0, plan.stderr[-2000:]
    model_wildcards = "dataset=tiny_criteo, model=dcnv2, seed=11"
    assert planned_jobs(plan.stdout + plan.stderr) == {
        ("train", model_wildcards),
        ("gold_eval", model_wildcards),
        ("report", ""),
    }

    # adding a seed to one dataset trains each of its models once more, with that seed only, and nothing else
    two_seeds = with_changes(TINY_SEQUENCE_CONFIG, lambda c: c["datasets"]["tiny_criteo"].update(seeds=[11, 12]))
    plan = snakemake(work, "-n", "results/report.html", config=two_seeds)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert planned_jobs(plan.stdout + plan.stderr) == {
        (rule, f"dataset=tiny_criteo, model={model}, seed=12") for rule in ("train", "gold_eval") for model in MODELS
    } | {("report", "")}

    # a dataset's model list is not part of its data or of its other models' settings: adding a model
    # (and a published reference) trains just that one, reprocessing nothing
    def add_model(c):
        c["models"]["bst_wide"] = {"arch": "bst", "params": {"embedding_dim": 12, "num_heads": 2, "mlp_hidden": [16]}}
        c["datasets"]["tiny_userbehavior"]["models"].append("bst_wide")
        c["datasets"]["tiny_userbehavior"]["reference"] = {
            "metric": "valid_auc",
            "source": "a paper",
            "values": {"bst": 0.7},
        }

    plan = snakemake(work, "-n", "results/report.html", config=with_changes(TINY_SEQUENCE_CONFIG, add_model))
    assert plan.returncode == 0, plan.stderr[-2000:]
    model_wildcards = "dataset=tiny_userbehavior, model=bst_wide, seed=11"
    assert planned_jobs(plan.stdout + plan.stderr) == {
        ("train", model_wildcards),
        ("gold_eval", model_wildcards),
        ("report", ""),
    }


@pytest.mark.slow
def test_a_failing_model_is_retried_others_finish_and_the_partial_report_names_it(tmp_path):
    work = workflow_copy(tmp_path)

    def add_broken_model(config):
        # an absurd embedding learning rate makes training diverge: a real failure, deterministic
        config["models"]["broken"] = {
            "arch": "deepfm",
            "params": {"embedding_dim": 4, "mlp_hidden": [8]},
            "training": {"optimizer": {"embedding": {"name": "sgd", "lr": 1.0e9}}},
        }
        config["benchmark"]["models"] = ["dcnv2", "broken"]
        config["resources"]["train"]["retries"] = 1

    config = with_changes(TINY_CONFIG, add_broken_model)
    run = snakemake(work, "--keep-going", "results/report.html", config=config)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert output.count("Error in rule train") == 2 and "model=broken" in output  # the first try and the retry
    results = work / "results" / "tiny_criteo"
    assert (results / "dcnv2" / "seed11" / "gold_eval.json").exists()
    assert not any((results / "broken" / "seed11").glob("*.json")) and not (results / "broken" / "seed11" / "checkpoint.pt").exists()
    assert not (work / "results" / "report.html").exists()

    partial = snakemake(work, "results/report_partial.html", config=config)
    assert partial.returncode == 0, partial.stderr[-2000:]
    html = (work / "results" / "report_partial.html").read_text()
    dcnv2_auc = json.loads((results / "dcnv2" / "seed11" / "gold_eval.json").read_text())["tasks"]["label"]["auc"]
    assert f"{dcnv2_auc:.4f}" in html
    assert re.search(r"Missing models.*broken", html, flags=re.DOTALL)
