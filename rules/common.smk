import functools
import importlib.util
import os
import re
import sys
from pathlib import Path

from jsonschema import ValidationError
from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.settings.types import DeploymentMethod
from snakemake.utils import min_version, validate

from ctrbench.config import ConfigError, benchmark_runs as configured_runs, check_config, model_training, schema_problem
from ctrbench.data.formats import FORMATS
from ctrbench.predictions import PREDICTIONS_FILE
from ctrbench.provenance import sha256_json
from ctrbench.results import RESULT_VERSION

min_version("9.0")


# Config errors are raised here, anew and `from None`: Snakemake prints an error raised while it reads the workflow
# with the frames below this file, and for a schema error its message would carry the whole failing sub-schema. This
# way the user reads the message once: which key, what is wrong.
try:
    validate(config, schema="../config/schema.yaml")
except WorkflowError as error:
    if not isinstance(error.__context__, ValidationError):  # validate raises it while handling jsonschema's error
        raise
    raise ConfigError(schema_problem(error.__context__)) from None
try:
    check_config(config)
except ConfigError as error:
    raise ConfigError(str(error)) from None


wildcard_constraints:
    dataset="|".join(map(re.escape, config["datasets"])),
    model="|".join(map(re.escape, config["models"])),
    seed=r"\d+",


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def data_settings(wildcards):
    """What the processed data depends on: the dataset's entry without the keys about what runs on it (its
    model list, seeds, training overrides, published references), so that editing those re-processes nothing."""
    return {k: v for k, v in dataset_config(wildcards).items() if k not in ("models", "seeds", "training", "reference")}


def synthetic_raw(wildcards):
    """Where generate_synthetic writes a dataset's raw input, in its format's layout: the folder itself for a
    format whose input is a directory, else a file in it."""
    folder = f"results/{wildcards.dataset}/raw"
    return folder if FORMATS[dataset_config(wildcards)["format"]].directory_files else f"{folder}/data.txt"


def raw_input(wildcards):
    """The configured raw file(s) (a directory's files for directory formats), or the folder generate_synthetic
    writes."""
    dataset = dataset_config(wildcards)
    if "path" in dataset:
        return FORMATS[dataset["format"]].raw_files(dataset["path"])
    return f"results/{wildcards.dataset}/raw"


def raw_path(wildcards):
    """What the reader opens: the configured path (file or directory), or the synthetic input."""
    return dataset_config(wildcards).get("path") or synthetic_raw(wildcards)


def model_config(wildcards):
    return config["models"][wildcards.model]


# where one training run (a dataset, a model, a seed) keeps its files: the rules' paths and run_dir's
RUN = "results/{dataset}/{model}/seed{seed}"


def run_dir(dataset, model, seed):
    return RUN.format(dataset=dataset, model=model, seed=seed)


def init_checkpoint(wildcards):
    """The checkpoint a training phase starts from (the model's init_from, trained with the same seed), which makes
    it an input: the DAG runs the earlier phase first. Nothing for a model trained from scratch."""
    init = model_config(wildcards).get("init_from")
    return f"{run_dir(wildcards.dataset, init['model'], wildcards.seed)}/checkpoint.pt" if init else []


def init_settings(wildcards):
    """The model and parts a training phase starts from (init_from), or None."""
    init = model_config(wildcards).get("init_from")
    return {"model": init["model"], "parts": init["parts"]} if init else None


def training_config(wildcards):
    return model_training(config, wildcards.model, wildcards.dataset)


def run_meta(wildcards):
    """What identifies a result: names, the seed, and the hash of every config value it depends on but the seed (the
    seed is in the path and the records): the runs of one model over its seeds share it, which the report checks."""
    depends_on = {
        "result_version": RESULT_VERSION,  # results of another version are rebuilt, not read
        "dataset": data_settings(wildcards),
        "model": model_config(wildcards),
        "training": training_config(wildcards),
    }
    return {
        "dataset": wildcards.dataset,
        "model": wildcards.model,
        "seed": int(wildcards.seed),
        "config_sha256": sha256_json(depends_on),
    }


def job_resources(rule_name):
    return config["resources"][rule_name]


def benchmark_runs():
    return configured_runs(config)


def result_files(dataset, model, seed):
    """A run's train record, gold record and gold predictions."""
    folder = run_dir(dataset, model, seed)
    return f"{folder}/train_metrics.json", f"{folder}/gold_eval.json", f"{folder}/{PREDICTIONS_FILE}"


def training_downstream(wildcards, output):
    """The files made from a training run's outputs (its gold evaluation and predictions): the train job removes
    them when it starts, since they describe the run it replaces, and a failed retrain must not leave them looking
    current. As a param that takes `output`, Snakemake counts it as derived from the outputs and leaves it out of
    the params it compares to decide reruns (adding it retrained nothing)."""
    return list(result_files(wildcards.dataset, wildcards.model, wildcards.seed)[1:])


def unfinished_runs():
    return [run for run in benchmark_runs() if not all(map(os.path.exists, result_files(*run)))]


def report_inputs(runs, manifest_exists=lambda path: True):
    manifests = [f"results/{d}/data/manifest.json" for d in config["benchmark"]["datasets"]]
    files = [result_files(*run) for run in runs]
    return {
        "train_metrics": [train for train, _, _ in files],
        "gold_evals": [gold for _, gold, _ in files],
        "predictions": [predictions for _, _, predictions in files],
        "manifests": [path for path in manifests if manifest_exists(path)],
    }


def all_results(wildcards):
    """Inputs of the report: every configured (dataset, model, seed) result."""
    return report_inputs(benchmark_runs())


def finished_results(wildcards):
    """Inputs of the partial report: the results and manifests that exist now."""
    unfinished = unfinished_runs()
    return report_inputs([run for run in benchmark_runs() if run not in unfinished], os.path.exists)


@functools.cache
def container_image(kind):
    """The Apptainer image of a rule's jobs ("cpu" or "gpu") for --software-deployment-method apptainer: the
    containers.prefix directory (relative to the workflow's directory, or absolute) + the file name that
    containers/build.sh gives the image (envs/lock.py image-name: Python and torch versions and a hash of the
    definition file and the lock), so an edited definition or lock names an image still to be built, never a stale
    one. Plain runs and --sdm conda ignore it."""
    root = Path(workflow.basedir)
    spec = importlib.util.spec_from_file_location("ctrbench_envs_lock", root / "envs" / "lock.py")
    lock = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lock)
    image = root / config["containers"]["prefix"] / lock.image_name(kind, root)
    if DeploymentMethod.APPTAINER in workflow.deployment_settings.deployment_method and not image.exists():
        logger.warning(f"Apptainer image {image} does not exist yet: build it with containers/build.sh {kind}")
    return str(image)
