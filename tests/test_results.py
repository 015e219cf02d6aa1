"""The result contract and the feature map are versioned: another version or kind is refused plainly."""

import json

import pytest

from ctrbench.data.schema import FeatureMap, FeatureMapError
from ctrbench.results import RESULT_VERSION, GoldRecord, ResultError, TrainRecord, read_record, write_record


@pytest.fixture
def records(tiny_processed, tmp_path):
    from test_trainer import _train

    from ctrbench.evaluate import evaluate_gold

    _, outputs = _train(tiny_processed, tmp_path, training={**__import__("test_trainer").TRAINING, "max_epochs": 1})
    evaluate_gold(checkpoint_path=outputs.checkpoint, gold_path=tiny_processed["gold"], output_path=tmp_path / "gold.json", device="cpu")
    return {"train": outputs.metrics, "gold": tmp_path / "gold.json"}


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_a_record_of_a_future_version_is_refused_naming_the_file(records):
    _edit(records["train"], lambda d: d.update(version=RESULT_VERSION + 1))
    with pytest.raises(ResultError, match=rf"train_metrics.json: ctrbench.train version {RESULT_VERSION + 1} is not the version {RESULT_VERSION} .*update ctrbench"):
        read_record(records["train"], TrainRecord)


def test_an_unversioned_result_of_ctrbench_0_1_asks_for_a_rerun(records):
    _edit(records["gold"], lambda d: [d.pop("kind"), d.pop("version")])
    with pytest.raises(ResultError, match="before ctrbench.gold_eval records were versioned; .* rerun"):
        read_record(records["gold"], GoldRecord)


def test_the_wrong_kind_an_unknown_field_and_a_missing_field_are_refused(records):
    with pytest.raises(ResultError, match="expected a 'ctrbench.train' record, found kind 'ctrbench.gold_eval'"):
        read_record(records["gold"], TrainRecord)
    _edit(records["gold"], lambda d: d.update(surprise=1))
    with pytest.raises(ResultError, match="surprise: Extra inputs are not permitted"):
        read_record(records["gold"], GoldRecord)
    _edit(records["train"], lambda d: d["cost"].pop("peak_memory_bytes"))
    with pytest.raises(ResultError, match="cost.peak_memory_bytes: Field required"):
        read_record(records["train"], TrainRecord)


def test_records_round_trip(records, tmp_path):
    record = read_record(records["train"], TrainRecord)
    write_record(tmp_path / "again.json", record)
    assert read_record(tmp_path / "again.json", TrainRecord) == record


def test_feature_map_versions(tiny_processed):
    data = json.loads(tiny_processed["feature_map"].read_text())
    assert data["format_version"] == 2 and data["tasks"] == [{"name": "label", "weight": 1.0, "mask": None}]
    with pytest.raises(FeatureMapError, match="format_version 3; this ctrbench reads 1 and 2"):
        FeatureMap.from_json({**data, "format_version": 3})
    unknown = {**data, "features": data["features"] + [{"name": "title", "type": "text_tokens"}]}
    with pytest.raises(FeatureMapError, match="feature 'title' has kind 'text_tokens', which this ctrbench does not know"):
        FeatureMap.from_json(unknown)


def test_a_version_1_feature_map_is_upgraded():
    v1 = {
        "dataset": "ub", "labels": ["label"], "group_by": "user_id", "format_version": 1, "extra": {},
        "features": [
            {"name": "item_id", "type": "categorical", "vocab_size": 9, "max_len": None, "shares_vocab_with": None},
            {"name": "item_history", "type": "sequence", "vocab_size": 9, "max_len": 20, "shares_vocab_with": "item_id"},
        ],
    }  # fmt: skip
    fm = FeatureMap.from_json(v1)
    assert fm.labels == ["label"] and fm.tasks[0].weight == 1.0
    assert [g.name for g in fm.sequence_groups] == ["history"] and fm.max_len(fm.sequences[0]) == 20


def test_the_facts_written_in_two_places_agree():
    """The record's quantile fields are distribution_summary's; the config schema's precisions are the records'."""
    from pathlib import Path

    import yaml

    from ctrbench.metrics import QUANTILES
    from ctrbench.results import PRECISIONS, Quantiles

    assert list(Quantiles.model_fields) == list(QUANTILES)
    schema = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "schema.yaml").read_text())
    assert tuple(schema["definitions"]["training"]["properties"]["precision"]["enum"]) == PRECISIONS
