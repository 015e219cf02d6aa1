"""profiles/slurm: its settings, a dry run through it, and the tiny benchmark run on a real (local, single-node)
Slurm cluster through the profile."""

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from slurm_cluster import PARTITION, SlurmCluster, unavailable
from test_workflow import MODELS, TINY_CONFIG, planned_jobs, workflow_copy

PROFILE = REPO / "profiles" / "slurm" / "config.yaml"
GPU_RULES = {"train", "gold_eval"}
JOB_BLOCK = r"^rule (\w+):\n((?:    .*\n?)*)"  # one job of a dry run's listing, as test_workflow.planned_jobs reads it
SNAKEMAKE_TIMEOUT = 420  # seconds; the run takes about 1.5 minutes on 2 cores
NO_SLURM = unavailable()


def test_slurm_profile_submits_to_slurm_with_gpus_for_training_and_gold_eval_only():
    profile = yaml.safe_load(PROFILE.read_text())
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account"} <= profile["default-resources"].keys()
    assert "gpu" not in profile["default-resources"]
    assert {rule for rule, resources in profile["set-resources"].items() if resources.get("gpu")} == GPU_RULES
    assert profile["software-deployment-method"] == "apptainer" and profile["apptainer-args"] == "--nv"


def test_slurm_profile_dry_run_lists_every_job(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install -e '.[slurm]'")
    work = workflow_copy(tmp_path)
    shutil.copytree(REPO / "profiles", work / "profiles")
    env = None
    if not (shutil.which("apptainer") or shutil.which("singularity")):
        # Snakemake checks the Apptainer version even in a dry run (which starts no container): a stand-in answers
        stub = tmp_path / "bin" / "apptainer"
        stub.parent.mkdir()
        stub.write_text("#!/bin/sh\necho apptainer version 1.3.6\n")
        stub.chmod(0o755)
        env = {**os.environ, "PATH": f"{stub.parent}:{os.environ['PATH']}"}
    (work / "test_config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    command = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "-n", "results/report.html",
               "--configfile", "test_config.yaml"]
    run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]

    jobs = planned_jobs(output)
    assert Counter(rule for rule, _ in jobs) == {"generate_synthetic": 1, "preprocess": 1, "train": 4,
                                                 "gold_eval": 4, "report": 1}
    # the profile's gpu=1 beats the config's gpu: 0, for these two rules only
    for rule, body in re.findall(JOB_BLOCK, output, flags=re.MULTILINE):
        assert ("gpu=1" in body) == (rule in GPU_RULES), (rule, body)


def local_cluster_profile(directory: Path) -> Path:
    """profiles/slurm with this machine's overrides: the test partition, no account, no GPU, no containers,
    squeue for job status (no accounting database), a quick first status check."""
    profile = yaml.safe_load(PROFILE.read_text())
    for key in ("software-deployment-method", "apptainer-args"):
        profile.pop(key)
    profile["default-resources"] = {"slurm_partition": PARTITION}
    profile["set-resources"] = {rule: {"gpu": 0} for rule in GPU_RULES}
    profile["slurm-status-command"] = "squeue"
    profile["slurm-init-seconds-before-status-checks"] = 2
    profile["latency-wait"] = 5
    directory.mkdir()
    (directory / "config.yaml").write_text(yaml.safe_dump(profile))
    return directory


@pytest.mark.slurm
@pytest.mark.skipif(bool(NO_SLURM), reason=f"no local Slurm cluster: {NO_SLURM}")
def test_tiny_benchmark_runs_through_slurm(tmp_path):
    work = workflow_copy(tmp_path)
    (work / "test_config.yaml").write_text(yaml.safe_dump(TINY_CONFIG))
    profile = local_cluster_profile(tmp_path / "profile")

    with SlurmCluster(tmp_path / "slurm") as cluster:
        # a waiting snakemake stops (cancelling its Slurm jobs) on SIGINT, not on SIGTERM
        command = ["timeout", "-s", "INT", "-k", "60", str(SNAKEMAKE_TIMEOUT), sys.executable, "-m", "snakemake",
                   "--profile", str(profile), "results/report.html", "--configfile", "test_config.yaml"]
        run = subprocess.run(command, cwd=work, env=cluster.env, capture_output=True, text=True, check=False)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-4000:] + "\n" + cluster.log_tail()
        listed = cluster.run("squeue", "--states=all", "--noheader", "--format=%i|%T|%j|%k")

    submitted = re.findall(r"submitted with SLURM jobid (\d+)", output)
    queue = {job_id: rest for job_id, *rest in (line.split("|") for line in listed.split())}
    assert sorted(submitted) == sorted(queue), (submitted, listed)  # a fresh cluster: only this run's jobs
    assert {state for state, _, _ in queue.values()} == {"COMPLETED"}
    assert all(name.startswith("ctrbench_") for _, name, _ in queue.values())  # slurm-jobname-prefix
    rules = Counter(comment.split("_wildcards_")[0] for _, _, comment in queue.values())
    assert rules == {"rule_generate_synthetic": 1, "rule_preprocess": 1, "rule_train": 4, "rule_gold_eval": 4,
                     "rule_report": 1}
    slurm_logs = {log.stem for log in (work / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert slurm_logs == set(submitted)  # one kept log per job, named by its Slurm job id

    html = (work / "results" / "report.html").read_text()
    assert all(model in html for model in MODELS)
