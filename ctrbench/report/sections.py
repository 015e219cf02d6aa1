"""One report section per dataset: its table, notes, the models' extra outputs and charts, and its data line."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup

from ctrbench.data.manifest import DataManifest, SplitTimes
from ctrbench.report import charts
from ctrbench.report.entries import ResultEntry, model_info_text, starts_from_text
from ctrbench.report.formatting import format_bytes, format_count, format_metric
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
from ctrbench.results import MEAN_AUC, ExtraOutput


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


def _tick_bytes(value: float) -> str:
    """Axis ticks are round numbers: '2 GiB' rather than '2.00 GiB'."""
    number, _, unit = format_bytes(value).partition(" ")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return "0" if value == 0 else f"{number} {unit}"


def _auc_name(tasks: Sequence[str]) -> str:
    return "Gold AUC" if len(tasks) == 1 else "Mean gold AUC over tasks"


def _scatter(
    entries: Sequence[ResultEntry], colors: dict[str, str], tasks: Sequence[str], task: str | None = None
) -> Markup:
    """Gold AUC against peak memory, one point per model: of ``task``, or the mean over the tasks."""
    name = f"Gold AUC of {task}" if task is not None else _auc_name(tasks)
    points = []
    for entry in entries:
        memory = float(entry.cost.peak_memory_bytes)
        auc = entry.gold_metric(task, "auc") if task is not None else entry.mean_gold("auc")
        if auc is not None:
            tooltip = (
                f"{entry.model}: {name[0].lower()}{name[1:]} {format_metric(auc)}, peak memory {format_bytes(memory)}"
            )
            points.append(charts.Point(entry.model, memory, auc, colors[entry.model], tooltip))
    svg = charts.scatter_svg(
        points, title=f"{name} vs peak memory", x_label="Peak memory", y_label=name, x_format=_tick_bytes, x_bytes=True
    )
    return Markup(svg)


def _curves(entries: Sequence[ResultEntry], colors: dict[str, str]) -> Markup:
    series = []
    for entry in entries:
        points = [(float(e.epoch), e.monitored) for e in entry.train.epochs if e.monitored is not None]
        series.append(charts.Series(entry.model, colors[entry.model], points, float(entry.train.best_epoch)))
    monitors = {entry.train.monitor for entry in entries}
    what = "validation AUC (mean over tasks)" if monitors == {MEAN_AUC} else "validation value early stopping compares"
    svg = charts.line_chart_svg(
        series, title=f"{what[0].upper()}{what[1:]} per epoch", x_label="Epoch", y_label="Validation AUC",
        highlight_label="best epoch",
    )  # fmt: skip
    return Markup(svg)


def history_length(entry: ResultEntry) -> int | None:
    """The longest history a model read (events, over its dataset's sequence groups), or None without any."""
    lengths = entry.train.history_lengths
    return max(lengths.values()) if lengths else None


def _length_charts(entries: Sequence[ResultEntry], colors: dict[str, str], tasks: Sequence[str]) -> list[Markup]:
    """Where a dataset's models read histories of several lengths: gold AUC, forward FLOPs per sample and training
    samples/s against the length (log scale), one line per configuration (architecture and params) through the
    lengths its models read, named after the architecture (or after its longest model where an architecture runs
    in several configurations, e.g. LONGER with and without token merge)."""
    measured = [(history_length(e), e) for e in entries if history_length(e) is not None]
    if len({length for length, _ in measured}) < 2:
        return []
    lines: dict[tuple[str, str], list[tuple[int, ResultEntry]]] = {}
    for length, entry in sorted(measured, key=lambda pair: pair[0]):
        lines.setdefault((entry.arch, json.dumps(entry.train.params, sort_keys=True)), []).append((length, entry))
    configurations = Counter(arch for arch, _ in lines)
    names = {key: key[0] if configurations[key[0]] == 1 else pairs[-1][1].model for key, pairs in lines.items()}
    figures = [
        (_auc_name(tasks), lambda e: e.mean_gold("auc")),
        ("Forward FLOPs per sample", lambda e: e.cost.forward_flops_per_sample),
        ("Training samples/s", lambda e: e.cost.train_samples_per_s),
    ]
    charts_out = []
    for name, value in figures:
        series = [
            charts.Series(
                names[key],
                colors[pairs[-1][1].model],
                [(math.log2(length), float(v)) for length, e in pairs if (v := value(e)) is not None],
            )
            for key, pairs in lines.items()
        ]
        svg = charts.line_chart_svg(
            series, title=f"{name} vs history length", x_label="Events per history (log scale)", y_label=name,
            x_format=lambda x: f"{2**x:,.0f}",
        )  # fmt: skip
        charts_out.append(Markup(svg))
    return charts_out


def dataset_sections(
    entries: Sequence[ResultEntry],
    missing: Sequence[tuple[str, str]],
    colors: dict[str, str],
    references: dict[str, dict] | None = None,
) -> list[DatasetSection]:
    """One section per dataset, in the order datasets first appear (results, then missing ones).

    ``references`` (checked by ``check_references``: a list per dataset) adds reference columns to its datasets'
    sections.
    """
    order = list(dict.fromkeys([e.dataset for e in entries] + [d for d, _ in missing]))
    anchors: set[str] = set()
    sections = []
    for dataset in order:
        ranked = rank_entries([e for e in entries if e.dataset == dataset])
        tasks = ranked[0].tasks if ranked else []
        missing_models = list(dict.fromkeys(m for d, m in missing if d == dataset))
        dataset_references = (references or {}).get(dataset, [])
        columns = section_columns(tasks, dataset_references) if ranked else []
        notes = []
        best_by_column = {}
        for column in columns:
            best_by_column[column.key], note = best_models(ranked, column)
            if note:
                notes.append(note)
        for reference in dataset_references if ranked else []:
            compared = next(c for c in columns if c.key == f"{reference['task'] or tasks[0]}:{reference['metric']}")
            label = compared.label if len(tasks) == 1 else f"{compared.label} of {compared.group}"
            notes += reference_notes(reference, label, [entry.model for entry in ranked])
        rows, extra = [], []
        for rank, entry in enumerate(ranked, start=1):
            cells = []
            for column in columns:
                value = column.value(entry)
                best = entry.model in best_by_column[column.key]
                cells.append(Cell(column.key, value, column.format(value), column.detail(entry), best))
            rows.append(
                TableRow(
                    entry.model,
                    entry.arch,
                    colors[entry.model],
                    rank,
                    cells,
                    model_info=model_info_text(entry.model_info),
                    starts_from=starts_from_text(entry.train.initialised_from),
                )
            )
            extra += [
                _extra_output_view(entry.model, output, colors[entry.model]) for output in entry.gold.extra_outputs
            ]
        rows += [TableRow(model, "", colors[model], missing=True) for model in missing_models]
        first = ranked[0] if ranked else None
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
                scatter_svg=_scatter(ranked, colors, tasks) if ranked else None,
                curves_svg=_curves(ranked, colors) if ranked else None,
                task_charts=[_scatter(ranked, colors, tasks, task) for task in tasks]
                if ranked and len(tasks) > 1
                else [],
                length_charts=_length_charts(ranked, colors, tasks),
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
