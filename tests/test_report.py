"""The HTML report, rendered from synthetic result files written into tmp_path."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ctrbench.report import GoldHashMismatch, build_report, load_entries, render_report
from ctrbench.report.build import DEFAULT_TEMPLATE_DIR, format_bytes, format_count, format_duration, format_rate

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
RESULTS = {
    dataset: {model: dict(zip(FIELDS, row)) for model, row in models.items()} for dataset, models in TABLE.items()
}

# table column -> (field in RESULTS, whether higher is better)
COLUMN_FIELDS = {
    "gold_logloss": ("logloss", False),
    "gold_auc": ("auc", True),
    "gold_gauc": ("gauc", True),
    "valid_auc": ("valid_auc", True),
    "params": ("params", False),
    "optimizer_state": ("opt", False),
    "peak_memory": ("mem", False),
    "samples_per_s": ("sps", True),
    "train_time": ("secs", False),
}

GOLD_HASH = {"criteo_synthetic": "a" * 64, "taobao_synthetic": "b" * 64}


def _provenance() -> dict:
    return {
        "packages": {"python": "3.11.7", "ctrbench": "0.1.0", "torch": "2.13.0"},
        "git_commit": "abc123",
        "config_sha256": "c0ffee" * 10,
        "host": "testhost",
    }


def _train_metrics(dataset: str, model: str, r: dict) -> dict:
    epochs = [
        {
            "epoch": e,
            "train_loss": 0.5 - 0.01 * e,
            "valid_logloss": 0.47,
            "valid_auc": r["valid_auc"] - 0.01 * (3 - e),
            "epoch_seconds": r["secs"] / 3,
            "samples_per_s": r["sps"],
        }
        for e in (1, 2, 3)
    ]
    return {
        "dataset": dataset,
        "model": model,
        "arch": model,
        "params": {},
        "training": {},
        "best_epoch": 3,
        "best_valid": {"logloss": 0.45, "auc": r["valid_auc"]},
        "stopped_early": False,
        "epochs": epochs,
        "cost": {
            "params_embedding": r["emb"],
            "params_dense": r["dense"],
            "param_bytes_embedding": 4 * r["emb"],
            "param_bytes_dense": 4 * r["dense"],
            "optimizer_state_bytes": r["opt"],
            "optimizer_state_bytes_by_group": {"embedding": 0, "dense": r["opt"]},
            "optimizers": {"embedding": "sgd", "dense": "adamw"},
            "peak_memory_bytes": r["mem"],
            "peak_memory_kind": "cpu_peak_rss",
            "train_samples_per_s": r["sps"],
            "train_seconds": r["secs"],
            "seconds_per_epoch": r["secs"] / 3,
            "device": "cpu",
            "device_name": "x86_64 CPU",
        },
        "provenance": _provenance(),
    }


def _gold_eval(dataset: str, model: str, r: dict) -> dict:
    metrics = {"logloss": r["logloss"], "auc": r["auc"], "accuracy": 0.8, "gauc": r["gauc"]}
    return {
        "dataset": dataset,
        "model": model,
        "arch": model,
        "rows": 2000,
        "metrics": metrics,
        "task_metrics": {"label": dict(metrics)},
        "gold_sha256": GOLD_HASH[dataset],
        "checkpoint_sha256": "d" * 64,
        "eval_seconds": 1.2,
        "device": "cpu",
        "provenance": _provenance(),
    }


def _write_results(root: Path, results: dict = RESULTS) -> list[tuple[Path, Path]]:
    pairs = []
    for dataset, models in results.items():
        for model, r in models.items():
            folder = root / dataset / model
            folder.mkdir(parents=True)
            (folder / "train_metrics.json").write_text(json.dumps(_train_metrics(dataset, model, r)))
            (folder / "gold_eval.json").write_text(json.dumps(_gold_eval(dataset, model, r)))
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
        self.missing_rows: set[tuple[str, str]] = set()
        self.svg_count: dict[str, int] = {}
        self._dataset = self._model = self._column = None
        self._best = False
        self._text: list[str] = []

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
            self._column, self._text = attrs["data-column"], []
            self._best = "best" in (attrs.get("class") or "").split()

    def handle_endtag(self, tag):
        if tag == "td" and self._column:
            self.cells[(self._dataset, self._model, self._column)] = ("".join(self._text), self._best)
            self._column = None
        elif tag == "section":
            self._dataset = None

    def handle_data(self, data):
        if self._column:
            self._text.append(data)


def _parse(html: str) -> _TableCells:
    parser = _TableCells()
    parser.feed(html)
    return parser


def _value(r: dict, field: str):
    return r["emb"] + r["dense"] if field == "params" else r[field]


@pytest.fixture
def report(tmp_path):
    pairs = _write_results(tmp_path / "results")
    output = render_report(load_entries(pairs), tmp_path / "out" / "report.html", run_info={"profile": "cpu"})
    return output.read_text(encoding="utf-8")


def test_every_model_appears_with_its_formatted_gold_auc(report):
    cells = _parse(report).cells
    for dataset, models in RESULTS.items():
        for model, r in models.items():
            text, _ = cells[(dataset, model, "gold_auc")]
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
        assert cells[("criteo_synthetic", model, "gold_gauc")][0].strip() == "n/a"
    assert cells[("taobao_synthetic", "dcnv2", "gold_gauc")][0].startswith("0.6230")


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
    manifest = {
        "rows": {"read": 1003, "written": 1000, "bad": 3},
        "splits": {"train": {"rows": 800, "label_rate": 0.25}, "valid": {"rows": 100, "label_rate": 0.25},
                   "gold": {"rows": 100, "label_rate": 0.25}},
    }
    html = render_report(load_entries(pairs), tmp_path / "report.html", manifests={dataset: manifest}).read_text()
    assert "data: train 800 · valid 100 · gold 100 rows; label rate 0.250; bad rows skipped: 3" in html
    assert html.count("data: train") == 1  # only the dataset whose manifest was given


def test_results_scored_on_another_gold_file_than_the_manifest_names_are_refused(tmp_path):
    pairs = _write_results(tmp_path / "results")
    entries = load_entries(pairs)
    dataset = entries[0].dataset
    stale = {dataset: {"outputs": {"gold": {"sha256": "0" * 64}}}}
    with pytest.raises(GoldHashMismatch, match="manifest: gold_sha256 0000"):
        render_report(entries, tmp_path / "report.html", manifests=stale)
    assert not (tmp_path / "report.html").exists()
    current = {dataset: {"outputs": {"gold": {"sha256": entries[0].gold_sha256}}}}
    assert render_report(entries, tmp_path / "report.html", manifests=current).exists()
