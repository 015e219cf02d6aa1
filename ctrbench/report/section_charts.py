"""The charts of a dataset's section: gold AUC (mean over seeds, its interval) against a cost with the Pareto front,
validation curves, quality and cost against history length."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from ctrbench.report import charts
from ctrbench.report.entries import ModelResult
from ctrbench.report.formatting import format_bytes, format_count, format_metric, format_rate
from ctrbench.results import MEAN_AUC


def _tick_bytes(value: float) -> str:
    """Axis ticks are round numbers: '2 GiB' rather than '2.00 GiB'."""
    number, _, unit = format_bytes(value).partition(" ")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return "0" if value == 0 else f"{number} {unit}"


def _auc_name(tasks: Sequence[str]) -> str:
    return "Gold AUC" if len(tasks) == 1 else "Mean gold AUC over tasks"


@dataclass(frozen=True)
class CostAxis:
    """A cost the quality charts put on x: its label, its value per model, which way is cheaper, its tick format."""

    label: str
    value: Callable[[ModelResult], float | None]
    better: str  # "min" or "max" (samples/s: more is cheaper)
    tick: Callable[[float], str]
    in_bytes: bool = False


COST_AXES = {
    "peak_memory": CostAxis("Peak memory", lambda r: float(r.cost.peak_memory_bytes), "min", _tick_bytes, in_bytes=True),
    "params": CostAxis("Parameters", lambda r: float(r.cost.params()), "min", format_count),
    "flops": CostAxis("Forward FLOPs per sample", lambda r: r.cost.forward_flops_per_sample, "min", format_count),
    "samples_per_s": CostAxis("Training samples/s", lambda r: r.cost.train_samples_per_s, "max", format_rate),
}


def pareto_front(points: dict[str, tuple[float, float]], cheaper: str) -> set[str]:
    """The models no other model beats on both cost (x; ``cheaper`` "min" or "max") and quality (y, higher better)."""
    sign = 1 if cheaper == "min" else -1

    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return sign * a[0] <= sign * b[0] and a[1] >= b[1] and (sign * a[0] < sign * b[0] or a[1] > b[1])

    return {name for name, point in points.items() if not any(dominates(other, point) for other in points.values())}


def quality_cost_chart(
    results: Sequence[ModelResult],
    colors: dict[str, str],
    tasks: Sequence[str],
    cost: str,
    task: str | None = None,
    spreads: dict[str, float] | None = None,
    tied: set[str] = frozenset(),
) -> Markup:
    """Gold AUC (mean over seeds) against a cost, one point per model: of ``task``, or the mean over the tasks. Each
    point's bar is its ``spreads`` half-width; the Pareto front is dashed; among the models ``tied`` with the best
    (not significantly worse), the cheapest is ringed."""
    axis = COST_AXES[cost]
    name = f"Gold AUC of {task}" if task is not None else _auc_name(tasks)
    found = {}
    for result in results:
        auc = result.gold_metric(task, "auc") if task is not None else result.mean_gold("auc")
        x = axis.value(result)
        if auc is not None and x is not None and math.isfinite(x):
            found[result.model] = (float(x), auc)
    front = pareto_front(found, axis.better)
    candidates = [m for m in found if m in tied]
    pick = min if axis.better == "min" else max
    cheapest = pick(candidates, key=lambda m: found[m][0]) if candidates else None
    points = []
    for model, (x, auc) in found.items():
        error = (spreads or {}).get(model)
        tooltip = f"{model}: {name[0].lower()}{name[1:]} {format_metric(auc)}" + (f" ± {error:.4f}" if error else "")
        bar = (max(0.0, auc - error), min(1.0, auc + error)) if error else None  # an AUC interval stays in [0, 1]
        tooltip += f", {axis.label[0].lower()}{axis.label[1:]} {axis.tick(x)}" + (" · cheapest not significantly worse than the best" if model == cheapest else "")
        points.append(charts.Point(model, x, auc, colors[model], tooltip, bar, model in front, model == cheapest))
    svg = charts.scatter_svg(
        points, title=f"{name} vs {axis.label[0].lower()}{axis.label[1:]}", x_label=axis.label, y_label=name, x_format=axis.tick,
        x_bytes=axis.in_bytes, y_within=(0.0, 1.0),
    )  # fmt: skip
    return Markup(svg)


def validation_curves(entries: Sequence[ModelResult], colors: dict[str, str]) -> Markup:
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


def history_length(entry: ModelResult) -> int | None:
    """The longest history a model read (events, over its dataset's sequence groups), or None without any."""
    lengths = entry.train.history_lengths
    return max(lengths.values()) if lengths else None


def length_charts(entries: Sequence[ModelResult], colors: dict[str, str], tasks: Sequence[str]) -> list[Markup]:
    """Where a dataset's models read histories of several lengths: gold AUC, forward FLOPs per sample and training
    samples/s against the length (log scale), one line per configuration (architecture and params) through the
    lengths its models read, named after the architecture (or after its longest model where an architecture runs
    in several configurations, e.g. LONGER with and without token merge)."""
    measured = [(history_length(e), e) for e in entries if history_length(e) is not None]
    if len({length for length, _ in measured}) < 2:
        return []
    lines: dict[tuple[str, str], list[tuple[int, ModelResult]]] = {}
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
