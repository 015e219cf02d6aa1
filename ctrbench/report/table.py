"""The results table of a dataset: one column group per task (gold and validation quality, means over the seeds
with their spread), then the cost bill; the best value of each column marked, and the models the gold rows cannot
tell from the best; an optional column of published reference values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ctrbench.report.entries import ModelResult
from ctrbench.report.formatting import (
    finite,
    format_bytes,
    format_count,
    format_difference,
    format_duration,
    format_metric,
    format_rate,
)

MEMORY_KIND_LABELS = {"cpu_peak_rss": "CPU peak RSS", "cuda_max_allocated": "CUDA max allocated"}
COST_GROUP = ""  # the cost columns' group: no task is named "" (a task group holds its task's name)
# metrics a published reference may give: the difference is taken to that task's column
REFERENCE_METRICS = ("gold_logloss", "gold_auc", "gold_gauc", "valid_auc")
NO_REFERENCE = "—"


@dataclass(frozen=True)
class Column:
    key: str  # "<task>:<metric>" for a task's column, the cost's name otherwise
    label: str
    better: str  # "min" or "max"
    value: Callable[[ModelResult], float | None]
    format: Callable[[float | None], str]
    group: str = COST_GROUP  # the task a quality column belongs to
    detail: Callable[[ModelResult], str] = lambda entry: ""  # small second line in the cell
    detail_label: str = ""  # what that second line holds, shown under the header
    # Values are only ranked against values of the same kind (CPU RSS is not CUDA allocation).
    kind: Callable[[ModelResult], Any] = lambda entry: None
    ranked: bool = True  # False: shown only, never marked best (e.g. published reference values)
    title: str = ""  # header tooltip; default: which direction is better
    per_seed: Callable[[ModelResult], list] | None = None  # each seed's value, when the column is their mean
    tested: str = ""  # the metric ctrbench.report.significance compares the models on ("auc", "logloss")


def task_columns(task: str) -> list[Column]:
    def gold(name: str) -> dict:
        return {"value": lambda e: e.gold_metric(task, name), "per_seed": lambda e: e.gold_values(task, name)}

    return [
        Column(f"{task}:gold_logloss", "Gold logloss", "min", format=format_metric, group=task, tested="logloss", **gold("logloss")),
        Column(f"{task}:gold_auc", "Gold AUC", "max", format=format_metric, group=task, tested="auc", **gold("auc")),
        Column(f"{task}:gold_gauc", "Gold gAUC", "max", format=format_metric, group=task, **gold("gauc")),
        Column(
            f"{task}:valid_auc", "Val AUC", "max", lambda e: e.valid_metric(task, "auc"), format_metric, task,
            detail=_best_epochs, per_seed=lambda e: e.valid_values(task, "auc"),
        ),
    ]  # fmt: skip


def _best_epochs(entry: ModelResult) -> str:
    epochs = [run.train.best_epoch for run in entry.runs]
    return f"epoch {epochs[0]}" if len(epochs) == 1 else f"epochs {', '.join(map(str, epochs))}"


MEAN_GROUP = "mean over tasks"  # a multi-task section's summary columns (no task is named so: tasks are label columns)


def mean_columns() -> list[Column]:
    """A multi-task section's means over its tasks of the gold metrics (tasks whose metric is undefined on the gold
    split, e.g. one class, are left out of every model's mean alike: all models share the gold file)."""

    def mean(name: str) -> Callable[[ModelResult], float | None]:
        return lambda e: e.mean_gold(name)

    return [
        Column("mean:gold_logloss", "Gold logloss", "min", mean("logloss"), format_metric, MEAN_GROUP),
        Column("mean:gold_auc", "Gold AUC", "max", mean("auc"), format_metric, MEAN_GROUP),
        Column("mean:gold_gauc", "Gold gAUC", "max", mean("gauc"), format_metric, MEAN_GROUP),
    ]


def _params_detail(entry: ModelResult) -> str:
    groups = entry.cost.parameter_groups
    parts = [f"{format_count(g.params)} {name}" for name, g in groups.items() if g.params]
    return " + ".join(parts)


def _optimizer_detail(entry: ModelResult) -> str:
    groups = entry.cost.parameter_groups
    return " / ".join(f"{g.optimizer}" for g in groups.values() if g.optimizer and g.params)


def _run_detail(entry: ModelResult) -> str:
    cost = entry.cost
    processes = f" × {cost.processes}" if cost.processes > 1 else ""
    return f"{cost.device}{processes} · {cost.precision}"


COST_COLUMNS: tuple[Column, ...] = (
    Column("params", "Parameters", "min", lambda e: float(e.cost.params()), format_count, detail=_params_detail, detail_label="per group"),
    # apart from all parameters: a frozen backbone (an LM, a phase's embeddings) or LoRA trains a fraction of them
    Column("trained_params", "Trained parameters", "min", lambda e: float(e.cost.params(trainable=True)), format_count),
    Column(
        "optimizer_state", "Optimizer state", "min", lambda e: float(e.cost.optimizer_state_bytes), format_bytes,
        detail=_optimizer_detail, detail_label="optimizer per group",
    ),
    Column(
        "peak_memory", "Peak memory", "min", lambda e: float(e.cost.peak_memory_bytes), format_bytes,
        detail=lambda e: MEMORY_KIND_LABELS[e.cost.peak_memory_kind], kind=lambda e: e.cost.peak_memory_kind,
    ),
    Column(
        "flops", "FLOPs/sample", "min", lambda e: e.cost.forward_flops_per_sample, format_count,
        detail=lambda e: "one forward pass, as torch.utils.flop_counter counts it",
    ),
    Column(
        "samples_per_s", "Samples/s", "max", lambda e: finite(e.cost.train_samples_per_s), format_rate,
        detail=_run_detail, detail_label="device · precision",
    ),
    Column(
        "train_time", "Train time", "min", lambda e: finite(e.cost.train_seconds), format_duration,
        detail=lambda e: f"{format_duration(e.cost.seconds_per_epoch)}/epoch",
    ),
)  # fmt: skip


def section_columns(tasks: Sequence[str], references: Sequence[dict] = ()) -> list[Column]:
    """Every task's quality columns, in task order, their means over the tasks when there are several, then the
    cost columns; each reference column right after the column it is compared to."""
    means = mean_columns() if len(tasks) > 1 else []
    columns = [column for task in tasks for column in task_columns(task)] + means + list(COST_COLUMNS)
    keys = [f"{reference.get('task') or tasks[0]}:{reference['metric']}" for reference in references]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two references of one task and metric: {keys}")
    for reference, key in zip(references, keys):
        index = next((i for i, column in enumerate(columns) if column.key == key), None)
        if index is None:
            raise ValueError(
                f"a reference names task {reference.get('task')!r}, which the results do not have ({list(tasks)})"
            )
        columns.insert(index + 1, reference_column(reference, columns[index]))
    return columns


def column_groups(columns: Sequence[Column]) -> list[tuple[str, int]]:
    """(group, number of adjacent columns) for the table's first header row."""
    groups: list[tuple[str, int]] = []
    for column in columns:
        if groups and groups[-1][0] == column.group:
            groups[-1] = (column.group, groups[-1][1] + 1)
        else:
            groups.append((column.group, 1))
    return groups


def rank_entries(entries: Sequence[ModelResult]) -> list[ModelResult]:
    """Best first: highest mean gold AUC over the tasks, then lowest mean gold logloss; no AUC goes last."""

    def key(entry: ModelResult):
        auc, logloss = entry.mean_gold("auc"), entry.mean_gold("logloss")
        return (auc is None, -(auc or 0.0), logloss is None, logloss or 0.0, entry.model)

    return sorted(entries, key=key)


def best_models(entries: Sequence[ModelResult], column: Column) -> tuple[set[str], str]:
    """Models holding the column's best value (ties share it), and a note when nothing is marked.

    With fewer than two values there is nothing to compare, so nothing is marked; nor in a column
    that is not ranked.
    """
    if not column.ranked:
        return set(), ""
    scored = [(entry.model, column.value(entry), column.kind(entry)) for entry in entries]
    scored = [item for item in scored if item[1] is not None]
    if len(scored) < 2:
        return set(), ""
    kinds = sorted({str(kind) for _, _, kind in scored})
    if len(kinds) > 1:
        return set(), f"{column.label}: not ranked, the results measure it differently ({', '.join(kinds)})"
    pick = min if column.better == "min" else max
    best = pick(value for _, value, _ in scored)
    return {model for model, value, _ in scored if value == best}, ""


@dataclass
class Cell:
    column: str
    value: float | None
    text: str
    detail: str = ""
    best: bool = False
    spread: str = ""  # ± the 95% confidence half-width over the seeds
    tied: bool = False  # not significantly different from the best (Holm-corrected paired test on the gold rows)
    title: str = ""  # tooltip: each seed's value, the test against the best


@dataclass
class TableRow:
    model: str
    arch: str
    color: str
    rank: int | None = None
    cells: list[Cell] = field(default_factory=list)
    missing: bool = False
    model_info: str = ""
    starts_from: str = ""  # a training phase: the run and parts it started from
    seeds: str = ""  # "3 seeds" where the model ran more than one
    flags: list[str] = field(default_factory=list)  # ctrbench.report.flags


# ---------------------------------------------------------------- reference values


def check_references(references: dict[str, dict | list[dict]] | None) -> dict[str, list[dict]]:
    """Validate ``{dataset: reference or [reference, ...]}``, each ``{"metric": ..., "source": text, "values":
    {model: number}, "task": optional}``, at most one per (task, metric) of a dataset.

    Returns a normalised copy: a list per dataset, values as floats, null values dropped (as if not given).
    """
    checked = {}
    for dataset, given in (references or {}).items():
        checked[str(dataset)] = []
        for i, reference in enumerate(given if isinstance(given, list) else [given]):
            where = f"references[{dataset!r}]" + (f"[{i}]" if isinstance(given, list) else "")
            checked[str(dataset)].append(_checked_reference(reference, where))
        # (one without a task is of the dataset's first task, which only the results name: section_columns checks that)
        compared = [(r["task"] or "", r["metric"]) for r in checked[str(dataset)]]
        if len(set(compared)) != len(compared):
            raise ValueError(f"references[{dataset!r}]: two references of one task and metric: {compared}")
    return checked


def _checked_reference(reference: dict, where: str) -> dict:
    if not isinstance(reference, dict):
        raise ValueError(f"{where} must be a mapping with metric, source and values")  # noqa: TRY004
    metric = reference.get("metric")
    if metric not in REFERENCE_METRICS:
        raise ValueError(f"{where}: metric must be one of {', '.join(REFERENCE_METRICS)}, got {metric!r}")
    values = reference.get("values")
    if not isinstance(values, dict):
        raise ValueError(f"{where}: values must be a mapping of model name to number")  # noqa: TRY004
    numbers = {}
    for model, value in values.items():
        if value is None:
            continue
        if finite(value) is None:
            raise ValueError(f"{where}: value of {model!r} must be a finite number, got {value!r}")
        numbers[str(model)] = float(value)
    source = reference.get("source")
    runs = reference.get("runs")
    if runs is not None and (isinstance(runs, bool) or not isinstance(runs, int) or runs < 1):
        raise ValueError(f"{where}: runs must be a positive integer (how many runs each value is the mean of), got {runs!r}")
    return {
        "metric": metric,
        "task": reference.get("task"),
        "source": "" if source is None else str(source),
        "values": numbers,
        "runs": runs,
    }


def reference_column(reference: dict, compared: Column) -> Column:
    """The "Reference" column of one section: the published value, and ours minus it underneath."""
    values = reference["values"]

    def difference(entry: ModelResult) -> str:
        ours, theirs = compared.value(entry), values.get(entry.model)
        return "" if ours is None or theirs is None else format_difference(ours - theirs)

    return Column(
        f"reference:{compared.key}",
        "Reference",
        compared.better,
        lambda entry: values.get(entry.model),
        lambda value: NO_REFERENCE if value is None else format_metric(value),
        group=compared.group,
        detail=difference,
        detail_label=f"{compared.label}; ours − ref.",
        ranked=False,
        title=f"published {compared.label}, not a result of this run (never marked best)",
    )


def reference_notes(reference: dict, compared_label: str, result_models: Sequence[str]) -> list[str]:
    source = reference["source"] or "source not given"
    runs = reference.get("runs")
    runs_text = "" if runs is None else " (a single run)" if runs == 1 else f" (each the mean of {runs} runs)"
    notes = [
        (
            f"Reference ({compared_label}): {source}{runs_text}. Not a result of this run, so never marked best; "
            f"under each reference value: our {compared_label} (the mean over our seeds) minus the reference."
        )
    ]
    unmatched = [model for model in reference["values"] if model not in result_models]
    if unmatched:
        notes.append(f"Reference values without a result in this section: {', '.join(unmatched)}.")
    return notes
