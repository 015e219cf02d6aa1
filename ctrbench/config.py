"""Config checks that a JSON schema cannot express, and the per-model view of the config.

The Snakefile validates the config against ``config/schema.yaml`` first (types, required keys),
then calls ``check_config`` so that an unknown model or dataset, a bad hyper-parameter or a
missing input file is reported before any job starts.
"""

from __future__ import annotations

import copy

from ctrbench.models.registry import MODELS, check_params, model_class
from ctrbench.schema_problem import schema_problem as one_line_problem

# The dataset formats (every format's reader) and the training modules (torch) are imported by the checks that use
# them, not here: the report job reads the per-model view of the config (dataset_models) and needs neither.

# folder names the workflow itself uses under results/ and results/<dataset>/
RESERVED_NAMES = {"data", "raw", "logs", "benchmarks"}


class ConfigError(ValueError):
    pass


def schema_problem(error) -> str:
    """A jsonschema ValidationError of the config as one short line (``schema_problem.schema_problem``). A key that
    a dataset entry does not take is named with the keys its format does take (the entry's own and those of the
    format's options.yaml): jsonschema would only say "Unevaluated properties are not allowed"."""
    from ctrbench.data.formats import FORMATS

    dataset_format = FORMATS.get(error.instance.get("format")) if isinstance(error.instance, dict) else None
    if error.validator == "unevaluatedProperties" and dataset_format is not None:
        taken = sorted({*error.schema.get("properties", {}), *dataset_format.options.names})
        unknown = sorted(set(error.instance) - set(taken))
        where = ".".join(map(str, error.absolute_path))
        verb = "is not a key" if len(unknown) == 1 else "are not keys"
        return (
            f"invalid ctrbench config:\n  - {where}: {', '.join(map(repr, unknown))} {verb} of a {dataset_format.name} "
            f"dataset; it takes {', '.join(taken)}"
        )
    return "invalid ctrbench config:\n  - " + one_line_problem(error)


def deep_merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = (
            deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def model_training(config: dict, model: str, dataset: str | None = None) -> dict:
    """The training settings of ``model`` on ``dataset``: the global ones, then the dataset's overrides
    (e.g. the optimizer a data family is tuned with), then the model's own."""
    training = config["training"]
    if dataset is not None:
        training = deep_merge(training, config["datasets"][dataset].get("training", {}))
    return deep_merge(training, config["models"][model].get("training", {}))


def dataset_models(config: dict, dataset: str) -> list[str]:
    """The models compared on ``dataset``: its own ``models`` list, else ``benchmark.models``."""
    return list(config["datasets"].get(dataset, {}).get("models", config["benchmark"]["models"]))


def benchmark_pairs(config: dict) -> list[tuple[str, str]]:
    """Every (dataset, model) result the report compares, datasets in ``benchmark.datasets`` order."""
    return [(d, m) for d in config["benchmark"]["datasets"] for m in dataset_models(config, d)]


def dataset_seeds(config: dict, dataset: str) -> list[int]:
    """The training seeds of every model on ``dataset``: its own ``seeds``, else ``benchmark.seeds``."""
    return list(config["datasets"].get(dataset, {}).get("seeds", config["benchmark"]["seeds"]))


def benchmark_runs(config: dict) -> list[tuple[str, str, int]]:
    """Every (dataset, model, seed) training run the report compares: each pair once per seed of its dataset."""
    return [(d, m, seed) for d, m in benchmark_pairs(config) for seed in dataset_seeds(config, d)]


def distributed_problems(training: dict, train_resources: dict) -> list[str]:
    """What data-parallel training cannot do with these settings (checked before any job starts)."""
    from ctrbench.train.distributed import sparse_problem
    from ctrbench.train.optim import embeddings_are_sparse

    distributed = training.get("distributed") or {}
    processes = distributed.get("processes", 1)
    if processes == 1:
        return []
    problems = []
    if training["batch_size"] % processes:
        problems.append(
            f"batch_size {training['batch_size']} does not split evenly over distributed.processes={processes}"
        )
    backend = distributed.get("backend", "auto")
    on_gpu = training["device"].startswith("cuda") or train_resources.get("gpu", 0) > 0
    nccl = backend == "nccl" or (backend == "auto" and on_gpu)
    if nccl and (problem := sparse_problem("nccl", embeddings_are_sparse(training["optimizer"]))):
        problems.append(problem)
    gpus = train_resources.get("gpu", 0)
    if gpus and gpus != processes:
        problems.append(f"distributed.processes={processes} but resources.train.gpu={gpus}: one process per GPU")
    if training["device"] == "cpu" and backend == "nccl":
        problems.append("the nccl backend needs GPUs; use gloo (or auto) on CPU")
    if training["device"].startswith("cuda:"):
        problems.append(
            f"device {training['device']} names one GPU for {processes} processes: use device cuda (each process takes its own)"
        )
    return problems


def phase_problems(config: dict) -> list[str]:
    """What is wrong with the models' ``init_from`` (training phases): the model they start from must exist and be
    trained on every dataset they run on, and phases stay on one dataset (one feature map)."""
    problems = []
    pairs = set(benchmark_pairs(config))
    for name, model in config["models"].items():
        if not (init := model.get("init_from")):
            continue
        source = init["model"]
        if source not in config["models"] or source == name:
            problems.append(f"models.{name}.init_from.model {source!r} is not another model under models:")
            continue
        chain, step = [name], source
        while step in config["models"] and step not in chain:  # the phases before this one
            chain.append(step)
            step = (config["models"][step].get("init_from") or {}).get("model")
        if step == name:
            problems.append(f"models.{name}.init_from: the phases start from each other in a cycle ({' -> '.join([*chain, name])})")
            continue
        runs_on = {d for d, m in pairs if m == name}
        if (other := init.get("dataset")) is not None and (other not in config["datasets"] or runs_on <= {other}):
            why = "is not under datasets:" if other not in config["datasets"] else "is the dataset it runs on: leave it out"
            problems.append(f"models.{name}.init_from.dataset {other!r} {why}")
        elif other is not None:
            problems.append(
                f"models.{name}.init_from.dataset {other!r}: training phases across datasets need one feature map (the "
                "same fields and one vocabulary), and each dataset builds its own vocabularies from its train split, "
                "so an id of one means another value in the other (weights carried over would match by frequency "
                "rank, not by value); run the phases on one dataset"
            )
        for dataset, _ in sorted(p for p in pairs if p[1] == name):
            if (dataset, source) not in pairs:
                problems.append(
                    f"models.{name} starts from {source!r} (init_from) on dataset {dataset!r}, but {source!r} is not "
                    f"among that dataset's models: list it there too"
                )
    return problems


def check_config(config: dict) -> None:
    from ctrbench.data.formats import FORMATS
    from ctrbench.data.formats.base import OptionsError
    from ctrbench.train.optim import SPARSE_CAPABLE

    problems = []
    if "seed" in config:
        problems.append(f"seed: {config['seed']!r} is now benchmark.seeds, a list of training seeds (e.g. [{config['seed']}])")
    for model in config["models"].values():  # registers the models (MODELS) before the checks below
        try:
            model_class(model["arch"])
        except ValueError:
            pass  # reported with the model's name below
    for name in config["benchmark"]["datasets"]:
        if name not in config["datasets"]:
            problems.append(
                f"benchmark.datasets names {name!r}, which is not under datasets: ({', '.join(config['datasets'])})"
            )
    for name in config["benchmark"]["models"]:
        if name not in config["models"]:
            problems.append(
                f"benchmark.models names {name!r}, which is not under models: ({', '.join(config['models'])})"
            )

    for name, dataset in config["datasets"].items():
        for model in dataset.get("models", []):
            if model not in config["models"]:
                problems.append(
                    f"datasets.{name}.models names {model!r}, which is not under models: ({', '.join(config['models'])})"
                )
        dataset_format = FORMATS.get(dataset["format"])
        if dataset_format is None:
            problems.append(
                f"datasets.{name}.format {dataset['format']!r} is unknown; known: {', '.join(sorted(FORMATS))}"
            )
            continue
        if "path" in dataset and (problem := dataset_format.path_problem(dataset["path"])):
            problems.append(f"datasets.{name}.path: {problem}")
        if "synthetic" in dataset:
            try:
                dataset_format.synthetic_writer(dataset["synthetic"].get("profile", "default"))
            except ValueError as error:
                problems.append(f"datasets.{name}.synthetic: {error}; give a path for real data")
        groups: tuple[str, ...] = ()
        try:
            options = dataset_format.options.resolve(dataset_format.options.of_entry(dataset))
            problems += [f"datasets.{name}.{problem}" for problem in dataset_format.option_problems(options)]
            groups = dataset_format.history_groups(options)
        except OptionsError as error:
            problems.append(f"datasets.{name}: {error}")
        if name in config["benchmark"]["datasets"]:
            for model in dataset_models(config, name):
                arch = config["models"].get(model, {}).get("arch")
                if arch not in MODELS or not MODELS[arch].needs_sequences:
                    continue
                if not dataset_format.has_sequences:
                    problems.append(
                        f"models.{model} ({arch}) reads behaviour sequences, but dataset {name!r} "
                        f"(format {dataset['format']}) has none; list it under another dataset's models"
                    )
                    continue
                params = config["models"][model].get("params", {})
                if MODELS[arch].reads_several_histories:  # every group, or those it names: its own check
                    try:
                        check_params(arch, params, groups or None)  # () where the format names no group: at build time
                    except ValueError as error:
                        problems.append(f"models.{model} on dataset {name!r}: {error}")
                    continue
                chosen = params.get("history_group")
                # () where the format names no groups stored by reference (TaobaoAd's fixed one): checked at build time
                if chosen is not None and groups and chosen not in groups:
                    problems.append(
                        f"models.{model} ({arch}): history_group {chosen!r} is not a history of dataset {name!r} "
                        f"({', '.join(groups)})"
                    )
                elif chosen is None and len(groups) > 1:  # the behaviour-sequence models read one group of aligned events
                    problems.append(
                        f"models.{model} ({arch}) reads one behaviour history, but dataset {name!r} has "
                        f"{len(groups)} ({', '.join(groups)}); choose one with the model's history_group (if it "
                        "takes one), list it under another dataset, or set history.behaviors to one behaviour"
                    )

    for kind in ("datasets", "models"):
        for name in sorted(RESERVED_NAMES & set(config[kind])):
            problems.append(
                f"{kind}.{name}: the name is reserved for the workflow's own folders ({', '.join(sorted(RESERVED_NAMES))})"
            )

    problems += phase_problems(config)
    for name, model in config["models"].items():
        try:
            check_params(model["arch"], model.get("params", {}))
        except ValueError as error:
            problems.append(f"models.{name}: {error}")
            continue
        # the settings it trains with on each dataset it runs on (dataset overrides included)
        datasets = [d for d, m in benchmark_pairs(config) if m == name and d in config["datasets"]] or [None]
        for dataset_name in datasets:
            training = model_training(config, name, dataset_name)
            where = f"models.{name}" + (f" on dataset {dataset_name!r}" if dataset_name else "")
            embedding_opt = training["optimizer"]["embedding"]
            if embedding_opt["name"] in SPARSE_CAPABLE and embedding_opt.get("weight_decay"):
                problems.append(
                    f"{where}: the sparse embedding optimizer {embedding_opt['name']!r} takes no "
                    "weight_decay (it would touch every row each step); drop it or choose adam/adamw for embeddings"
                )
            problems += [
                f"{where}: {problem}"
                for problem in distributed_problems(training, config.get("resources", {}).get("train", {}))
            ]
            if dataset_name is not None and (lengths := training.get("history_max_len")):
                entry = config["datasets"][dataset_name]
                data_format = FORMATS.get(entry["format"])
                try:
                    groups = data_format.history_groups(data_format.options.resolve(data_format.options.of_entry(entry)))
                except (AttributeError, OptionsError):  # an unknown format or bad options: reported above
                    groups = ()
                if unknown := sorted(set(lengths) - set(groups)):
                    problems.append(
                        f"{where}: training.history_max_len names {unknown}, but this dataset's histories stored by "
                        f"reference are {list(groups) or 'none'} (a history length can be chosen only for those)"
                    )
    if problems:
        raise ConfigError("invalid ctrbench config:\n  - " + "\n  - ".join(problems))
