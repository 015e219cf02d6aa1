"""The HTML report: load result records, check they are comparable, render one page.

The page is a single self-contained file (CSS inlined, charts as inline SVG) so that it can be
archived or mailed next to the results without anything else. The pieces: ``entries`` (loading and
comparability checks), ``table`` (columns per task and cost, ranking, references), ``sections``
(per dataset: table, extra outputs, charts, data line) and ``provenance_view``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from ctrbench.atomic import atomic_write_text
from ctrbench.config import dataset_models as config_dataset_models
from ctrbench.data.manifest import DataManifest
from ctrbench.report import charts
from ctrbench.report.entries import GoldHashMismatch, ResultEntry, check_comparable, check_gold_hashes, load_entries
from ctrbench.report.formatting import NOT_AVAILABLE, format_bytes, format_count, format_duration, format_rate
from ctrbench.report.provenance_view import provenance_view
from ctrbench.report.section_charts import COST_AXES
from ctrbench.report.sections import data_summary, dataset_sections
from ctrbench.report.table import COST_GROUP, check_references

# The top-level report/ folder: templates/report.html.j2 and style.css (inlined into the page).
DEFAULT_TEMPLATE_DIR = Path(__file__).resolve().parents[2] / "report"
TEMPLATE_NAME = "report.html.j2"
STYLESHEET_NAME = "style.css"

__all__ = [
    "GoldHashMismatch",
    "ResultEntry",
    "build_report",
    "check_gold_hashes",
    "format_bytes",
    "format_count",
    "format_duration",
    "format_rate",
    "load_entries",
    "render_html",
    "render_report",
]  # fmt: skip


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


def render_html(
    entries: Sequence[ResultEntry],
    *,
    title: str = "ctrbench report",
    run_info: dict | None = None,
    missing: Sequence[tuple] = (),
    template_dir: str | Path | None = None,
    manifests: dict[str, DataManifest] | None = None,
    references: dict[str, dict] | None = None,
    cost: str = "peak_memory",
) -> str:
    """The report as a string; raises GoldHashMismatch / ValueError before rendering anything."""
    entries = list(entries)
    if cost not in COST_AXES:
        raise ValueError(f"cost {cost!r} is not one of {', '.join(COST_AXES)}")
    missing = [(str(item[0]), str(item[1]), *item[2:]) for item in missing]
    check_gold_hashes(entries, manifests)
    check_comparable(entries, missing)
    references = check_references(references)
    template_dir = Path(template_dir) if template_dir is not None else DEFAULT_TEMPLATE_DIR

    # one colour per model name across all datasets, so a model looks the same in every chart
    model_names = list(dict.fromkeys([e.model for e in entries] + [item[1] for item in missing]))
    colors = {name: charts.color_for(index) for index, name in enumerate(model_names)}
    sections = dataset_sections(entries, missing, colors, references, manifests, cost)
    for section in sections:
        if manifests and section.name in manifests:
            section.data_summary = data_summary(manifests[section.name])
    run_info_items = [(str(key), _run_info_text(value)) for key, value in (run_info or {}).items()]
    template = _environment(template_dir).get_template(TEMPLATE_NAME)
    return template.render(
        title=title,
        css=_stylesheet(template_dir),
        run_info=run_info_items,
        sections=sections,
        result_count=len(entries),
        missing_count=sum(len(s.missing) for s in sections),
        provenance=provenance_view(entries, sections),
        cost_group=COST_GROUP,
    )


def render_report(entries: Sequence[ResultEntry], output_path: str | Path, **options: Any) -> Path:
    """Render the report to ``output_path`` (atomically) and return that path; options as ``render_html``.

    ``missing`` lists (dataset, model) or (dataset, model, seed) items without results; they are shown as missing.
    ``cost`` is the x axis of the gold-AUC charts: peak_memory, params, flops or samples_per_s.
    ``template_dir`` replaces the top-level report/ folder (templates/report.html.j2, style.css).
    ``references`` maps a dataset to published values to compare with:
    ``{"metric": "valid_auc", "source": "text", "values": {model name: number}, "task": optional}``.
    Nothing is written when the results fail the gold-hash, comparability or reference checks.
    """
    html = render_html(entries, **options)
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


def seeds_line(config: dict) -> str:
    """The training seeds: benchmark.seeds, and each dataset's own where it has them."""
    line = ", ".join(map(str, config["benchmark"]["seeds"]))
    own = [f"{d}: {', '.join(map(str, config['datasets'][d]['seeds']))}" for d in config["benchmark"]["datasets"] if "seeds" in config["datasets"].get(d, {})]
    return line + (f" ({'; '.join(own)})" if own else "")


def config_references(config: dict) -> dict[str, dict]:
    """{dataset: its ``reference``} for the benchmark's datasets that have one."""
    datasets = config.get("datasets") or {}
    return {
        d: datasets[d]["reference"] for d in config["benchmark"]["datasets"] if "reference" in (datasets.get(d) or {})
    }
