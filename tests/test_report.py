"""The HTML report, rendered from synthetic result files written into tmp_path."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from ctrbench.data.manifest import DataManifest
from ctrbench.metrics import distribution_summary
from ctrbench.predictions import write_predictions
from ctrbench.report import GoldHashMismatch, build_report, load_entries, render_report
from ctrbench.report.build import (
    DEFAULT_TEMPLATE_DIR,
    config_references,
    dataset_models,
    format_bytes,
    format_count,
    format_duration,
    format_rate,
    models_line,
)

MIB = 1024**2

# Per dataset and model: the numbers the table shows. Each column's best lies on a known model,
# spread over different models so that a marker on the wrong row is caught.
FIELDS = ("logloss", "auc", "gauc", "valid_auc", "emb", "dense", "opt", "mem", "sps", "secs")
# fmt: off
TABLE = {
    "criteo_synthetic": {
        "deepfm":  (0.4500, 0.7712, None, 0.7700, 400_000, 20_000, 160_000, 300 * MIB, 20_000.0, 30.0),
        "dcnv2":   (0.4550, 0.7834, None, 0.7850, 416_000, 50_000, 400_000, 250 * MIB, 15_000.0, 40.0),
        "autoint": (0.4600, 0.7801, None, 0.7800, 400_000, 90_000, 100_000, 900 * MIB, 9_000.0, 80.0),
    },
    "taobao_synthetic": {
        "deepfm":  (0.3900, 0.6601, 0.6102, 0.6650, 800_000, 20_000, 900_000, 2048 * MIB, 50_000.0, 120.0),
        "dcnv2":   (0.3800, 0.6523, 0.6230, 0.6600, 700_000, 60_000, 500_000, 1024 * MIB, 40_000.0, 150.0),
        "autoint": (0.3850, 0.6555, 0.6111, 0.6620, 750_000, 30_000, 600_000, 4096 * MIB, 30_000.0, 100.0),
    },
}
# fmt: on
# frozen parameters (a frozen backbone): Criteo's fewest parameters in all (dcnv2) are not its fewest trained (deepfm)
FROZEN_PARAMS = {"deepfm": 200_000}
RESULTS = {
    dataset: {model: {**dict(zip(FIELDS, row)), "frozen": FROZEN_PARAMS.get(model, 0)} for model, row in models.items()}
    for dataset, models in TABLE.items()
}

# table column -> (field in RESULTS, whether higher is better)
COLUMN_FIELDS = {
    "label:gold_logloss": ("logloss", False),
    "label:gold_auc": ("auc", True),
    "label:gold_gauc": ("gauc", True),
    "label:valid_auc": ("valid_auc", True),
    "params": ("params", False),
    "trained_params": ("trained_params", False),
    "optimizer_state": ("opt", False),
    "peak_memory": ("mem", False),
    "samples_per_s": ("sps", True),
    "train_time": ("secs", False),
}

GOLD_HASH = {"criteo_synthetic": "a" * 64, "taobao_synthetic": "b" * 64}
EVENTS_HASH = "e" * 64


def _provenance() -> dict:
    return {"packages": {"python": "3.11.7", "ctrbench": "0.2.0", "torch": "2.13.0"}, "git_commit": "abc123", "host": "testhost"}


def _metrics(logloss, auc, gauc) -> dict:
    return {"logloss": logloss, "auc": auc, "accuracy": 0.8, "gauc": gauc, "rows": 2000, "label_rate": 0.25}


def _train_metrics(dataset: str, model: str, r: dict) -> dict:
    """A TrainRecord (version 4) with the table's numbers."""
    epochs = [
        {
            "epoch": e, "train_loss": 0.5 - 0.01 * e, "valid": {"label": _metrics(0.47, r["valid_auc"] - 0.01 * (3 - e), None)},
            "monitored": r["valid_auc"] - 0.01 * (3 - e), "best_so_far": True, "epoch_seconds": r["secs"] / 3,
            "train_seconds": r["secs"] / 3, "samples_per_s": r["sps"],
        }
        for e in (1, 2, 3)
    ]  # fmt: skip
    group = lambda n, opt, state: {"params": n, "bytes": 4 * n, "trainable": opt is not None, "optimizer": opt, "optimizer_state_bytes": state}
    return {
        "kind": "ctrbench.train", "version": 4, "dataset": dataset, "model": model, "config_sha256": "c0ffee" * 10,
        "arch": model, "params": {}, "training": {}, "seed": 1, "model_info": {}, "tasks": ["label"], "monitor": "mean_auc",
        "best_epoch": 3, "best_valid": {"label": _metrics(0.45, r["valid_auc"], None)}, "stopped_early": False, "epochs": epochs,
        "cost": {
            "parameter_groups": {"embedding": group(r["emb"], "sgd", 0), "dense": group(r["dense"], "adamw", r["opt"]), "frozen": group(r["frozen"], None, 0)},
            "optimizer_state_bytes": r["opt"], "sparse_embeddings": True, "peak_memory_bytes": r["mem"],
            "peak_memory_kind": "cpu_peak_rss", "train_samples_per_s": r["sps"], "train_seconds": r["secs"],
            "seconds_per_epoch": r["secs"] / 3, "device": "cpu", "device_name": "x86_64 CPU", "processes": 1,
            "precision": "fp32", "loader": "memory",
        },
        "provenance": _provenance(),
    }  # fmt: skip


def _gold_eval(dataset: str, model: str, r: dict) -> dict:
    """A GoldRecord (version 4) with the table's numbers (its predictions file: ``_write_results`` writes it)."""
    return {
        "kind": "ctrbench.gold_eval", "version": 4, "seed": 1, "dataset": dataset, "model": model, "config_sha256": "c0ffee" * 10,
        "arch": model, "checkpoint_epoch": 3, "precision": "fp32", "rows": 2000,
        "tasks": {"label": _metrics(r["logloss"], r["auc"], r["gauc"])}, "gold_sha256": GOLD_HASH[dataset], "events_sha256": EVENTS_HASH,
        "checkpoint_sha256": "d" * 64, "eval_seconds": 1.2, "eval_samples_per_s": 2000 / 1.2, "device": "cpu",
        "device_name": "x86_64 CPU", "model_info": {}, "extra_outputs": [], "provenance": _provenance(),
        "predictions": {"file": "gold_predictions.parquet", "sha256": "0" * 64},
    }  # fmt: skip


GOLD_ROWS = 400


def _write_predictions(folder: Path, dataset: str, aucs: dict[str, float], seed: int = 0) -> str:
    """Predictions on one shared set of gold rows per dataset whose scores separate each task's classes about as
    well as its AUC in ``aucs`` says (a normal shift of √2·Φ⁻¹(auc)); returns the file's sha256."""
    from scipy.stats import norm

    rows = np.random.default_rng(sum(map(ord, dataset)))
    labels = (rows.random((GOLD_ROWS, len(aucs))) < 0.3).astype(np.float32)
    noise = np.random.default_rng([sum(map(ord, dataset)), int(sum(aucs.values()) * 1e4), seed]).normal(size=labels.shape)
    probs = 1 / (1 + np.exp(-(labels * np.sqrt(2) * norm.ppf(list(aucs.values())) + noise - 1)))
    return write_predictions(folder / "gold_predictions.parquet", list(aucs), np.arange(GOLD_ROWS), labels, probs)


def _write_results(root: Path, results: dict = RESULTS) -> list[tuple[Path, Path]]:
    pairs = []
    for dataset, models in results.items():
        for model, r in models.items():
            folder = root / dataset / model
            folder.mkdir(parents=True)
            (folder / "train_metrics.json").write_text(json.dumps(_train_metrics(dataset, model, r)))
            gold = _gold_eval(dataset, model, r)
            gold["predictions"]["sha256"] = _write_predictions(folder, dataset, {"label": r["auc"]})
            (folder / "gold_eval.json").write_text(json.dumps(gold))
            pairs.append((folder / "train_metrics.json", folder / "gold_eval.json"))
    return pairs


def _edit_json(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


class _TableCells(HTMLParser):
    """Collects each results-table cell as (dataset, model, column) -> (text, has best class)."""

    def __init__(self):
        super().__init__()
        self.cells: dict[tuple[str, str, str], tuple[str, bool]] = {}
        self.details: dict[tuple[str, str, str], str] = {}  # a cell's small second line
        self.headers: dict[str, list[str]] = {}  # dataset -> data-column of each table header
        self.header_details: dict[tuple[str, str], str] = {}
        self.missing_rows: set[tuple[str, str]] = set()
        self.svg_count: dict[str, int] = {}
        self._dataset = self._model = self._column = self._header = None
        self._best = False
        self._in_detail = False
        self._text: list[str] = []
        self._detail: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and "data-dataset" in attrs:
            self._dataset = attrs["data-dataset"]
            self.svg_count[self._dataset] = 0
        elif tag == "svg" and self._dataset:
            self.svg_count[self._dataset] += 1
        elif tag == "tr" and "data-model" in attrs:
            self._model = attrs["data-model"]
            if "missing" in (attrs.get("class") or "").split():
                self.missing_rows.add((self._dataset, self._model))
        elif tag == "td" and "data-column" in attrs:
            self._column, self._text, self._detail = attrs["data-column"], [], []
            self._best = "best" in (attrs.get("class") or "").split()
        elif tag == "th" and "data-column" in attrs and self._dataset:
            self._header, self._detail = attrs["data-column"], []
            self.headers.setdefault(self._dataset, []).append(self._header)
        elif tag == "span" and "detail" in (attrs.get("class") or "").split():
            self._in_detail = True

    def handle_endtag(self, tag):
        if tag == "td" and self._column:
            key = (self._dataset, self._model, self._column)
            self.cells[key] = ("".join(self._text), self._best)
            self.details[key] = "".join(self._detail)
            self._column = None
        elif tag == "th" and self._header:
            self.header_details[(self._dataset, self._header)] = "".join(self._detail)
            self._header = None
        elif tag == "span":
            self._in_detail = False
        elif tag == "section":
            self._dataset = None

    def handle_data(self, data):
        if self._column:
            self._text.append(data)
        if self._in_detail and (self._column or self._header):
            self._detail.append(data)


def _parse(html: str) -> _TableCells:
    parser = _TableCells()
    parser.feed(html)
    return parser


def _value(r: dict, field: str):
    trained = r["emb"] + r["dense"]
    return {"params": trained + r["frozen"], "trained_params": trained}.get(field, r.get(field))


@pytest.fixture
def report(tmp_path):
    pairs = _write_results(tmp_path / "results")
    output = render_report(load_entries(pairs), tmp_path / "out" / "report.html", run_info={"profile": "cpu"})
    return output.read_text(encoding="utf-8")


def test_every_model_appears_with_its_formatted_gold_auc(report):
    cells = _parse(report).cells
    for dataset, models in RESULTS.items():
        for model, r in models.items():
            text, _ = cells[(dataset, model, "label:gold_auc")]
            assert f"{r['auc']:.4f}" in text


def test_one_best_marker_per_column_on_the_best_model(report):
    cells = _parse(report).cells
    for dataset, models in RESULTS.items():
        for column, (field, higher_is_better) in COLUMN_FIELDS.items():
            values = {model: _value(r, field) for model, r in models.items() if _value(r, field) is not None}
            marked = [model for model in models if cells[(dataset, model, column)][1]]
            starred = [model for model in models if "★" in cells[(dataset, model, column)][0]]
            if not values:  # gauc null on criteo: nothing to mark
                assert marked == [] and starred == [], (dataset, column)
                continue
            expected = (max if higher_is_better else min)(values, key=values.get)
            assert marked == [expected], (dataset, column)
            assert starred == [expected], (dataset, column)


def test_each_dataset_has_its_charts(report):
    parsed = _parse(report)
    assert set(parsed.svg_count) == set(RESULTS)
    for dataset, count in parsed.svg_count.items():
        assert count >= 2, dataset  # scatter and validation curves
    assert report.count('class="point"') == sum(len(models) for models in RESULTS.values())


def test_report_is_self_contained(report):
    lowered = report.lower()
    for forbidden in ("<script", "<link", "http://", "https://", "url(", "@import"):
        assert forbidden not in lowered, forbidden
    css = (DEFAULT_TEMPLATE_DIR / "style.css").read_text(encoding="utf-8").strip()
    assert css in report


def test_gold_hash_mismatch_raises_and_writes_nothing(tmp_path):
    pairs = _write_results(tmp_path / "results")
    odd_hash = "f" * 64
    _edit_json(
        tmp_path / "results" / "taobao_synthetic" / "autoint" / "gold_eval.json",
        lambda data: data.update(gold_sha256=odd_hash),
    )
    output = tmp_path / "out" / "report.html"
    with pytest.raises(GoldHashMismatch) as error:
        build_report(pairs, output)
    message = str(error.value)
    for name in ("taobao_synthetic", "autoint", "deepfm", odd_hash, GOLD_HASH["taobao_synthetic"]):
        assert name in message
    assert not output.exists()
    assert not output.parent.exists() or not any(output.parent.iterdir())


def test_missing_results_are_listed_as_missing(tmp_path):
    pairs = _write_results(tmp_path / "results")
    missing = [("criteo_synthetic", "fibinet"), ("avazu_synthetic", "deepfm")]
    html = render_report(load_entries(pairs), tmp_path / "report.html", missing=missing).read_text()
    parsed = _parse(html)
    assert parsed.missing_rows == set(missing)
    assert "avazu_synthetic" in parsed.svg_count  # a dataset without any results still gets its section
    assert "missing — no results for this model" in html
    assert "3 missing" not in html and "2 missing" in html


def test_null_gauc_renders_as_not_available(report):
    cells = _parse(report).cells
    for model in RESULTS["criteo_synthetic"]:
        assert cells[("criteo_synthetic", model, "label:gold_gauc")][0].strip() == "n/a"
    assert cells[("taobao_synthetic", "dcnv2", "label:gold_gauc")][0].startswith("0.6230")


def test_text_from_result_files_is_escaped(tmp_path):
    hostile = 'x<img src=x onerror="alert(1)">'
    pairs = _write_results(tmp_path / "r", {"criteo_synthetic": {hostile: RESULTS["criteo_synthetic"]["dcnv2"]}})
    html = build_report(pairs, tmp_path / "report.html", run_info={"note": "<script>alert(2)</script>"}).read_text()
    assert "<img" not in html and "<script" not in html
    assert "x&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html


def test_failed_write_keeps_the_previous_report(tmp_path, monkeypatch):
    pairs = _write_results(tmp_path / "results")
    output = tmp_path / "out" / "report.html"
    output.parent.mkdir()
    output.write_text("previous report")

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr("ctrbench.atomic.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        build_report(pairs, output)
    assert output.read_text() == "previous report"
    assert [path.name for path in output.parent.iterdir()] == ["report.html"]  # no temp file left behind


def test_disagreeing_commits_are_all_shown(tmp_path):
    pairs = _write_results(tmp_path / "results")
    _edit_json(pairs[0][0], lambda data: data["provenance"].update(git_commit="def456-dirty"))
    html = build_report(pairs, tmp_path / "report.html").read_text()
    provenance = html[html.index('id="provenance"') :]
    assert "abc123" in provenance and "def456-dirty" in provenance
    assert "different values" in provenance


def test_wide_memory_range_uses_a_log_axis(tmp_path):
    pairs = _write_results(tmp_path / "results")

    def criteo_section() -> str:
        html = build_report(pairs, tmp_path / "report.html").read_text()
        return html[html.index('data-dataset="criteo_synthetic"') : html.index('data-dataset="taobao_synthetic"')]

    assert "(log scale)" not in criteo_section()  # 250..900 MiB: linear
    _edit_json(pairs[0][0], lambda data: data["cost"].update(peak_memory_bytes=5 * MIB))
    assert "(log scale)" in criteo_section()  # 5..900 MiB: log


def test_load_rejects_files_of_different_results(tmp_path):
    pairs = _write_results(tmp_path / "results")
    with pytest.raises(ValueError, match="model differs"):
        load_entries([(pairs[0][0], pairs[1][1])])


@pytest.mark.parametrize(
    "formatter, value, expected",
    [
        (format_bytes, 1_664_000, "1.59 MiB"),
        (format_bytes, 300 * MIB, "300 MiB"),
        (format_bytes, 512, "512 B"),
        (format_bytes, None, "n/a"),
        (format_count, 466_000, "466 K"),
        (format_count, 1_234_567, "1.23 M"),
        (format_rate, 15_000.0, "15,000"),
        (format_duration, 40.0, "40.0 s"),
        (format_duration, 125.0, "2 min 05 s"),
    ],
)
def test_number_formats(formatter, value, expected):
    assert formatter(value) == expected


def test_dataset_section_summarises_its_manifest(tmp_path):
    pairs = _write_results(tmp_path / "results")
    dataset = next(iter(RESULTS))
    manifest = _manifest(GOLD_HASH[dataset], bad_rows={"field_count": 2, "bad_label": 1, "bad_dense": 0})
    html = render_report(load_entries(pairs), tmp_path / "report.html", manifests={dataset: manifest}).read_text()
    assert "data: train 800 · valid 100 · gold 100 rows; label rate 0.250; bad rows skipped: field count 2, bad label 1" in html
    assert html.count("data: train") == 1  # only the dataset whose manifest was given


def _manifest(gold_sha256: str, bad_rows: dict | None = None, **more) -> DataManifest:
    """A manifest record as preprocessing writes it, with the fields the report reads set."""
    splits = {name: {"rows": rows, "positives": rows // 4, "label_rate": 0.25} for name, rows in {"train": 800, "valid": 100, "gold": 100}.items()}
    output = {"path": "x", "bytes": 1}
    outputs = {"gold": {**output, "sha256": gold_sha256}, "events": {**output, "sha256": EVENTS_HASH}}
    raw = {"path": "raw", "bytes": 1, "hash": "sha256", "sha256": "1" * 64, "lines": 1000, "data_lines": 1000}
    fields = {
        "dataset": "d", "format": "criteo_dac", "inputs": {"raw": raw}, "options": {}, "rows": {"read": 1000, "written": 1000, "bad": 0},
        "bad_rows": bad_rows or {}, "bad_row_examples": [], "dropped": {}, "splits": splits, "split_times": None,
        "outputs": outputs, "packages": {}, "details": {},
    }  # fmt: skip
    return DataManifest.model_validate({**fields, **more})



def test_a_multi_task_manifest_shows_each_task_label_rate(tmp_path):
    pairs = _write_results(tmp_path / "results")
    dataset = next(iter(RESULTS))
    sizes = {"train": 800, "valid": 100, "gold": 100}
    positives = {"train": {"click": 320, "like": 16}, "valid": {"click": 40, "like": 3}, "gold": {"click": 40, "like": 2}}
    splits = {
        name: {"rows": rows, "positives": positives[name]["click"], "label_rate": positives[name]["click"] / rows,
               "task_positives": positives[name]}
        for name, rows in sizes.items()
    }  # fmt: skip
    manifest = _manifest(GOLD_HASH[dataset], splits=splits)
    html = render_report(load_entries(pairs), tmp_path / "report.html", manifests={dataset: manifest}).read_text()
    assert "rows; label rates click 0.400, like 0.020–0.030; bad rows skipped: none" in html

def test_time_split_ranges_and_every_kind_of_dropped_row_are_shown(tmp_path):
    pairs = _write_results(tmp_path / "results")
    times = {"first_event": "2017-11-25T00:00:05+08:00", "valid_start": "2017-12-02T00:00:00+08:00",
             "gold_start": "2017-12-03T00:00:00+08:00", "last_event": "2017-12-03T23:59:59+08:00"}  # fmt: skip
    manifest = _manifest(GOLD_HASH["taobao_synthetic"], bad_rows={"bad_id": 0}, dropped={"out_of_range": 35, "user_sampled_out": 0},
                         split_times=times)  # fmt: skip
    html = render_report(load_entries(pairs), tmp_path / "report.html", manifests={"taobao_synthetic": manifest}).read_text()
    assert ("by time: train 2017-11-25 – 2017-12-01, valid 2017-12-02, gold 2017-12-03; bad rows skipped: none; "
            "rows left out: out of range 35" in _section(html, "taobao_synthetic"))  # fmt: skip


def test_results_scored_on_another_gold_file_than_the_manifest_names_are_refused(tmp_path):
    pairs = _write_results(tmp_path / "results")
    entries = load_entries(pairs)
    dataset = entries[0].dataset
    stale = {dataset: _manifest("0" * 64)}
    with pytest.raises(GoldHashMismatch, match="manifest: gold_sha256 0000"):
        render_report(entries, tmp_path / "report.html", manifests=stale)
    assert not (tmp_path / "report.html").exists()
    current = {dataset: _manifest(entries[0].gold_sha256)}
    assert render_report(entries, tmp_path / "report.html", manifests=current).exists()


# ---------------------------------------------------------------- gates, model_info, references

GATE_MODEL = ("taobao_synthetic", "dcnv2")


def _section(html: str, dataset: str) -> str:
    start = html.index(f'data-dataset="{dataset}"')
    end = html.find("<section", start)
    return html[start:end]


def _set_gate(pairs, dataset: str, model: str, summary: dict) -> None:
    """The extra output MDAF describes for its gate, as the gold evaluation records it."""
    gold_path = next(gold for _, gold in pairs if gold.parent.parts[-2:] == (dataset, model))
    output = {"key": "gate", "title": "gate g", "axis_label": "g (0: sequence, 1: static branch)",
              "reading": "g≈1: static branch, g≈0: sequence branch", "kind": "distribution",
              "shape": [summary["count"]], "summary": summary}  # fmt: skip
    _edit_json(gold_path, lambda data: data.update(extra_outputs=[output]))


class _Gates(HTMLParser):
    """Per (dataset, model) gate figure: the svg's data attributes, each bar's count, the mean
    marker's value and the caption text."""

    def __init__(self):
        super().__init__()
        self.figures: dict[tuple[str, str], dict] = {}
        self._dataset = None
        self._figure: dict | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "section" and "data-dataset" in attrs:
            self._dataset = attrs["data-dataset"]
        elif tag == "figure" and "extra-output" in classes:
            self._figure = {"bars": [], "caption": "", "marker": None, "svg": None}
            self.figures[(self._dataset, attrs["data-model"])] = self._figure
        elif self._figure is not None:
            if tag == "svg":
                self._figure["svg"] = attrs
            elif tag == "rect" and "bar" in classes:
                self._figure["bars"].append(int(attrs["data-count"]))
            elif tag == "line" and "marker" in classes:
                self._figure["marker"] = float(attrs["data-value"])
            elif tag == "figcaption":
                self._in_caption = True

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None
        elif tag == "figcaption":
            self._in_caption = False

    def handle_data(self, data):
        if self._in_caption:
            self._figure["caption"] += data


def _gates(html: str) -> dict[tuple[str, str], dict]:
    parser = _Gates()
    parser.feed(html)
    return parser.figures


def test_gate_histogram_is_drawn_only_for_results_with_a_gate(tmp_path):
    pairs = _write_results(tmp_path / "results")
    values = np.random.default_rng(5).beta(5, 3, size=1000)
    summary = distribution_summary(values)
    _set_gate(pairs, *GATE_MODEL, summary)
    html = build_report(pairs, tmp_path / "report.html").read_text()

    figures = _gates(html)
    assert list(figures) == [GATE_MODEL]
    figure = figures[GATE_MODEL]
    counts = summary["histogram"]["counts"]
    assert figure["bars"] == counts
    assert [int(n) for n in figure["svg"]["data-counts"].split()] == counts
    assert [float(e) for e in figure["svg"]["data-edges"].split()] == pytest.approx(summary["histogram"]["edges"])
    assert figure["marker"] == pytest.approx(values.mean(), abs=1e-5)
    assert "gate g of dcnv2 on the gold set" in figure["svg"]["aria-label"]
    caption = " ".join(figure["caption"].split())
    mean, median = values.mean(), np.median(values)
    assert caption.startswith(f"mean {mean:.2f} (median {median:.2f}); g≈1: static branch, g≈0: sequence branch")
    assert "1000 values" in caption
    # the block sits in its dataset's section, under the table, and nowhere else
    assert html.count("Model outputs on the gold set") == 1
    taobao = _section(html, "taobao_synthetic")
    assert taobao.index("</table>") < taobao.index("Model outputs on the gold set")
    assert "Model outputs" not in _section(html, "criteo_synthetic")


def test_no_gate_block_without_gates(report):
    assert _gates(report) == {}
    assert "Model outputs on the gold set" not in report and "chart-histogram" not in report


def test_gate_caption_and_counts_of_known_values(tmp_path):
    pairs = _write_results(tmp_path / "results")
    values = [0.2, 0.6, 0.7, 0.9, 1.25, -0.5, -0.25]  # three outside [0, 1]
    summary = distribution_summary(values)
    _set_gate(pairs, *GATE_MODEL, summary)
    html = build_report(pairs, tmp_path / "report.html").read_text()
    figure = _gates(html)[GATE_MODEL]
    assert sum(figure["bars"]) == 4 and figure["bars"] == summary["histogram"]["counts"]
    assert (figure["svg"]["data-below"], figure["svg"]["data-above"]) == ("2", "1")
    assert "2 below 0 · 1 above 1" in html
    caption = " ".join(figure["caption"].split())
    assert caption.startswith("mean 0.41 (median 0.60);")  # mean 2.9 / 7 = 0.414..
    assert "7 values" in caption


def test_a_malformed_summary_is_refused_when_its_record_is_read(tmp_path):
    from ctrbench.results import ResultError

    pairs = _write_results(tmp_path / "results")
    summary = distribution_summary([0.3, 0.4])
    summary["histogram"]["counts"] = summary["histogram"]["counts"][:-1]  # one count short of the edges
    _set_gate(pairs, *GATE_MODEL, summary)
    with pytest.raises(ResultError, match=r"taobao_synthetic/dcnv2/gold_eval.json: malformed .*21 edges for 19 counts"):
        build_report(pairs, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


MODEL_INFO = {"sequence_encoder": "mamba", "mamba_backend": "torch"}


def _model_row_header(html: str, dataset: str, model: str) -> str:
    section = _section(html, dataset)
    row = section[section.index(f'<tr data-model="{model}">') :]
    return row[: row.index("</th>")]


def test_model_info_is_shown_under_the_model_and_in_provenance(tmp_path):
    pairs = _write_results(tmp_path / "results")
    train_path = next(train for train, _ in pairs if train.parent.parts[-2:] == GATE_MODEL)
    _edit_json(train_path, lambda data: data.update(model_info=MODEL_INFO))
    html = build_report(pairs, tmp_path / "report.html").read_text()

    header = _model_row_header(html, *GATE_MODEL)
    assert 'class="detail model-info">sequence_encoder: mamba, mamba_backend: torch</span>' in header
    assert "model-info" not in _model_row_header(html, "taobao_synthetic", "deepfm")
    assert 'class="detail model-info"' not in _section(html, "criteo_synthetic")

    provenance = html[html.index('id="provenance"') :]
    details = provenance[provenance.index("Model details") : provenance.index("Package versions")]
    for text in ("mamba_backend", "<code>torch</code>", "sequence_encoder", "<code>mamba</code>"):
        assert text in details
    assert "taobao_synthetic/dcnv2" in details  # only one result carries it: named, not "(all results)"
    assert "(all results)" not in details


def test_model_info_of_the_checkpoint_is_listed_where_it_differs(tmp_path):
    pairs = _write_results(tmp_path / "results")
    train_path, gold_path = next(pair for pair in pairs if pair[0].parent.parts[-2:] == GATE_MODEL)
    _edit_json(train_path, lambda data: data.update(model_info=MODEL_INFO))
    _edit_json(gold_path, lambda data: data.update(model_info={**MODEL_INFO, "mamba_backend": "mamba_ssm"}))
    html = build_report(pairs, tmp_path / "report.html").read_text()
    provenance = html[html.index('id="provenance"') :]
    details = provenance[provenance.index("Model details") : provenance.index("Package versions")]
    assert "2 different values" in details
    assert "mamba_ssm" in details and "taobao_synthetic/dcnv2/seed1 eval (checkpoint)" in details


def test_no_model_details_without_model_info(report):
    assert "Model details" not in report and 'class="detail model-info"' not in report


REFERENCES = {
    "taobao_synthetic": {
        "metric": "valid_auc",
        "source": "Paper X (2024), Table 3",
        # deepfm: ours 0.6650; dcnv2: ours 0.6600 with a reference higher than every value of ours
        "values": {"deepfm": 0.6530, "dcnv2": 0.9000, "din": 0.7},
    }
}


def test_reference_column_with_difference_only_where_references_are_given(tmp_path):
    pairs = _write_results(tmp_path / "results")
    html = render_report(load_entries(pairs), tmp_path / "report.html", references=REFERENCES).read_text()
    parsed = _parse(html)

    headers = parsed.headers["taobao_synthetic"]
    key = "reference:label:valid_auc"
    assert headers[headers.index("label:valid_auc") + 1] == key  # right after the column it is compared to
    assert not [h for h in parsed.headers["criteo_synthetic"] if h.startswith("reference")]
    assert not [key for key in parsed.cells if key[0] == "criteo_synthetic" and key[2].startswith("reference")]
    assert "Val AUC" in parsed.header_details[("taobao_synthetic", key)]

    def cell(model: str) -> tuple[str, bool]:
        return parsed.cells[("taobao_synthetic", model, key)]

    def detail(model: str) -> str:
        return parsed.details[("taobao_synthetic", model, key)]

    assert cell("deepfm")[0].startswith("0.6530") and detail("deepfm") == "+0.0120"
    assert cell("dcnv2")[0].startswith("0.9000") and detail("dcnv2") == "-0.2400"
    assert cell("autoint")[0].strip() == "—" and detail("autoint") == ""
    # never marked best, and the best of our own column is unchanged by it
    assert not any(cell(model)[1] or "★" in cell(model)[0] for model in RESULTS["taobao_synthetic"])
    assert parsed.cells[("taobao_synthetic", "deepfm", "label:valid_auc")][1]

    taobao = _section(html, "taobao_synthetic")
    assert "Paper X (2024), Table 3" in taobao and "Paper X" not in _section(html, "criteo_synthetic")
    assert "Reference values without a result in this section: din." in taobao


def test_reference_on_gold_auc_is_compared_with_our_gold_auc(tmp_path):
    pairs = _write_results(tmp_path / "results")
    references = {"criteo_synthetic": {"metric": "gold_auc", "source": "s", "values": {"autoint": 0.7751}}}
    html = render_report(load_entries(pairs), tmp_path / "report.html", references=references).read_text()
    parsed = _parse(html)
    headers = parsed.headers["criteo_synthetic"]
    assert headers[headers.index("label:gold_auc") + 1] == "reference:label:gold_auc"
    assert "Gold AUC" in parsed.header_details[("criteo_synthetic", "reference:label:gold_auc")]
    assert parsed.details[("criteo_synthetic", "autoint", "reference:label:gold_auc")] == "+0.0050"  # 0.7801 - 0.7751
    assert not [h for h in parsed.headers["taobao_synthetic"] if h.startswith("reference")]


def test_several_references_each_beside_its_task_and_metric(tmp_path):
    """A multi-task paper's table: one reference per (task, metric), each right after the column it is compared to."""
    pairs = _write_results(tmp_path / "results")
    references = {
        "criteo_synthetic": [
            {"metric": "gold_auc", "source": "Table 1", "values": {"autoint": 0.7751}, "runs": 5},
            {"metric": "gold_logloss", "source": "Table 1", "values": {"deepfm": 0.5}, "runs": 1},
        ]
    }
    html = render_report(load_entries(pairs), tmp_path / "report.html", references=references).read_text()
    parsed = _parse(html)
    assert "Reference (Gold AUC): Table 1 (each the mean of 5 runs)." in html
    assert "Reference (Gold logloss): Table 1 (a single run)." in html
    headers = parsed.headers["criteo_synthetic"]
    assert headers[headers.index("label:gold_auc") + 1] == "reference:label:gold_auc"
    assert headers[headers.index("label:gold_logloss") + 1] == "reference:label:gold_logloss"
    assert parsed.details[("criteo_synthetic", "autoint", "reference:label:gold_auc")] == "+0.0050"
    twice = {"criteo_synthetic": [references["criteo_synthetic"][0]] * 2}
    with pytest.raises(ValueError, match="two references of one task and metric"):
        render_report(load_entries(pairs), tmp_path / "again.html", references=twice)


def test_no_reference_column_without_references(report):
    parsed = _parse(report)
    assert not [h for headers in parsed.headers.values() for h in headers if h.startswith("reference")]
    assert "Reference" not in report


@pytest.mark.parametrize(
    "reference, message",
    [
        ({"metric": "accuracy", "values": {}}, "metric must be one of"),
        ({"metric": "valid_auc", "values": {"deepfm": "0.7"}}, "finite number"),
        ({"metric": "valid_auc", "values": [0.7]}, "values must be a mapping"),
        ({"metric": "valid_auc", "values": {}, "runs": 0}, "runs must be a positive integer"),
    ],
)
def test_bad_references_are_refused_before_writing(tmp_path, reference, message):
    pairs = _write_results(tmp_path / "results")
    output = tmp_path / "report.html"
    with pytest.raises(ValueError, match=message):
        render_report(load_entries(pairs), output, references={"taobao_synthetic": reference})
    assert not output.exists()


def test_models_line_lists_the_union_and_per_dataset_lists_when_they_differ():
    config = {
        "benchmark": {"datasets": ["criteo_synthetic", "userbehavior_synthetic"], "models": ["a", "b"]},
        "datasets": {"criteo_synthetic": {}, "userbehavior_synthetic": {"models": ["c", "b", "d"]}},
    }
    by_dataset = dataset_models(config)
    assert by_dataset == {"criteo_synthetic": ["a", "b"], "userbehavior_synthetic": ["c", "b", "d"]}
    assert models_line(by_dataset) == "a, b, c, d (criteo_synthetic: a, b; userbehavior_synthetic: c, b, d)"
    config["datasets"]["userbehavior_synthetic"]["models"] = ["a", "b"]
    assert models_line(dataset_models(config)) == "a, b"


def test_config_references_takes_the_benchmark_datasets_that_have_one():
    reference = {"metric": "valid_auc", "source": "s", "values": {"a": 0.7}}
    config = {
        "benchmark": {"datasets": ["x", "y"], "models": ["a"]},
        "datasets": {"x": {"reference": reference}, "y": {}, "z": {"reference": reference}},
    }
    assert config_references(config) == {"x": reference}


VOID_ELEMENTS = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "source", "area", "base", "embed"}


class _Balance(HTMLParser):
    """Every non-void element closed, in order."""

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass  # <rect .../>: opens and closes

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'} (line {self.getpos()[0]})")
        else:
            self.stack.pop()


def test_report_with_gates_references_and_model_info_is_well_formed(tmp_path):
    pairs = _write_results(tmp_path / "results")
    _set_gate(pairs, *GATE_MODEL, distribution_summary(np.linspace(0.05, 0.95, 50)))
    _edit_json(pairs[0][0], lambda data: data.update(model_info=MODEL_INFO))
    missing = [("taobao_synthetic", "fibinet")]
    html = render_report(
        load_entries(pairs), tmp_path / "report.html", references=REFERENCES, missing=missing
    ).read_text()
    balance = _Balance()
    balance.feed(html)
    balance.close()
    assert balance.errors == [] and balance.stack == []
    svgs = re.findall(r"<svg\b.*?</svg>", html, flags=re.DOTALL)
    assert len(svgs) == 2 * 2 + 1  # scatter and curves per dataset, one gate histogram
    for svg in svgs:
        ET.fromstring(svg)  # each chart is well-formed XML
    # the missing row spans the table including the reference column
    parsed = _parse(html)
    span = re.search(r'<td class="missing-cell" colspan="(\d+)"', _section(html, "taobao_synthetic"))
    assert int(span.group(1)) == len(parsed.headers["taobao_synthetic"])


def test_a_multi_task_dataset_shows_one_column_group_per_task(tmp_path):
    pairs = _write_results(tmp_path / "results", {"criteo_synthetic": RESULTS["criteo_synthetic"]})
    likes = {"deepfm": 0.61, "dcnv2": 0.58, "autoint": 0.64}  # another best model than click's

    def two_tasks(path, record_kind):
        def edit(data):
            model = data["model"]
            if record_kind == "train":
                data["tasks"] = ["label", "like"]
                data["best_valid"]["like"] = _metrics(0.3, likes[model], None)
                for epoch in data["epochs"]:
                    epoch["valid"]["like"] = _metrics(0.3, likes[model], None)
            else:
                data["tasks"]["like"] = _metrics(0.3, likes[model], None)
                aucs = {"label": data["tasks"]["label"]["auc"], "like": likes[model]}
                data["predictions"]["sha256"] = _write_predictions(path.parent, "criteo_synthetic", aucs)

        _edit_json(path, edit)

    for train_path, gold_path in pairs:
        two_tasks(train_path, "train")
        two_tasks(gold_path, "gold")
    html = build_report(pairs, tmp_path / "report.html").read_text()
    parsed = _parse(html)
    headers = parsed.headers["criteo_synthetic"]
    assert headers[:8] == [f"{t}:{m}" for t in ("label", "like") for m in ("gold_logloss", "gold_auc", "gold_gauc", "valid_auc")]
    assert headers[8:11] == ["mean:gold_logloss", "mean:gold_auc", "mean:gold_gauc"]
    assert re.findall(r'data-group="([^"]*)"', html) == ["label", "like", "mean over tasks", ""]  # "": the cost columns
    assert "task: like" in html and "mean gold AUC over the tasks" in html
    marked = [m for m in likes if parsed.cells[("criteo_synthetic", m, "like:gold_auc")][1]]
    assert marked == ["autoint"]
    assert [m for m in likes if parsed.cells[("criteo_synthetic", m, "label:gold_auc")][1]] == ["dcnv2"]
    # the mean over the tasks, computed here from the two tasks' cells
    number = lambda model, key: float(parsed.cells[("criteo_synthetic", model, key)][0].split()[0])  # "0.7834 ★"
    for model in likes:
        mean = (number(model, "label:gold_auc") + number(model, "like:gold_auc")) / 2
        assert number(model, "mean:gold_auc") == pytest.approx(mean, abs=1e-4)
    assert [m for m in likes if parsed.cells[("criteo_synthetic", m, "mean:gold_auc")][1]] == ["autoint"]
    # a chart per task, after the section's mean chart
    section = _section(html, "criteo_synthetic")
    assert section.count('class="task-chart"') == 2
    assert "Gold AUC of label vs peak memory" in section and "Gold AUC of like vs peak memory" in section


def test_results_of_one_dataset_with_other_tasks_are_refused(tmp_path):
    pairs = _write_results(tmp_path / "results", {"criteo_synthetic": RESULTS["criteo_synthetic"]})
    train_path, gold_path = pairs[0]  # criteo_synthetic/deepfm: a second task, which the other models lack

    def add_like(data):
        if "best_valid" in data:
            data["tasks"].append("like")
            data["best_valid"]["like"] = _metrics(0.3, 0.6, None)
        else:
            data["tasks"]["like"] = _metrics(0.3, 0.6, None)

    _edit_json(train_path, add_like)
    _edit_json(gold_path, add_like)
    with pytest.raises(ValueError, match=r"dataset 'criteo_synthetic': deepfm has tasks \['label', 'like'\] but dcnv2 has \['label'\]"):
        build_report(pairs, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_results_scored_with_another_event_table_are_refused(tmp_path):
    """Gold rows point into the dataset's event table: results scored with another one are not comparable."""
    pairs = _write_results(tmp_path / "results")
    _edit_json(tmp_path / "results" / "taobao_synthetic" / "autoint" / "gold_eval.json", lambda d: d.update(events_sha256="f" * 64))
    with pytest.raises(GoldHashMismatch, match=r"autoint: gold_sha256 b{64} \(events ffffffffffff\)"):
        build_report(pairs, tmp_path / "report.html")


def test_a_reference_without_a_task_and_one_naming_the_first_task_are_one_column(tmp_path):
    pairs = _write_results(tmp_path / "results")
    same = {"criteo_synthetic": [{"metric": "gold_auc", "source": "a", "values": {"dcnv2": 0.7}},
                                 {"metric": "gold_auc", "task": "label", "source": "b", "values": {"dcnv2": 0.8}}]}  # fmt: skip
    with pytest.raises(ValueError, match="two references of one task and metric"):
        render_report(load_entries(pairs), tmp_path / "report.html", references=same)
    assert not (tmp_path / "report.html").exists()


def test_length_charts_draw_one_line_per_configuration_through_its_lengths(tmp_path):
    """A dataset whose models read histories of several lengths gets three charts against the length: one line per
    (arch, params) through its lengths, named after the arch, or after its longest model where the arch runs in
    several configurations. A dataset of one length (or none) gets no length charts."""
    pairs = _write_results(tmp_path / "results")
    runs = {  # model -> (arch, params, history length): one DIN configuration at 50 and 500, another at 500
        "deepfm": ("din", {"d": 8}, 50), "dcnv2": ("din", {"d": 8}, 500), "autoint": ("din", {"d": 16}, 500),
    }  # fmt: skip
    for train_path, gold_path in pairs:
        if train_path.parent.parent.name != "taobao_synthetic":
            continue
        arch, params, length = runs[train_path.parent.name]

        def edit(record, arch=arch, params=params, length=length):
            record.update(arch=arch, params=params, history_lengths={"click": length})
            record["cost"]["forward_flops_per_sample"] = 1000.0 * length

        _edit_json(train_path, edit)
        _edit_json(gold_path, lambda record, arch=arch: record.update(arch=arch))
    html = render_report(load_entries(pairs), tmp_path / "out" / "report.html", run_info={}).read_text()
    section = _section(html, "taobao_synthetic")
    charts = section.split('<figure class="length-chart">')[1:]
    assert len(charts) == 3 and "FLOPs per sample vs history length" in charts[1]
    for chart in charts:
        assert chart.count("<polyline") == 2  # the two DIN configurations apart
        # arch din runs in two configurations: each line is named after its longest model
        assert "<title>dcnv2</title>" in chart and "<title>autoint</title>" in chart
    points = lambda chart, name: chart.split(f"<title>{name}</title>")[1].split('points="')[1].split('"')[0].split()
    assert len(points(charts[1], "dcnv2")) == 2 and len(points(charts[1], "autoint")) == 1  # through 50 and 500
    assert 'class="length-chart"' not in _section(html, "criteo_synthetic")  # no history lengths there
