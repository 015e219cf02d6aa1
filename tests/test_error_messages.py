"""Errors reach the user once, plainly (issue 9): config errors before any job, data errors inside a job."""

import logging

import pytest
import yaml
from conftest import DATA, REPO
from test_workflow import TINY_CONFIG, snakemake, with_changes, workflow_copy

from ctrbench.data.formats import FORMATS
from ctrbench.joblog import job_logging


def test_a_schema_error_names_the_key_once_without_the_schema(tmp_path):
    work = workflow_copy(tmp_path)
    typo = with_changes(TINY_CONFIG, lambda c: c["datasets"]["tiny_criteo"].update(hash_bin=2))
    run = snakemake(work, "-n", "results/report.html", config=typo)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    message = "datasets.tiny_criteo: 'hash_bin' is not a key of a criteo_dac dataset; it takes format, hash_bins,"
    assert output.count(message) == 1, output
    assert output.count("'hash_bin'") == 1, output  # nor is the instance
    # jsonschema's report of the failing sub-schema (~175 lines for a dataset entry) is left out
    assert "Failed validating" not in output and "'properties':" not in output and "On instance" not in output
    assert len(output.splitlines()) < 10, output


def test_a_config_error_is_printed_once_without_the_package_frames(tmp_path):
    work = workflow_copy(tmp_path)
    run = snakemake(work, "-n", "results/report.html", config=with_changes(TINY_CONFIG, lambda c: c["benchmark"]["models"].append("lr")))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert output.count("benchmark.models names 'lr', which is not under models") == 1, output
    assert "ctrbench/config.py" not in output and "Traceback" not in output, output


def open_objects(schema, where="config"):
    """Every object schema with named properties that would still accept keys it does not name. The branches of an
    if/then/else only add conditions to the object they sit in, which is checked itself."""
    if isinstance(schema, list):
        return [p for i, item in enumerate(schema) for p in open_objects(item, f"{where}[{i}]")]
    if not isinstance(schema, dict):
        return []
    closed = "additionalProperties" in schema or "unevaluatedProperties" in schema
    found = [where] if "properties" in schema and not closed else []
    for key, value in schema.items():
        if key not in ("default", "if", "then", "else"):
            found += open_objects(value, f"{where}.{key}")
    return found


def test_every_object_in_the_schema_refuses_unknown_keys():
    """A new object added to config/schema.yaml without `additionalProperties: false` fails here. (The top-level
    `training` is the definition plus its required keys; models' `params` are checked by ctrbench.config.)"""
    schema = yaml.safe_load((REPO / "config" / "schema.yaml").read_text())
    assert open_objects(schema) == []
    # the formats' fragments: their top level is closed by the dataset entry that composes them
    # (unevaluatedProperties), each object inside must close itself
    for dataset_format in FORMATS.values():
        fragment = yaml.safe_load(dataset_format.options.schema.read_text())
        assert open_objects(fragment["$defs"]["options"]["properties"], dataset_format.name) == []
    assert open_objects({"properties": {"a": {"type": "object", "properties": {"b": {}}}}, "additionalProperties": False}) == [
        "config.properties.a"
    ]


def test_a_failed_job_prints_its_error_once_and_logs_the_traceback(tmp_path, capsys):
    log_path = tmp_path / "logs" / "job.log"
    with pytest.raises(SystemExit) as stop, job_logging(log_path) as log:
        log.info("working")
        raise ValueError("data.txt:8: expected 40 fields, found 37")
    assert stop.value.code == 1
    stderr = capsys.readouterr().err
    assert stderr.count("expected 40 fields, found 37") == 1 and "Traceback" not in stderr, stderr
    assert f"ValueError: data.txt:8: expected 40 fields, found 37 (traceback in {log_path})" in stderr
    assert "working" in stderr
    logged = log_path.read_text()
    assert "Traceback" in logged and 'raise ValueError("data.txt:8' in logged and "working" in logged
    assert not any(getattr(h, "baseFilename", None) == str(log_path) for h in logging.getLogger().handlers)


def test_a_data_error_in_a_job_is_printed_once(tmp_path):
    """A bad raw row stops the preprocess job: the message reaches the terminal once, the traceback the log only."""
    lines = (DATA / "criteo" / "train_head50.txt").read_text().splitlines()
    lines[7] = lines[7].replace("\t", ",", 3)  # line 8: three fields fewer
    raw = tmp_path / "bad.txt"
    raw.write_text("\n".join(lines) + "\n")

    def read_bad_file(config):
        config["datasets"]["tiny_criteo"].pop("synthetic")
        config["datasets"]["tiny_criteo"]["path"] = str(raw)

    work = workflow_copy(tmp_path)
    run = snakemake(work, "results/tiny_criteo/data/manifest.json", config=with_changes(TINY_CONFIG, read_bad_file))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    message = f"CriteoFormatError: {raw}:8: expected 40 tab-separated fields, found 37"
    assert output.count("expected 40 tab-separated fields, found 37") == 1 and message in output, output
    assert "Traceback" not in output, output
    logged = (work / "results/tiny_criteo/logs/preprocess.log").read_text()
    assert "Traceback" in logged and message in logged
    assert not (work / "results/tiny_criteo/data/manifest.json").exists()
