import re

from snakemake.utils import min_version, validate

from ctrbench.config import check_config, model_training
from ctrbench.provenance import sha256_json

min_version("9.0")


validate(config, schema="../config/schema.yaml")
check_config(config)


wildcard_constraints:
    dataset="|".join(map(re.escape, config["datasets"])),
    model="|".join(map(re.escape, config["models"])),


def dataset_config(wildcards):
    return config["datasets"][wildcards.dataset]


def raw_input(wildcards):
    """The configured raw file, or the synthetic one a rule writes."""
    dataset = dataset_config(wildcards)
    if "path" in dataset:
        return dataset["path"]
    return f"results/{wildcards.dataset}/raw/data.txt"


def model_config(wildcards):
    return config["models"][wildcards.model]


def training_config(wildcards):
    return model_training(config, wildcards.model)


def run_meta(wildcards):
    """What identifies a result: names, and the hash of every config value it depends on."""
    depends_on = {
        "seed": config["seed"],
        "dataset": dataset_config(wildcards),
        "model": model_config(wildcards),
        "training": training_config(wildcards),
    }
    return {
        "dataset": wildcards.dataset,
        "model": wildcards.model,
        "config_sha256": sha256_json(depends_on),
    }


def job_resources(rule_name):
    return config["resources"][rule_name]


def benchmark_pairs():
    return [(d, m) for d in config["benchmark"]["datasets"] for m in config["benchmark"]["models"]]
