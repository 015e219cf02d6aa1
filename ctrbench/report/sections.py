"""One report section per dataset: its table, notes, the models' extra outputs and charts, and its data line."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from ctrbench.data.manifest import DataManifest, SplitTimes
from ctrbench.report import charts
from ctrbench.report.entries import ModelResult, ResultEntry, group_runs, model_info_text, starts_from_text
from ctrbench.report.flags import model_flags, small_gold_flag, train_label_rates
from ctrbench.report.formatting import format_count
from ctrbench.report.section_charts import length_charts, quality_cost_chart, validation_curves
from ctrbench.report.significance import TaskSignificance, dataset_significance
from ctrbench.report.table import (
    Cell,
    Column,
    TableRow,
    best_models,
    column_groups,
    rank_entries,
    reference_notes,
    section_columns,
)
from ctrbench.results import ExtraOutput
from ctrbench.statistics import mean_ci


@dataclass
class ExtraOutputView:
    """One model's extra output on the gold set (e.g. MDAF's gate), drawn as its histogram with its reading."""

    model: str
    key: str
    svg: Markup
    caption: str
    count: int


@dataclass
class DatasetSection:
    name: str
    anchor: str
    gold_sha256: str | None
    gold_rows: Any
    tasks: list[str]
    rows: list[TableRow]
    missing: list[str]
    notes: list[str]
    flags: list[str]  # dataset-level sanity flags (ctrbench.report.flags)
    scatter_svg: Markup | None
    curves_svg: Markup | None
    task_charts: list[Markup] = field(default_factory=list)  # one per task of a multi-task dataset
    length_charts: list[Markup] = field(default_factory=list)  # quality and cost against history length
    columns: Sequence[Column] = ()
    groups: list[tuple[str, int]] = field(default_factory=list)
    data_summary: str | None = None
    extra_outputs: list[ExtraOutputView] = field(default_factory=list)


def _extra_output_view(model: str, output: ExtraOutput, color: str) -> ExtraOutputView:
    """The histogram of an extra output (its record checked the histogram's shape when it was read)."""
    summary, histogram = output.summary, output.summary.histogram
    edges, counts = histogram.edges, histogram.counts
    caption = f"mean {summary.mean:.2f} (median {summary.quantiles.p50:.2f}); {output.reading}"
    label = f"{output.title} of {model} on the gold set: {summary.count} values in {len(counts)} bins, mean {summary.mean:.3f}"
    svg = charts.histogram_svg(
        edges, counts, title=f"{model}: {output.title}", label=label, color=color, x_label=output.axis_label,
        marker=summary.mean, below=histogram.below, above=histogram.above,
    )  # fmt: skip
    return ExtraOutputView(model, output.key, Markup(svg), caption, summary.count)


def anchor(name: str, taken: set[str]) -> str:
    base = "dataset-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x")
    result, suffix = base, 2
    while result in taken:
        result, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(result)
    return result


def _cell(column: Column, result: ModelResult, best: bool, significance: dict[tuple[str, str], TaskSignificance]) -> Cell:
    """One table cell: the mean over the seeds, its spread (± the 95% t interval) and each seed's value in the
    tooltip, and for a tested metric whether the gold rows tell it from the best."""
    value = column.value(result)
    cell = Cell(column.key, value, column.format(value), column.detail(result), best)
    values = column.per_seed(result) if column.per_seed else []
    if len(values) > 1 and None not in values:
        cell.spread = f"± {mean_ci(values)[1]:.4f}"
        cell.title = "seeds: " + ", ".join(f"{seed} {column.format(v)}" for seed, v in zip(result.seeds, values))
    tested = significance.get((column.group, column.tested)) if column.tested else None
    if tested is not None and result.model in tested.versus:
        versus = tested.versus[result.model]
        cell.tied = tested.tied(result.model) and not best
        test = f"vs {tested.best}: {versus.difference:+.4f}, p {versus.p_value:.3g} (Holm {versus.p_holm:.3g})"
        cell.title = f"{cell.title}; {test}" if cell.title else test
    return cell


def _missing_seeds(dataset: str, results: Sequence[ModelResult], missing: Sequence[tuple]) -> list[str]:
    """Notes on models of which some seeds have results and others are missing (a partial report)."""
    found = {r.model for r in results}
    seeds: dict[str, list[str]] = {}
    for item in missing:
        if item[0] == dataset and len(item) > 2 and item[1] in found:
            seeds.setdefault(item[1], []).append(str(item[2]))
    return [f"{model}: seed {', '.join(s)} missing, the mean is over the seeds that finished" for model, s in seeds.items()]


def _quality_chart(
    ranked: Sequence[ModelResult],
    colors: dict[str, str],
    cost: str,
    significance: dict[tuple[str, str], TaskSignificance],
    task: str | None = None,
) -> Markup:
    """Gold AUC against the cost: of ``task``, or of the only task, or the mean over the tasks (drawn without
    intervals or ties: no test compares means over tasks)."""
    tasks = ranked[0].tasks
    tested_task = task or (tasks[0] if len(tasks) == 1 else None)
    tested = significance.get((tested_task, "auc"))
    spreads = {}
    for result in ranked if tested_task else ():
        values = result.gold_values(tested_task, "auc")
        if len(values) > 1 and None not in values:
            spreads[result.model] = mean_ci(values)[1]
    tied = {r.model for r in ranked if tested and tested.tied(r.model)}
    return quality_cost_chart(ranked, colors, tasks, cost, task, spreads, tied)


SIGNIFICANCE_NOTE = (
    "≈: not significantly different from the best of its column (gold AUC: DeLong's paired test; gold logloss: a "
    "paired t-test over the rows; both with the spread over seeds added and Holm's correction over the models, at "
    "5%). Values are means over the seeds, ± the 95% t interval where a model ran several; hover a value for each "
    "seed's and its test."
)


def dataset_sections(
    entries: Sequence[ResultEntry],
    missing: Sequence[tuple],
    colors: dict[str, str],
    references: dict[str, dict] | None = None,
    manifests: dict[str, DataManifest] | None = None,
    cost: str = "peak_memory",
) -> list[DatasetSection]:
    """One section per dataset, in the order datasets first appear (results, then missing ones); each model's runs
    (seeds) are one row.

    ``missing`` holds (dataset, model) or (dataset, model, seed) items without results. ``references`` (checked by
    ``check_references``: a list per dataset) adds reference columns; ``manifests`` give the training label rates
    the constant-model flag compares with; ``cost`` is the x axis of the quality charts (``COST_AXES``).
    """
    order = list(dict.fromkeys([e.dataset for e in entries] + [item[0] for item in missing]))
    anchors: set[str] = set()
    sections = []
    for dataset in order:
        ranked = rank_entries(group_runs([e for e in entries if e.dataset == dataset]))
        found_models = {r.model for r in ranked}
        tasks = ranked[0].tasks if ranked else []
        missing_models = list(dict.fromkeys(item[1] for item in missing if item[0] == dataset and item[1] not in found_models))
        dataset_references = (references or {}).get(dataset, [])
        columns = section_columns(tasks, dataset_references) if ranked else []
        significance = dataset_significance(ranked)
        notes = [SIGNIFICANCE_NOTE] if significance else []
        notes += _missing_seeds(dataset, ranked, missing)
        best_by_column = {}
        for column in columns:
            best_by_column[column.key], note = best_models(ranked, column)
            if note:
                notes.append(note)
        for reference in dataset_references if ranked else []:
            compared = next(c for c in columns if c.key == f"{reference['task'] or tasks[0]}:{reference['metric']}")
            label = compared.label if len(tasks) == 1 else f"{compared.label} of {compared.group}"
            notes += reference_notes(reference, label, [result.model for result in ranked])
        train_rates = train_label_rates((manifests or {}).get(dataset), tasks)
        rows, extra = [], []
        for rank, result in enumerate(ranked, start=1):
            cells = [_cell(c, result, result.model in best_by_column[c.key], significance) for c in columns]
            rows.append(
                TableRow(
                    result.model,
                    result.arch,
                    colors[result.model],
                    rank,
                    cells,
                    model_info=model_info_text(result.model_info),
                    starts_from=starts_from_text(result.train.initialised_from),
                    seeds=f"{len(result.runs)} seeds" if len(result.runs) > 1 else "",
                    flags=model_flags(result, train_rates),
                )
            )
            extra += [
                _extra_output_view(result.model, output, colors[result.model]) for output in result.gold.extra_outputs
            ]
        rows += [TableRow(model, "", colors[model], missing=True) for model in missing_models]
        first = ranked[0] if ranked else None
        flags = [
            flag
            for task in tasks
            if (tested := significance.get((task, "auc")))
            and (flag := small_gold_flag(tested, first.gold.tasks[task].rows))
        ]

        sections.append(
            DatasetSection(
                name=dataset,
                anchor=anchor(dataset, anchors),
                gold_sha256=first.gold_sha256 if first else None,
                gold_rows=first.gold.rows if first else None,
                tasks=tasks,
                rows=rows,
                missing=missing_models,
                notes=notes,
                flags=flags,
                scatter_svg=_quality_chart(ranked, colors, cost, significance) if ranked else None,
                curves_svg=validation_curves(ranked, colors) if ranked else None,
                task_charts=[_quality_chart(ranked, colors, cost, significance, task) for task in tasks] if len(tasks) > 1 else [],
                length_charts=length_charts(ranked, colors, tasks),
                columns=columns,
                groups=column_groups(columns),
                extra_outputs=extra,
            )
        )
    return sections


def _split_days(times: SplitTimes) -> dict[str, str]:
    """Each split's local dates, e.g. ``{"train": "2017-11-25 – 2017-12-01", "valid": "2017-12-02", ...}``."""
    moment = dt.datetime.fromisoformat
    bounds = {
        "train": (moment(times.first_event), moment(times.valid_start) - dt.timedelta(seconds=1)),
        "valid": (moment(times.valid_start), moment(times.gold_start) - dt.timedelta(seconds=1)),
        "gold": (moment(times.gold_start), moment(times.last_event)),
    }
    spans = {}
    for name, (lo, hi) in bounds.items():
        spans[name] = "none" if hi < lo else str(lo.date()) if lo.date() == hi.date() else f"{lo.date()} – {hi.date()}"
    return spans


def _rate_range(rates: list[float]) -> str:
    return f"{min(rates):.3f}–{max(rates):.3f}" if len(set(rates)) > 1 else f"{rates[0]:.3f}"


def _label_rates(manifest: DataManifest) -> str:
    """The label rate over the splits: one range, or one per task of a multi-task dataset (named)."""
    splits = [split for split in manifest.splits.values() if split.rows]
    if not splits:
        return ""
    if splits[0].task_positives:
        rates = {task: [split.task_positives[task] / split.rows for split in splits] for task in splits[0].task_positives}
        return "; label rates " + ", ".join(f"{task} {_rate_range(values)}" for task, values in rates.items())
    return f"; label rate {_rate_range([split.positives / split.rows for split in splits])}"


def data_summary(manifest: DataManifest) -> str:
    """One line about a dataset's processed splits, from its preprocessing manifest: rows and label rate per
    split (per task on a multi-task dataset), each split's time range where the data is split by time, the bad rows
    skipped by kind and every other kind of row left out."""
    parts = [f"{name} {format_count(split.rows)}" for name, split in manifest.splits.items()]
    text = " · ".join(parts) + " rows"
    text += _label_rates(manifest)
    if manifest.split_times is not None:
        text += "; by time: " + ", ".join(f"{name} {span}" for name, span in _split_days(manifest.split_times).items())
    # bad rows of every input file (a feature file's too, which drops no sample), then the rows left out otherwise
    bad = ", ".join(f"{kind.replace('_', ' ')} {count}" for kind, count in manifest.bad_rows.items() if count)
    dropped = ", ".join(f"{kind.replace('_', ' ')} {count}" for kind, count in manifest.dropped.items() if count)
    return text + f"; bad rows skipped: {bad or 'none'}" + (f"; rows left out: {dropped}" if dropped else "")
