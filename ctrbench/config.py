"""Config checks that a JSON schema cannot express, and the per-model view of the config.

The Snakefile validates the config against ``config/schema.yaml`` first (types, required keys),
then calls ``check_config`` so that an unknown model or dataset, a bad hyper-parameter or a
missing input file is reported before any job starts.
"""

from __future__ import annotations

import copy
from pathlib import Path

from ctrbench.data.formats import FORMATS
from ctrbench.data.splits import REST, resolve_split_counts
from ctrbench.models.registry import check_params
from ctrbench.train.optim import SPARSE_CAPABLE


# folder names the workflow itself uses under results/ and results/<dataset>/
RESERVED_NAMES = {"data", "raw", "logs", "benchmarks"}


class ConfigError(ValueError):
    pass


def split_problem(splits: dict) -> str | None:
    """What is wrong with a splits entry, checked without the data (train defaults to the rest)."""
    spec = {"train": REST, **splits}
    sizes = [v for v in spec.values() if v != REST]
    # fractions are checked on any total; counts on the smallest total that holds them
    total = sum(sizes) if all(isinstance(v, int) for v in sizes) else 1_000_000
    try:
        resolve_split_counts(total, spec)
    except ValueError as error:
        return str(error)
    return None


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def model_training(config: dict, model: str) -> dict:
    """The global training settings with the model's own overrides applied."""
    return deep_merge(config["training"], config["models"][model].get("training", {}))


def check_config(config: dict) -> None:
    problems = []
    for name in config["benchmark"]["datasets"]:
        if name not in config["datasets"]:
            problems.append(f"benchmark.datasets names {name!r}, which is not under datasets: ({', '.join(config['datasets'])})")
    for name in config["benchmark"]["models"]:
        if name not in config["models"]:
            problems.append(f"benchmark.models names {name!r}, which is not under models: ({', '.join(config['models'])})")

    for name, dataset in config["datasets"].items():
        if dataset["format"] not in FORMATS:
            problems.append(f"datasets.{name}.format {dataset['format']!r} is unknown; known: {', '.join(sorted(FORMATS))}")
        if "path" in dataset and not Path(dataset["path"]).is_file():
            problems.append(f"datasets.{name}.path {dataset['path']!r} does not exist or is not a file")
        if problem := split_problem(dataset["splits"]):
            problems.append(f"datasets.{name}.splits: {problem}")

    for kind in ("datasets", "models"):
        for name in sorted(RESERVED_NAMES & set(config[kind])):
            problems.append(f"{kind}.{name}: the name is reserved for the workflow's own folders ({', '.join(sorted(RESERVED_NAMES))})")

    for name, model in config["models"].items():
        try:
            check_params(model["arch"], model.get("params", {}))
        except ValueError as error:
            problems.append(f"models.{name}: {error}")
            continue
        training = model_training(config, name)
        embedding_opt = training["optimizer"]["embedding"]
        if embedding_opt["name"] in SPARSE_CAPABLE and embedding_opt.get("weight_decay"):
            problems.append(
                f"models.{name}: the sparse embedding optimizer {embedding_opt['name']!r} takes no weight_decay "
                "(it would touch every row each step); drop it or choose adam/adamw for embeddings"
            )
    if problems:
        raise ConfigError("invalid ctrbench config:\n  - " + "\n  - ".join(problems))
