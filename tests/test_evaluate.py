"""Gold evaluation of a model's self-described extra outputs (a per-sample "gate"), model_info, and distribution_summary."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from torch import nn

from ctrbench.data.batch import Batch
from ctrbench.data.schema import FeatureMap
from ctrbench.evaluate import evaluate_gold
from ctrbench.metrics import distribution_summary
from ctrbench.models import registry
from ctrbench.models.base import CTRModel, ModelOutput, OutputDescription
from ctrbench.train.checkpoint import save_checkpoint

ARCH = "test_evaluate_gate_model"
VOCAB = 20  # the tiny_processed fixture's categorical vocabulary


class GateModel(CTRModel):
    """Logits from a linear layer over the dense features; the gate is (c0 + 0.5) / 20.

    Those gate values are exact in float32 and sit in the middle of the 20 default bins of width
    0.05, so the histogram counts must equal np.bincount(c0) with no rounding at the edges.
    """

    arch = ARCH

    def __init__(self, feature_map: FeatureMap, *, sparse_embeddings: bool = False, gate: str = "flat"):
        super().__init__(feature_map, sparse_embeddings=sparse_embeddings)
        self.gate = gate  # "flat": [B], "column": [B, 1], "none": no aux output
        self.linear = nn.Linear(len(feature_map.dense), feature_map.num_tasks)

    def model_info(self) -> dict:
        return {"gate_layout": self.gate}

    def extra_outputs(self) -> list[OutputDescription]:
        if self.gate == "none":
            return []
        return [OutputDescription("gate", "test gate", "g", "g=(c0+0.5)/20")]

    def forward(self, batch: Batch) -> ModelOutput:
        output = ModelOutput(self.linear(batch.dense))
        gate = (batch.categorical[:, 0].float() + 0.5) / VOCAB
        if self.gate == "flat":
            output.aux["gate"] = gate
        elif self.gate == "column":
            output.aux["gate"] = gate.unsqueeze(1)
        return output


# a test-only arch beside the built-in ones (registered once, however often the module is imported)
if ARCH not in registry.MODELS:
    registry.register(GateModel)


KEEP = object()  # leave the checkpoint's model_info as save_checkpoint wrote it


def _checkpoint(tmp_path, fixture: dict, gate: str, model_info=None):
    """A checkpoint through the trainer's save_checkpoint; ``model_info``: None removes the key (a
    checkpoint from before model_info existed), a dict replaces it, KEEP leaves it."""
    feature_map = FeatureMap.load(fixture["feature_map"])
    torch.manual_seed(0)
    model = registry.build_model(ARCH, feature_map, {"gate": gate})
    path = tmp_path / f"{gate}.pt"
    save_checkpoint(path, model, ARCH, {"gate": gate}, epoch=2, precision="fp32")
    if model_info is not KEEP:
        ckpt = torch.load(path, weights_only=True)
        ckpt.pop("model_info", None)
        if model_info is not None:
            ckpt["model_info"] = model_info
        torch.save(ckpt, path)
    return path


def _evaluate(tmp_path, fixture: dict, gate: str, model_info=None) -> tuple[dict, dict]:
    output = tmp_path / f"gold_eval_{gate}.json"
    returned = evaluate_gold(
        checkpoint_path=_checkpoint(tmp_path, fixture, gate, model_info),
        gold_path=fixture["gold"],
        output_path=output,
        batch_size=100,  # several batches, the last one short
        device="cpu",
        meta={"dataset": "tiny", "model": gate},
    )
    return returned.model_dump(), json.loads(output.read_text())


def _expected_gates(fixture: dict) -> tuple[np.ndarray, np.ndarray]:
    c0 = pq.read_table(fixture["gold"], columns=["c0"]).column("c0").to_numpy()
    return c0, (c0.astype(np.float32) + np.float32(0.5)) / np.float32(VOCAB)


@pytest.mark.parametrize("gate, shape", [("flat", lambda n: [n]), ("column", lambda n: [n, 1])])
def test_gold_eval_summarises_the_gate(tmp_path, tiny_processed, gate, shape):
    returned, written = _evaluate(tmp_path, tiny_processed, gate)
    assert returned == written
    c0, values = _expected_gates(tiny_processed)
    (extra,) = written["extra_outputs"]
    assert (extra["key"], extra["title"], extra["axis_label"], extra["reading"]) == ("gate", "test gate", "g", "g=(c0+0.5)/20")
    summary = extra["summary"]
    assert extra["shape"] == shape(len(c0))
    assert summary["count"] == len(c0) == written["rows"]
    histogram = summary["histogram"]
    assert histogram["edges"] == pytest.approx(np.linspace(0, 1, 21).tolist())
    assert histogram["counts"] == np.bincount(c0, minlength=VOCAB).tolist()
    assert histogram["counts"] == np.histogram(values, bins=20, range=(0, 1))[0].tolist()
    assert histogram["below"] == histogram["above"] == 0
    assert summary["mean"] == pytest.approx(values.astype(np.float64).mean(), abs=1e-9)
    assert summary["std"] == pytest.approx(values.astype(np.float64).std(), abs=1e-9)
    assert summary["min"] == pytest.approx(values.min()) and summary["max"] == pytest.approx(values.max())
    for name, q in {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}.items():
        assert summary["quantiles"][name] == pytest.approx(np.quantile(values.astype(np.float64), q), abs=1e-9)
    assert written["model_info"] == {}


def test_gold_eval_of_a_model_without_extra_outputs_has_none(tmp_path, tiny_processed):
    _, written = _evaluate(tmp_path, tiny_processed, "none")
    assert written["extra_outputs"] == []
    assert written["tasks"]["label"]["auc"] is not None  # the ordinary metrics are still there


def test_gold_eval_copies_model_info_from_the_checkpoint(tmp_path, tiny_processed):
    info = {"sequence_encoder": "mamba", "mamba_backend": "torch"}
    _, written = _evaluate(tmp_path, tiny_processed, "flat", model_info=info)
    assert written["model_info"] == info


def test_model_info_goes_from_the_model_through_the_checkpoint_into_gold_eval(tmp_path, tiny_processed):
    _, written = _evaluate(tmp_path, tiny_processed, "column", model_info=KEEP)
    assert written["model_info"] == {"gate_layout": "column"}


# ---------------------------------------------------------------- distribution_summary


def test_distribution_summary_counts_values_outside_the_range_separately():
    values = np.array([-0.5, -0.01, 0.0, 0.1, 0.25, 0.5, 0.999, 1.0, 1.0001, 3.0])
    summary = distribution_summary(values, bins=4)
    histogram = summary["histogram"]
    assert histogram["edges"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # [0, .25): 0.0, 0.1 | [.25, .5): 0.25 | [.5, .75): 0.5 | [.75, 1]: 0.999, 1.0 (last bin closed)
    assert histogram["counts"] == [2, 1, 1, 2]
    assert (histogram["below"], histogram["above"]) == (2, 2)
    assert sum(histogram["counts"]) + histogram["below"] + histogram["above"] == summary["count"] == len(values)
    assert summary["min"] == -0.5 and summary["max"] == 3.0
    assert summary["mean"] == pytest.approx(values.mean())


def test_distribution_summary_matches_numpy_on_random_values():
    values = np.random.default_rng(3).beta(2, 5, size=(700, 3))
    summary = distribution_summary(values, bins=10, value_range=(0.0, 1.0))
    flat = values.reshape(-1)
    assert summary["count"] == flat.size
    assert summary["histogram"]["counts"] == np.histogram(flat, bins=10, range=(0, 1))[0].tolist()
    assert summary["std"] == pytest.approx(flat.std())
    assert summary["quantiles"]["p95"] == pytest.approx(np.quantile(flat, 0.95))
    assert summary["quantiles"]["p05"] < summary["quantiles"]["p50"] < summary["quantiles"]["p95"]
    json.dumps(summary, allow_nan=False)  # plain JSON: Python floats and ints only


@pytest.mark.parametrize(
    "values, options, message",
    [
        ([0.2, float("nan"), 0.4], {}, "NaN"),
        ([0.2, float("inf")], {}, "infinite"),
        ([], {}, "empty"),
        ([0.5], {"bins": 0}, "bins"),
        ([0.5], {"value_range": (1.0, 1.0)}, "value_range"),
    ],
)
def test_distribution_summary_rejects_bad_input(values, options, message):
    with pytest.raises(ValueError, match=message):
        distribution_summary(values, **options)


def test_gold_eval_writes_the_rows_predictions_that_give_its_metrics(tmp_path, tiny_processed):
    from ctrbench.metrics import task_metrics
    from ctrbench.predictions import read_predictions
    from ctrbench.provenance import sha256_file

    _, written = _evaluate(tmp_path, tiny_processed, "flat")
    path = tmp_path / written["predictions"]["file"]
    assert written["predictions"] == {"file": "gold_predictions.parquet", "sha256": sha256_file(path)}
    found = read_predictions(path, ["label"], written["predictions"]["sha256"])
    assert len(found.row_id) == written["rows"] == 512
    gold = pq.read_table(tiny_processed["gold"])
    assert found.row_id.tolist() == gold.column("row_id").to_pylist()
    assert found.labels[:, 0].tolist() == gold.column("label").to_pylist() and found.known.all()
    assert task_metrics(["label"], found.labels, found.probs)["label"] == written["tasks"]["label"]
    path.write_bytes(path.read_bytes() + b"\0")  # any change to the file is caught by its record's hash
    with pytest.raises(ValueError, match="is not the .* its gold record names"):
        read_predictions(path, ["label"], written["predictions"]["sha256"])


def test_predictions_keep_unknown_labels_unknown_and_the_groups(tmp_path):
    from ctrbench.predictions import read_predictions, write_predictions

    labels = np.array([[1, 0], [0, 1], [1, 1]], np.float32)
    mask = np.array([[True, False], [True, True], [False, True]])
    probs = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6]], np.float32)
    write_predictions(tmp_path / "p.parquet", ["click", "like"], np.array([5, 7, 9]), labels, probs, mask, np.array([1, 1, 2]))
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.column("label:like").to_pylist() == [None, 1, 1] and table.column("label:click").to_pylist() == [1, 0, None]
    found = read_predictions(tmp_path / "p.parquet", ["click", "like"])
    assert found.known.tolist() == mask.tolist() and found.groups.tolist() == [1, 1, 2]
    rows, task_labels, task_probs = found.task("like")
    assert rows.tolist() == [7, 9] and task_labels.tolist() == [1, 1] and task_probs.tolist() == pytest.approx([0.8, 0.6])
    with pytest.raises(ValueError, match="no column label:share, prob:share"):
        read_predictions(tmp_path / "p.parquet", ["share"])
