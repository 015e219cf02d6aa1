"""The HTML report: load result files, check they are comparable, rank models, render one page.

The page is a single self-contained file (CSS inlined, charts as inline SVG) so that it can be
archived or mailed next to the results without anything else.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ctrbench.atomic import atomic_write_text
from ctrbench.config import dataset_models as config_dataset_models
from ctrbench.report import charts

# The top-level report/ folder: templates/report.html.j2 and style.css (inlined into the page).
DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "report"
TEMPLATE_NAME = "report.html.j2"
STYLESHEET_NAME = "style.css"
NOT_AVAILABLE = "n/a"

MEMORY_KIND_LABELS = {"cpu_peak_rss": "CPU peak RSS", "cuda_max_allocated": "CUDA max allocated"}


class GoldHashMismatch(ValueError):
    """Results of one dataset were evaluated on different gold files, so they cannot be compared."""

    def __init__(self, dataset: str, models_by_hash: dict[str, list[str]]):
        self.dataset = dataset
        self.models_by_hash = models_by_hash
        detail = "; ".join(f"{', '.join(models)}: gold_sha256 {digest}" for digest, models in models_by_hash.items())
        super().__init__(f"dataset {dataset!r} has results evaluated on different gold files ({detail})")


@dataclass
class ResultEntry:
    """The two result files of one (dataset, model): training metrics and the gold evaluation."""

    dataset: str
    model: str
    train: dict
    gold: dict
    train_path: str | None = None
    gold_path: str | None = None

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.model}"

    @property
    def arch(self) -> str:
        return self.train.get("arch") or self.gold.get("arch") or self.model

    @property
    def cost(self) -> dict:
        return self.train.get("cost") or {}

    @property
    def gold_sha256(self) -> str | None:
        return self.gold.get("gold_sha256")

    def gold_metric(self, name: str) -> float | None:
        return _finite((self.gold.get("metrics") or {}).get(name))

    def cost_value(self, name: str) -> float | None:
        return _finite(self.cost.get(name))

    @property
    def total_params(self) -> float | None:
        embedding, dense = self.cost_value("params_embedding"), self.cost_value("params_dense")
        return None if embedding is None or dense is None else embedding + dense

    @property
    def model_info(self) -> dict:
        """Facts about how the model ran (e.g. ``mamba_backend``): train_metrics.json's ``model_info``,
        else the copy gold_eval.json took from the checkpoint."""
        return _dict(self.train.get("model_info")) or _dict(self.gold.get("model_info"))


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def info_text(value: Any) -> str:
    """One model_info value as text: strings as they are, anything else as compact JSON."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def model_info_text(info: dict) -> str:
    return ", ".join(f"{key}: {info_text(value)}" for key, value in info.items())


def _finite(value: Any) -> float | None:
    """A number to compare and format, or None for absent, null, NaN and non-numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


# ---------------------------------------------------------------- formatting


def format_metric(value: float | None, digits: int = 4) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}"


def _scaled(value: float, step: float, units: Sequence[str]) -> str:
    index = 0
    while abs(value) >= step and index < len(units) - 1:
        value /= step
        index += 1
    if index == 0:
        return f"{value:.0f} {units[0]}".rstrip()
    digits = 2 if abs(value) < 10 else 1 if abs(value) < 100 else 0
    return f"{value:.{digits}f} {units[index]}"


def format_bytes(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else _scaled(value, 1024, ("B", "KiB", "MiB", "GiB", "TiB"))


def format_count(value: float | None) -> str:
    return NOT_AVAILABLE if value is None else _scaled(value, 1000, ("", "K", "M", "B"))


def format_rate(value: float | None) -> str:
    if value is None:
        return NOT_AVAILABLE
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return NOT_AVAILABLE
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# ---------------------------------------------------------------- loading and checks


def _read_json(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):  # a malformed result file: ValueError like every other data problem
        raise ValueError(f"{path}: expected a JSON object")  # noqa: TRY004
    return data


def load_entries(pairs: Iterable[tuple[str | Path, str | Path]]) -> list[ResultEntry]:
    """Read (train_metrics.json, gold_eval.json) pairs; both files must name the same dataset and model."""
    entries = []
    for train_path, gold_path in pairs:
        train, gold = _read_json(train_path), _read_json(gold_path)
        for key in ("dataset", "model"):
            if key not in train or key not in gold:
                raise ValueError(f"{train_path} and {gold_path} must both have a {key!r} field")
            if train[key] != gold[key]:
                raise ValueError(f"{key} differs between {train_path} ({train[key]!r}) and {gold_path} ({gold[key]!r})")
        if not gold.get("gold_sha256"):
            raise ValueError(f"{gold_path} has no gold_sha256; its results cannot be checked against the others")
        entries.append(
            ResultEntry(str(train["dataset"]), str(train["model"]), train, gold, str(train_path), str(gold_path))
        )
    return entries


def check_gold_hashes(entries: Iterable[ResultEntry], manifests: dict[str, dict] | None = None) -> None:
    """Raise GoldHashMismatch when one dataset's results were scored on different gold files, or on
    another gold file than the one its current preprocessing manifest names (shown as 'manifest')."""
    by_dataset: dict[str, dict[str, list[str]]] = {}
    for dataset, manifest in (manifests or {}).items():
        current = ((manifest.get("outputs") or {}).get("gold") or {}).get("sha256")
        if current:
            by_dataset.setdefault(dataset, {})[str(current)] = ["manifest"]
    for entry in entries:
        by_dataset.setdefault(entry.dataset, {}).setdefault(str(entry.gold_sha256), []).append(entry.model)
    for dataset, models_by_hash in by_dataset.items():
        if len(models_by_hash) > 1:
            raise GoldHashMismatch(dataset, models_by_hash)


def _check_unique(entries: Sequence[ResultEntry], missing: Sequence[tuple[str, str]]) -> None:
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        key = (entry.dataset, entry.model)
        if key in seen:
            raise ValueError(f"two results for {entry.label}")
        seen.add(key)
    both = sorted(seen & {tuple(pair) for pair in missing})
    if both:
        raise ValueError(f"listed as missing but results were given: {', '.join(f'{d}/{m}' for d, m in both)}")


# ---------------------------------------------------------------- tables and ranking


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    better: str  # "min" or "max"
    value: Callable[[ResultEntry], float | None]
    format: Callable[[float | None], str]
    detail: Callable[[ResultEntry], str] = lambda entry: ""  # small second line in the cell
    detail_label: str = ""  # what that second line holds, shown under the header
    # Values are only ranked against values of the same kind (CPU RSS is not CUDA allocation).
    kind: Callable[[ResultEntry], Any] = lambda entry: None
    ranked: bool = True  # False: shown only, never marked best (e.g. published reference values)
    title: str = ""  # header tooltip; default: which direction is better


def _params_detail(entry: ResultEntry) -> str:
    embedding, dense = entry.cost_value("params_embedding"), entry.cost_value("params_dense")
    return f"{format_count(embedding)} + {format_count(dense)}"


def _memory_kind(entry: ResultEntry) -> str | None:
    return entry.cost.get("peak_memory_kind")


def _optimizer_detail(entry: ResultEntry) -> str:
    optimizers = entry.cost.get("optimizers") or {}
    return " / ".join(str(optimizers[group]) for group in ("embedding", "dense") if group in optimizers)


COLUMNS: tuple[Column, ...] = (
    Column("gold_logloss", "Gold logloss", "min", lambda e: e.gold_metric("logloss"), format_metric),
    Column("gold_auc", "Gold AUC", "max", lambda e: e.gold_metric("auc"), format_metric),
    Column("gold_gauc", "Gold gAUC", "max", lambda e: e.gold_metric("gauc"), format_metric),
    Column(
        "valid_auc",
        "Val AUC",
        "max",
        lambda e: _finite((e.train.get("best_valid") or {}).get("auc")),
        format_metric,
        detail=lambda e: f"epoch {e.train['best_epoch']}" if e.train.get("best_epoch") is not None else "",
    ),
    Column(
        "params",
        "Parameters",
        "min",
        lambda e: e.total_params,
        format_count,
        detail=_params_detail,
        detail_label="embedding + dense",
    ),
    Column(
        "optimizer_state",
        "Optimizer state",
        "min",
        lambda e: e.cost_value("optimizer_state_bytes"),
        format_bytes,
        detail=_optimizer_detail,
        detail_label="embedding / dense opt.",
    ),
    Column(
        "peak_memory",
        "Peak memory",
        "min",
        lambda e: e.cost_value("peak_memory_bytes"),
        format_bytes,
        detail=lambda e: MEMORY_KIND_LABELS.get(_memory_kind(e), _memory_kind(e) or ""),
        kind=_memory_kind,
    ),
    Column(
        "samples_per_s",
        "Samples/s",
        "max",
        lambda e: e.cost_value("train_samples_per_s"),
        format_rate,
        detail=lambda e: e.cost.get("device") or "",
        detail_label="train device",
    ),
    Column(
        "train_time",
        "Train time",
        "min",
        lambda e: e.cost_value("train_seconds"),
        format_duration,
        detail=lambda e: (
            f"{format_duration(e.cost_value('seconds_per_epoch'))}/epoch" if e.cost_value("seconds_per_epoch") else ""
        ),
    ),
)


@dataclass
class Cell:
    column: str
    value: float | None
    text: str
    detail: str = ""
    best: bool = False


@dataclass
class TableRow:
    model: str
    arch: str
    color: str
    rank: int | None = None
    cells: list[Cell] = field(default_factory=list)
    missing: bool = False
    model_info: str = ""


def rank_entries(entries: Sequence[ResultEntry]) -> list[ResultEntry]:
    """Best first: highest gold AUC, then lowest gold logloss; results without AUC go last."""

    def key(entry: ResultEntry):
        auc, logloss = entry.gold_metric("auc"), entry.gold_metric("logloss")
        return (auc is None, -(auc or 0.0), logloss is None, logloss or 0.0, entry.model)

    return sorted(entries, key=key)


def best_models(entries: Sequence[ResultEntry], column: Column) -> tuple[set[str], str]:
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


# ---------------------------------------------------------------- sections


@dataclass
class DatasetSection:
    name: str
    anchor: str
    gold_sha256: str | None
    gold_rows: Any
    rows: list[TableRow]
    missing: list[str]
    notes: list[str]
    scatter_svg: Markup | None
    curves_svg: Markup | None
    data_summary: str | None = None
    columns: Sequence[Column] = COLUMNS
    gates: list[GateView] = field(default_factory=list)


@dataclass
class GateView:
    """One model's gate histogram on the gold set, with its one-line reading."""

    model: str
    svg: Markup
    caption: str
    count: int | None = None


# ---------------------------------------------------------------- reference values

# metrics a published reference may give, as table columns: the difference is taken to that column's value
REFERENCE_METRICS = ("gold_logloss", "gold_auc", "gold_gauc", "valid_auc")
NO_REFERENCE = "—"


def check_references(references: dict[str, dict] | None) -> dict[str, dict]:
    """Validate ``{dataset: {"metric": column key, "source": text, "values": {model: number}}}``.

    Returns a normalised copy (values as floats; null values dropped, as if not given).
    """
    checked = {}
    for dataset, reference in (references or {}).items():
        where = f"references[{dataset!r}]"
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
            if _finite(value) is None:
                raise ValueError(f"{where}: value of {model!r} must be a finite number, got {value!r}")
            numbers[str(model)] = float(value)
        source = reference.get("source")
        checked[str(dataset)] = {"metric": metric, "source": "" if source is None else str(source), "values": numbers}
    return checked


def format_difference(value: float) -> str:
    return f"{round(value, 4) + 0.0:+.4f}"  # + 0.0: no "-0.0000"


def reference_column(reference: dict) -> Column:
    """The "Reference" column of one section: the published value, and ours minus it underneath."""
    compared = next(column for column in COLUMNS if column.key == reference["metric"])
    values = reference["values"]

    def difference(entry: ResultEntry) -> str:
        ours, theirs = compared.value(entry), values.get(entry.model)
        return "" if ours is None or theirs is None else format_difference(ours - theirs)

    return Column(
        "reference",
        "Reference",
        compared.better,
        lambda entry: values.get(entry.model),
        lambda value: NO_REFERENCE if value is None else format_metric(value),
        detail=difference,
        detail_label=f"{compared.label}; ours − ref.",
        ranked=False,
        title=f"published {compared.label}, not a result of this run (never marked best)",
    )


def _with_reference(reference: dict) -> tuple[Column, ...]:
    """COLUMNS with the reference column right after the column it is compared to."""
    index = next(i for i, column in enumerate(COLUMNS) if column.key == reference["metric"])
    return COLUMNS[: index + 1] + (reference_column(reference),) + COLUMNS[index + 1 :]


def _reference_notes(reference: dict, result_models: Sequence[str]) -> list[str]:
    label = next(column.label for column in COLUMNS if column.key == reference["metric"])
    source = reference["source"] or "source not given"
    notes = [
        (
            f"Reference ({label}): {source}. Not a result of this run, so never marked best; "
            f"under each reference value: our {label} minus the reference."
        )
    ]
    unmatched = [model for model in reference["values"] if model not in result_models]
    if unmatched:
        notes.append(f"Reference values without a result in this section: {', '.join(unmatched)}.")
    return notes


# ---------------------------------------------------------------- gate distributions

GATE_READING = "g≈1: static branch, g≈0: sequence branch"


def _gate_view(entry: ResultEntry, color: str) -> GateView | str:
    """The gate histogram of an entry whose gold_eval.json has ``gate``, or a note when it is unusable."""
    gate = entry.gold["gate"]
    try:
        histogram = gate["histogram"]
        edges = [_finite(edge) for edge in histogram["edges"]]
        counts = histogram["counts"]
        if None in edges or len(edges) != len(counts) + 1 or len(counts) < 1:
            raise ValueError("edges and counts do not fit")
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
            raise ValueError("counts must be non-negative integers")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("edges must increase")
        below, above = (histogram.get(key) or 0 for key in ("below", "above"))
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in (below, above)):
            raise ValueError("below and above must be non-negative integers")
    except (KeyError, TypeError, ValueError) as error:
        return f"{entry.model}: the gate summary in its gold_eval.json is malformed ({error}); not drawn."
    mean = _finite(gate.get("mean"))
    median = _finite(_dict(gate.get("quantiles")).get("p50"))
    count = gate.get("count") if isinstance(gate.get("count"), int) else sum(counts) + below + above
    if mean is None:
        caption = f"mean g n/a; {GATE_READING}"
    else:
        middle = "" if median is None else f" (median {median:.2f})"
        caption = f"mean g = {mean:.2f}{middle}; {GATE_READING}"
    label = (
        f"Gate distribution of {entry.model} on the gold set: {count} samples in {len(counts)} bins"
        + ("" if mean is None else f", mean g {mean:.3f}")
    )
    svg = charts.histogram_svg(
        edges,
        counts,
        title=f"{entry.model}: gate g",
        label=label,
        color=color,
        x_label="g (0: sequence, 1: static branch)",
        marker=mean,
        below=below,
        above=above,
    )
    return GateView(entry.model, Markup(svg), caption, count)


def _anchor(name: str, taken: set[str]) -> str:
    base = "dataset-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "x")
    anchor, suffix = base, 2
    while anchor in taken:
        anchor, suffix = f"{base}-{suffix}", suffix + 1
    taken.add(anchor)
    return anchor


def _tick_bytes(value: float) -> str:
    """Axis ticks are round numbers: '2 GiB' rather than '2.00 GiB'."""
    number, _, unit = format_bytes(value).partition(" ")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return "0" if value == 0 else f"{number} {unit}"


def _scatter(entries: Sequence[ResultEntry], colors: dict[str, str]) -> Markup:
    points = []
    for entry in entries:
        memory, auc = entry.cost_value("peak_memory_bytes"), entry.gold_metric("auc")
        if memory is not None and auc is not None:
            tooltip = f"{entry.model}: gold AUC {format_metric(auc)}, peak memory {format_bytes(memory)}"
            points.append(charts.Point(entry.model, memory, auc, colors[entry.model], tooltip))
    svg = charts.scatter_svg(
        points,
        title="Gold AUC vs peak memory",
        x_label="Peak memory",
        y_label="Gold AUC",
        x_format=_tick_bytes,
        x_bytes=True,
    )
    return Markup(svg)


def _curves(entries: Sequence[ResultEntry], colors: dict[str, str]) -> Markup:
    series = []
    for entry in entries:
        points = []
        for epoch in entry.train.get("epochs") or []:
            x, y = _finite(epoch.get("epoch")), _finite(epoch.get("valid_auc"))
            if x is not None and y is not None:
                points.append((x, y))
        series.append(charts.Series(entry.model, colors[entry.model], points, _finite(entry.train.get("best_epoch"))))
    svg = charts.line_chart_svg(
        series,
        title="Validation AUC per epoch",
        x_label="Epoch",
        y_label="Validation AUC",
        highlight_label="best epoch",
    )
    return Markup(svg)


def dataset_sections(
    entries: Sequence[ResultEntry],
    missing: Sequence[tuple[str, str]],
    colors: dict[str, str],
    references: dict[str, dict] | None = None,
) -> list[DatasetSection]:
    """One section per dataset, in the order datasets first appear (results, then missing ones).

    ``references`` (checked by ``check_references``) adds a reference column to its datasets' sections.
    """
    order = list(dict.fromkeys([e.dataset for e in entries] + [d for d, _ in missing]))
    anchors: set[str] = set()
    sections = []
    for dataset in order:
        ranked = rank_entries([e for e in entries if e.dataset == dataset])
        missing_models = list(dict.fromkeys(m for d, m in missing if d == dataset))
        reference = (references or {}).get(dataset)
        columns = _with_reference(reference) if reference else COLUMNS
        notes = []
        best_by_column = {}
        for column in columns:
            best_by_column[column.key], note = best_models(ranked, column)
            if note:
                notes.append(note)
        if reference:
            notes += _reference_notes(reference, [entry.model for entry in ranked])
        rows = []
        gates = []
        for rank, entry in enumerate(ranked, start=1):
            cells = []
            for column in columns:
                value = column.value(entry)
                best = entry.model in best_by_column[column.key]
                cells.append(Cell(column.key, value, column.format(value), column.detail(entry), best))
            info = model_info_text(entry.model_info)
            rows.append(TableRow(entry.model, entry.arch, colors[entry.model], rank, cells, model_info=info))
            if entry.gold.get("gate") is not None:
                view = _gate_view(entry, colors[entry.model])
                if isinstance(view, str):
                    notes.append(view)
                else:
                    gates.append(view)
        rows += [TableRow(model, "", colors[model], missing=True) for model in missing_models]
        first = ranked[0] if ranked else None
        sections.append(
            DatasetSection(
                name=dataset,
                anchor=_anchor(dataset, anchors),
                gold_sha256=first.gold_sha256 if first else None,
                gold_rows=first.gold.get("rows") if first else None,
                rows=rows,
                missing=missing_models,
                notes=notes,
                scatter_svg=_scatter(ranked, colors) if ranked else None,
                curves_svg=_curves(ranked, colors) if ranked else None,
                columns=columns,
                gates=gates,
            )
        )
    return sections


# ---------------------------------------------------------------- provenance


@dataclass
class Distinct:
    """One value seen in the results and which results carry it."""

    value: str
    sources: list[str]


def _distinct(pairs: Iterable[tuple[Any, str]]) -> list[Distinct]:
    grouped: dict[str, list[str]] = {}
    for value, source in pairs:
        grouped.setdefault("unknown" if value in (None, "") else str(value), []).append(source)
    return [Distinct(value, list(dict.fromkeys(sources))) for value, sources in grouped.items()]


def _provenances(entry: ResultEntry) -> list[tuple[dict, str]]:
    """Training and evaluation run separately, so each file's provenance counts."""
    return [
        (entry.train.get("provenance") or {}, f"{entry.label} train"),
        (entry.gold.get("provenance") or {}, f"{entry.label} eval"),
    ]


def _device_text(device: Any, name: Any) -> str | None:
    if not device:
        return None
    return f"{device} ({name})" if name and name != device else str(device)


def _model_info_view(entries: Sequence[ResultEntry]) -> list[tuple[str, list[Distinct], bool]]:
    """Per model_info key: its distinct values with the results that carry them, and whether every
    result has that key. The evaluation's copy (from the checkpoint) is listed only where it differs."""
    keys = list(dict.fromkeys(key for e in entries for key in [*_dict(e.train.get("model_info")), *e.model_info]))
    view = []
    for key in keys:
        pairs = []
        for entry in entries:
            train, gold = _dict(entry.train.get("model_info")), _dict(entry.gold.get("model_info"))
            if key in train:
                pairs.append((info_text(train[key]), entry.label))
            if key in gold and (key not in train or info_text(gold[key]) != info_text(train[key])):
                pairs.append((info_text(gold[key]), f"{entry.label} eval (checkpoint)"))
        carried = {entry.label for entry in entries if key in entry.model_info}
        view.append((key, _distinct(pairs), len(carried) == len(entries)))
    return view


def provenance_view(entries: Sequence[ResultEntry], sections: Sequence[DatasetSection]) -> dict:
    stamps = [(prov, source) for entry in entries for prov, source in _provenances(entry)]
    package_names = list(dict.fromkeys(name for prov, _ in stamps for name in (prov.get("packages") or {})))
    return {
        "commits": _distinct((prov.get("git_commit"), source) for prov, source in stamps),
        "hosts": _distinct((prov.get("host"), source) for prov, source in stamps),
        "train_devices": _distinct(
            (_device_text(e.cost.get("device"), e.cost.get("device_name")), e.label) for e in entries
        ),
        "eval_devices": _distinct((e.gold.get("device"), e.label) for e in entries),
        "packages": [
            (
                name,
                _distinct(
                    ((prov.get("packages") or {}).get(name), source)
                    for prov, source in stamps
                    if name in (prov.get("packages") or {})
                ),
            )
            for name in package_names
        ],
        "gold_files": [(s.name, s.gold_sha256, s.gold_rows) for s in sections if s.gold_sha256],
        "model_info": _model_info_view(entries),
        "results": [
            {
                "label": entry.label,
                "commit": (entry.train.get("provenance") or {}).get("git_commit"),
                "config_sha256": (entry.train.get("provenance") or {}).get("config_sha256"),
                "checkpoint_sha256": entry.gold.get("checkpoint_sha256"),
                "train_device": _device_text(entry.cost.get("device"), entry.cost.get("device_name")),
                "eval_device": entry.gold.get("device"),
                "eval_seconds": format_duration(_finite(entry.gold.get("eval_seconds"))),
            }
            for entry in entries
        ],
    }


# ---------------------------------------------------------------- rendering


def _environment(template_dir: Path) -> jinja2.Environment:
    # autoescape=True rather than select_autoescape: the template's name ends in .j2, not .html
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["short_hash"] = lambda value, length=12: value[:length] if isinstance(value, str) else value
    return env


def _stylesheet(template_dir: Path) -> Markup:
    css = (template_dir / STYLESHEET_NAME).read_text(encoding="utf-8")
    if "</style" in css.lower():  # would close the inline <style> element early
        raise ValueError(f"{template_dir / STYLESHEET_NAME} must not contain '</style'")
    return Markup(css)


def _run_info_text(value: Any) -> str:
    if value is None:
        return NOT_AVAILABLE
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def data_summary(manifest: dict) -> str:
    """One line about a dataset's processed splits, from its preprocessing manifest."""
    splits = manifest.get("splits") or {}
    parts = [f"{name} {format_count(info.get('rows'))}" for name, info in splits.items()]
    text = " · ".join(parts) + " rows"
    rates = [info.get("label_rate") for info in splits.values() if info.get("label_rate") is not None]
    if rates:
        text += f"; label rate {min(rates):.3f}–{max(rates):.3f}" if len(set(rates)) > 1 else f"; label rate {rates[0]:.3f}"
    bad = (manifest.get("rows") or {}).get("bad")
    if bad is not None:
        text += f"; bad rows skipped: {bad}"
    return text


def render_html(
    entries: Sequence[ResultEntry],
    *,
    title: str = "ctrbench report",
    run_info: dict | None = None,
    missing: Sequence[tuple[str, str]] = (),
    template_dir: str | Path | None = None,
    manifests: dict[str, dict] | None = None,
    references: dict[str, dict] | None = None,
) -> str:
    """The report as a string; raises GoldHashMismatch / ValueError before rendering anything."""
    entries = list(entries)
    missing = [(str(dataset), str(model)) for dataset, model in missing]
    check_gold_hashes(entries, manifests)
    _check_unique(entries, missing)
    references = check_references(references)
    template_dir = Path(template_dir) if template_dir is not None else DEFAULT_TEMPLATE_DIR

    # one colour per model name across all datasets, so a model looks the same in every chart
    model_names = list(dict.fromkeys([e.model for e in entries] + [m for _, m in missing]))
    colors = {name: charts.color_for(index) for index, name in enumerate(model_names)}
    sections = dataset_sections(entries, missing, colors, references)
    for section in sections:
        if manifests and section.name in manifests:
            section.data_summary = data_summary(manifests[section.name])
    run_info_items = [(str(key), _run_info_text(value)) for key, value in (run_info or {}).items()]
    template = _environment(template_dir).get_template(TEMPLATE_NAME)
    return template.render(
        title=title,
        css=_stylesheet(template_dir),
        run_info=run_info_items,
        columns=COLUMNS,
        sections=sections,
        result_count=len(entries),
        missing_count=sum(len(s.missing) for s in sections),
        provenance=provenance_view(entries, sections),
    )


def render_report(
    entries: Sequence[ResultEntry],
    output_path: str | Path,
    *,
    title: str = "ctrbench report",
    run_info: dict | None = None,
    missing: Sequence[tuple[str, str]] = (),
    template_dir: str | Path | None = None,
    manifests: dict[str, dict] | None = None,
    references: dict[str, dict] | None = None,
) -> Path:
    """Render the report to ``output_path`` (atomically) and return that path.

    ``missing`` lists (dataset, model) pairs without results; they are shown as missing.
    ``template_dir`` replaces the top-level report/ folder (templates/report.html.j2, style.css).
    ``references`` maps a dataset to published values to compare with:
    ``{"metric": "valid_auc", "source": "text", "values": {model name: number}}``, where metric is
    one of REFERENCE_METRICS (a table column); that section gets a "Reference" column.
    Nothing is written when the results fail the gold-hash, uniqueness or reference checks.
    """
    html = render_html(
        entries,
        title=title,
        run_info=run_info,
        missing=missing,
        template_dir=template_dir,
        manifests=manifests,
        references=references,
    )
    output_path = Path(output_path)
    atomic_write_text(output_path, html)
    return output_path


def build_report(pairs: Iterable[tuple[str | Path, str | Path]], output_path: str | Path, **options: Any) -> Path:
    """Load (train_metrics.json, gold_eval.json) pairs and render them: what the workflow rule calls."""
    return render_report(load_entries(pairs), output_path, **options)


# ---------------------------------------------------------------- from the workflow config


def dataset_models(config: dict) -> dict[str, list[str]]:
    """{dataset: the models compared on it}: the dataset's own ``models`` list, else benchmark.models."""
    return {d: config_dataset_models(config, d) for d in config["benchmark"]["datasets"]}


def models_line(models_by_dataset: dict[str, list[str]]) -> str:
    """All models in first-seen order; when datasets compare different models, also per dataset:
    ``a, b, c, d (criteo_synthetic: a, b; userbehavior_synthetic: c, d)``."""
    union = ", ".join(dict.fromkeys(m for models in models_by_dataset.values() for m in models))
    if len({tuple(models) for models in models_by_dataset.values()}) <= 1:
        return union
    per_dataset = "; ".join(f"{d}: {', '.join(models)}" for d, models in models_by_dataset.items())
    return f"{union} ({per_dataset})"


def config_references(config: dict) -> dict[str, dict]:
    """{dataset: its ``reference``} for the benchmark's datasets that have one."""
    datasets = config.get("datasets") or {}
    return {
        d: datasets[d]["reference"] for d in config["benchmark"]["datasets"] if "reference" in (datasets.get(d) or {})
    }
