"""The report over several seeds: means with intervals, ties with the best marked by paired tests on the gold rows'
predictions, and the sanity flags (each raised on a result that deserves it, and not on one that does not)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_report import MIB, _gold_eval, _parse, _train_metrics

from ctrbench.data.manifest import DataManifest
from ctrbench.metrics import distribution_summary, task_metrics
from ctrbench.predictions import write_predictions
from ctrbench.report import build_report, load_entries
from ctrbench.report.entries import group_runs
from ctrbench.report.flags import constant_logloss, model_flags, small_gold_flag
from ctrbench.report.significance import dataset_significance
from ctrbench.statistics import mean_ci

ROWS = 3000
LABELS = (np.random.default_rng(0).random(ROWS) < 0.3).astype(np.float32)
# model -> how strongly its scores separate the classes: "twin" is "strong" again (other noise), "weak" clearly worse
SEPARATION = {"strong": 1.2, "twin": 1.2, "weak": 0.5}
COST = {"strong": (400 * MIB, 10_000.0), "twin": (100 * MIB, 12_000.0), "weak": (50 * MIB, 30_000.0)}


def _write_runs(root: Path, seeds=(1, 2, 3), separation=SEPARATION, rows=ROWS, labels=LABELS, cost=None) -> list[tuple[Path, Path]]:
    """Runs of each model and seed with predictions drawn here and records whose metrics are computed from them."""
    pairs = []
    for model, shift in separation.items():
        for seed in seeds:
            folder = root / "ds" / model / f"seed{seed}"
            folder.mkdir(parents=True)
            noise = np.random.default_rng([seed, int(shift * 100), len(model)]).normal(size=rows)
            probs = (1 / (1 + np.exp(-(labels * shift + noise - 1)))).astype(np.float32)
            metrics = task_metrics(["label"], labels[:, None], probs[:, None])["label"]
            memory, speed = (cost or COST).get(model, (MIB, 1.0))
            numbers = {"valid_auc": metrics["auc"], "emb": 1000, "dense": 100, "opt": 10, "mem": memory, "sps": speed, "secs": 10.0, "frozen": 0}
            train = _train_metrics("ds", model, numbers) | {"seed": seed}
            gold = _gold_eval("criteo_synthetic", model, {"logloss": 0, "auc": 0, "gauc": None}) | {"seed": seed, "rows": rows, "dataset": "ds"}
            gold["tasks"]["label"] = metrics
            gold["gold_sha256"] = "a" * 64
            sha = write_predictions(folder / "gold_predictions.parquet", ["label"], np.arange(rows), labels[:, None], probs[:, None])
            gold["predictions"] = {"file": "gold_predictions.parquet", "sha256": sha}
            (folder / "train_metrics.json").write_text(json.dumps(train))
            (folder / "gold_eval.json").write_text(json.dumps(gold))
            pairs.append((folder / "train_metrics.json", folder / "gold_eval.json"))
    return pairs


def test_several_seeds_show_means_intervals_and_ties_with_the_best(tmp_path):
    pairs = _write_runs(tmp_path / "results")
    html = build_report(pairs, tmp_path / "report.html").read_text()
    cells = _parse(html)
    results = {r.model: r for r in group_runs(load_entries(pairs))}
    for model, result in results.items():
        values = result.gold_values("label", "auc")
        mean, half = mean_ci(values)
        text, _ = cells.cells[("ds", model, "label:gold_auc")]
        assert text.startswith(f"{mean:.4f}")
        assert f"± {half:.4f}" in cells.details[("ds", model, "label:gold_auc")]
    best = max(results, key=lambda m: results[m].gold_metric("label", "auc"))
    assert best in ("strong", "twin")
    other = "twin" if best == "strong" else "strong"
    assert "≈" in cells.cells[("ds", other, "label:gold_auc")][0]  # as good as the best: a tie
    assert "≈" not in cells.cells[("ds", "weak", "label:gold_auc")][0]  # clearly worse
    assert "≈" not in cells.cells[("ds", best, "label:gold_auc")][0] and cells.cells[("ds", best, "label:gold_auc")][1]
    assert html.count('class="detail seeds">3 seeds<') == 3
    # the per-seed values and the test in the cell's tooltip
    assert f'seeds: 1 {results["weak"].gold_values("label", "auc")[0]:.4f}' in html
    assert f"vs {best}: " in html and "(Holm " in html
    # the chart: error bars, the Pareto front, the cheapest model tied with the best ringed
    assert html.count('class="error-bar"') >= 3 and 'class="pareto-front"' in html

    assert "cheapest not significantly worse than the best" in html and 'class="highlight"' in html


def test_significance_is_the_statistics_of_each_model_against_the_best_with_holm(tmp_path):
    from ctrbench.predictions import read_predictions
    from ctrbench.statistics import auc_difference, holm, logloss_difference

    results = group_runs(load_entries(_write_runs(tmp_path / "results", seeds=(1, 2))))
    found = dataset_significance(results)
    probs = {r.model: [read_predictions(run.predictions_path, ["label"]).probs[:, 0] for run in r.runs] for r in results}
    for metric, compare, pick in (("auc", auc_difference, max), ("logloss", logloss_difference, min)):
        best = pick(results, key=lambda r: r.gold_metric("label", metric)).model
        tested = found[("label", metric)]
        assert tested.best == best
        others = [r.model for r in results if r.model != best]
        expected = [compare(LABELS.astype(np.float64), probs[m], probs[best]) for m in others]
        adjusted = holm([d.p_value for d in expected])
        for model, difference, p_holm in zip(others, expected, adjusted):
            assert tested.versus[model].p_value == pytest.approx(difference.p_value, rel=1e-9)
            assert tested.versus[model].p_holm == pytest.approx(p_holm, rel=1e-9)
            assert tested.tied(model) == (p_holm >= 0.05)


def test_a_constant_model_s_log_loss_is_flagged_and_a_better_one_is_not(tmp_path):
    results = group_runs(load_entries(_write_runs(tmp_path / "results", seeds=(1,))))
    rate = float(LABELS.mean())
    for result in results:
        logloss = result.gold_metric("label", "logloss")
        flagged = any("no better than predicting the training label rate" in f for f in model_flags(result, {"label": rate}))
        assert flagged == (logloss >= constant_logloss(rate, rate))
    # a training rate far from the gold one makes the constant model worse: nothing is flagged
    assert not any("label rate" in f for r in results for f in model_flags(r, {"label": 0.9}))
    assert constant_logloss(0.3, 0.3) == pytest.approx(-(0.3 * np.log(0.3) + 0.7 * np.log(0.7)))


def _edited(tmp_path, edit) -> list:
    pairs = _write_runs(tmp_path / "results", seeds=(1, 2), separation={"strong": 1.2})
    for train_path, gold_path in pairs:
        train, gold = json.loads(train_path.read_text()), json.loads(gold_path.read_text())
        edit(train, gold)
        train_path.write_text(json.dumps(train))
        gold_path.write_text(json.dumps(gold))
    (result,) = group_runs(load_entries(pairs))
    return model_flags(result, {})


def test_validation_auc_at_chance_is_flagged_with_its_seed(tmp_path):
    def at_chance(train, gold):
        if train["seed"] == 2:
            train["best_valid"]["label"]["auc"] = 0.5

    assert any(f == "validation AUC at or below 0.5 (seed 2)" for f in _edited(tmp_path / "a", at_chance))
    assert not any("0.5" in f for f in _edited(tmp_path / "b", lambda train, gold: None))


def test_best_epoch_last_first_or_between(tmp_path):
    def stopped(best, early):
        def edit(train, gold):
            train["best_epoch"], train["stopped_early"] = best, early
            train["training"] = {"max_epochs": 3}

        return edit

    last = _edited(tmp_path / "last", stopped(3, False))
    assert any(f.startswith("best epoch is the last of 3") and "undertrained" in f for f in last)
    first = _edited(tmp_path / "first", stopped(1, True))
    assert any(f.startswith("best epoch is the first") for f in first)
    assert not any("best epoch" in f for f in _edited(tmp_path / "middle", stopped(2, True)))


def test_a_collapsed_gate_is_flagged_and_a_balanced_one_is_not(tmp_path):
    def gate(values, margin=0.02):
        def edit(train, gold):
            gold["extra_outputs"] = [{
                "key": "gate", "title": "gate g", "axis_label": "g", "reading": "r", "kind": "distribution",
                "shape": [len(values)], "summary": distribution_summary(values), "collapse_margin": margin,
                "collapse_warning": "the fusion collapsed onto one branch",
            }]  # fmt: skip

        return edit

    collapsed = _edited(tmp_path / "one", gate(np.full(50, 0.995)))
    assert any(f.startswith("gate g: gold mean 0.995") and f.endswith("the fusion collapsed onto one branch") for f in collapsed)
    assert not any("gate" in f for f in _edited(tmp_path / "mid", gate(np.linspace(0.2, 0.8, 50))))
    assert not any("gate" in f for f in _edited(tmp_path / "none", gate(np.full(50, 0.995), margin=None)))


def test_a_gold_split_too_small_for_the_gaps_is_flagged_and_a_large_one_is_not(tmp_path):
    small_labels = LABELS[:150]
    close = {"a": 1.0, "b": 0.97, "c": 0.94}
    for root, rows, labels, expected in ((tmp_path / "small", 150, small_labels, True), (tmp_path / "large", ROWS, LABELS, False)):
        far = close if expected else {"a": 1.6, "b": 0.9, "c": 0.2}
        results = group_runs(load_entries(_write_runs(root, seeds=(1,), separation=far, rows=rows, labels=labels, cost={})))
        (significance,) = [s for key, s in dataset_significance(results).items() if key == ("label", "auc")]
        flag = small_gold_flag(significance, rows)
        assert (flag is not None) == expected, flag
        if expected:
            assert f"with {rows:,} rows" in flag and "DeLong" in flag
        # the flag's numbers: the median gap and paired half-width over the neighbouring pairs
        assert len(significance.neighbours) == 2
        half = float(np.median([h for _, h in significance.neighbours]))
        assert (half > float(np.median([g for g, _ in significance.neighbours]))) == expected


def test_the_training_label_rate_comes_from_the_manifest():
    from ctrbench.report.flags import train_label_rates

    manifest = DataManifest.model_construct(splits={"train": type("S", (), {"rows": 100, "positives": 25, "task_positives": {}})()})
    assert train_label_rates(manifest, ["label"]) == {"label": 0.25}
    multi = DataManifest.model_construct(splits={"train": type("S", (), {"rows": 100, "positives": 0, "task_positives": {"a": 10, "b": 40}})()})
    assert train_label_rates(multi, ["a", "b"]) == {"a": 0.1, "b": 0.4}
    assert train_label_rates(None, ["a"]) == {}


def test_a_partial_report_names_the_missing_seeds_and_the_models_with_none(tmp_path):
    pairs = _write_runs(tmp_path / "results", seeds=(1, 2))
    finished = [pair for pair in pairs if "weak" not in str(pair[0]) and "seed2" not in str(pair[0]) or "strong" in str(pair[0])]
    missing = [("ds", "twin", 2), ("ds", "weak", 1), ("ds", "weak", 2)]
    html = build_report(finished, tmp_path / "partial.html", missing=missing).read_text()
    assert "twin: seed 2 missing, the mean is over the seeds that finished" in html
    assert ("ds", "weak") in _parse(html).missing_rows and ("ds", "twin") not in _parse(html).missing_rows
    with pytest.raises(ValueError, match="listed as missing but results were given: ds/strong/1"):
        build_report(finished, tmp_path / "bad.html", missing=[("ds", "strong", 1)])


def test_the_pareto_front_takes_the_cost_s_direction():
    from ctrbench.report.section_charts import pareto_front

    points = {"cheap": (1.0, 0.70), "mid": (2.0, 0.75), "dominated": (3.0, 0.74), "best": (4.0, 0.80)}
    assert pareto_front(points, "min") == {"cheap", "mid", "best"}
    # samples/s: more is cheaper; here the fastest model is also the best, so it alone is on the front
    assert pareto_front(points, "max") == {"best"}
    assert pareto_front({"a": (1.0, 0.7), "b": (1.0, 0.7)}, "min") == {"a", "b"}  # equal points dominate neither


def test_the_chart_s_cost_is_chosen_and_checked(tmp_path):
    pairs = _write_runs(tmp_path / "results", seeds=(1,))
    html = build_report(pairs, tmp_path / "r.html", cost="samples_per_s").read_text()
    assert "Gold AUC vs training samples/s" in html
    with pytest.raises(ValueError, match="cost 'speed' is not one of peak_memory, params, flops, samples_per_s"):
        build_report(pairs, tmp_path / "bad.html", cost="speed")


def test_runs_of_other_gold_rows_or_other_settings_are_refused(tmp_path):
    from ctrbench.predictions import PredictionsError

    pairs = _write_runs(tmp_path / "a", seeds=(1,), separation={"strong": 1.2})
    pairs += _write_runs(tmp_path / "b", seeds=(2,), separation={"weak": 0.5}, rows=ROWS - 1, labels=LABELS[:-1])
    with pytest.raises(PredictionsError, match="does not hold the gold rows and labels of"):
        build_report(pairs, tmp_path / "r.html")
    two = _write_runs(tmp_path / "c", seeds=(1, 2), separation={"strong": 1.2})
    train = json.loads(two[1][0].read_text())
    two[1][0].write_text(json.dumps(train | {"config_sha256": "f" * 64}))
    with pytest.raises(ValueError, match="ds/strong: its seeds were trained with different settings"):
        build_report(two, tmp_path / "r.html")


def test_masked_tasks_are_compared_on_their_known_rows(tmp_path):
    """A multi-task dataset whose second task is known on half the rows: its tests use those rows only."""
    from ctrbench.predictions import read_predictions
    from ctrbench.statistics import auc_difference

    rng = np.random.default_rng(3)
    labels = (rng.random((ROWS, 2)) < 0.3).astype(np.float32)
    mask = np.ones((ROWS, 2), bool)
    mask[::2, 1] = False
    pairs = []
    for model, shift in {"a": 1.2, "b": 0.8}.items():
        folder = tmp_path / "ds" / model / "seed1"
        folder.mkdir(parents=True)
        probs = (1 / (1 + np.exp(-(labels * shift + rng.normal(size=labels.shape) - 1)))).astype(np.float32)
        metrics = task_metrics(["click", "like"], labels, probs, mask=mask)
        numbers = {"valid_auc": 0.7, "emb": 1, "dense": 1, "opt": 1, "mem": MIB, "sps": 1.0, "secs": 1.0, "frozen": 0}
        train = _train_metrics("ds", model, numbers) | {"tasks": ["click", "like"]}
        train["best_valid"] = {task: metrics[task] for task in ("click", "like")}
        gold = _gold_eval("criteo_synthetic", model, {"logloss": 0, "auc": 0, "gauc": None}) | {"dataset": "ds", "rows": ROWS, "tasks": metrics}
        sha = write_predictions(folder / "gold_predictions.parquet", ["click", "like"], np.arange(ROWS), labels, probs, mask)
        gold["predictions"] = {"file": "gold_predictions.parquet", "sha256": sha}
        (folder / "train_metrics.json").write_text(json.dumps(train))
        (folder / "gold_eval.json").write_text(json.dumps(gold))
        pairs.append((folder / "train_metrics.json", folder / "gold_eval.json"))
    found = dataset_significance(group_runs(load_entries(pairs)))
    like = found[("like", "auc")]
    assert like.best == "a"
    a, b = (read_predictions(p[1].parent / "gold_predictions.parquet", ["click", "like"]) for p in pairs)
    _, known_labels, a_probs = a.task("like")
    expected = auc_difference(known_labels, [b.task("like")[2]], [a_probs])
    assert len(known_labels) == ROWS // 2
    assert like.versus["b"].p_value == pytest.approx(expected.p_value, rel=1e-9)
    assert like.versus["b"].difference == pytest.approx(expected.difference, abs=1e-12)


def test_an_interval_wider_than_auc_s_range_is_drawn_within_it(tmp_path):
    import re

    from ctrbench.report.section_charts import quality_cost_chart

    results = group_runs(load_entries(_write_runs(tmp_path / "results", seeds=(1,))))
    colors = {r.model: "#000000" for r in results}
    svg = str(quality_cost_chart(results, colors, ["label"], "peak_memory", None, {"weak": 5.0}))
    numbers = [float(t) for t in re.findall(r">(-?\d+(?:\.\d+)?)</text>", svg)]  # the y ticks (x ticks are MiB)
    assert numbers and min(numbers) >= 0.0 and max(numbers) <= 1.0
    assert "± 5.0000" in svg and svg.count('class="error-bar"') == 1
