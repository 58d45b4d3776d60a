"""The published record schema: shipped up to date, and it accepts what the harness writes
(every record the test suite appends is validated by an autouse fixture in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from harness.records.results import Record, load_run
from harness.records.schema import RECORD_SCHEMA_PATH, published_schema

REPO = Path(__file__).resolve().parent.parent

DATA = Path(__file__).resolve().parent / "data"


def test_the_shipped_schema_is_generated_from_the_dataclasses() -> None:
    shipped = json.loads(RECORD_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert shipped == published_schema(), "run `python -m harness.records.schema` and commit"
    jsonschema.Draft202012Validator.check_schema(shipped)


def test_old_runs_validate_after_migration() -> None:
    schema = json.loads(RECORD_SCHEMA_PATH.read_text(encoding="utf-8"))
    for rec in load_run(DATA / "run_v1").records:
        jsonschema.validate(rec.to_dict(), schema)


def test_a_record_missing_its_status_is_rejected() -> None:
    schema = json.loads(RECORD_SCHEMA_PATH.read_text(encoding="utf-8"))
    data = Record(case_id="m/x", case={}, status="ok").to_dict()
    jsonschema.validate(data, schema)
    bad = dict(data)
    bad["status"] = "great"
    try:
        jsonschema.validate(bad, schema)
    except jsonschema.ValidationError:
        return
    raise AssertionError("an unknown status passed the schema")


def test_every_committed_record_validates_after_migration() -> None:
    """Runs committed under reports/ (schema v1-v4, CPU and GPU, serving, Ray) load into the
    current shape, and that shape is the published one."""
    validator = jsonschema.Draft202012Validator(json.loads(RECORD_SCHEMA_PATH.read_text()))
    runs = sorted((REPO / "reports").glob("**/run.json"))
    assert len(runs) >= 10
    checked = 0
    for run_json in runs:
        for rec in load_run(run_json.parent).records:
            validator.validate(json.loads(json.dumps(rec.to_dict())))
            checked += 1
    assert checked > 100
