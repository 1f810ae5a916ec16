"""Committed JSON Schemas match the payload models, and real payloads validate against them."""

from __future__ import annotations

import json

import jsonschema  # type: ignore[import-untyped]
import pytest

from edge.schemas import HERE, SCHEMAS, render


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_is_current(name: str) -> None:
    schema_id, model = SCHEMAS[name]
    assert (HERE / name).read_text() == render(schema_id, model), "run: python -m edge.schemas --write"


def test_a_result_validates_and_a_broken_one_does_not() -> None:
    schema = json.loads((HERE / "result.schema.json").read_text())
    result = {
        "schema": "edge-inspect/result/1", "id": "a1", "seq": 1, "ts": "2026-11-28T20:40:12.345Z",
        "station": "s/l/st", "camera": "cam1", "verdict": "ng", "category": "scratch", "score": 0.9,
        "scores": {"good": 0.1, "scratch": 0.9}, "tile": None,
        "prompt_set": {"name": "p", "version": "abc"},
        "model": {"name": "m", "precision": "fp32", "bundle": "b", "backend": "onnxruntime"},
        "latency_ms": 12.5, "snapshot": None, "part_id": None, "replayed": False, "simulated": False,
        "truth": None, "source": None, "anomaly": None, "memory": None,
    }
    jsonschema.validate(result, schema)
    for key in ("schema", "source", "truth"):  # every key is sent, so every key is required
        with pytest.raises(jsonschema.ValidationError, match=f"'{key}' is a required property"):
            jsonschema.validate({k: v for k, v in result.items() if k != key}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**result, "ts": "yesterday"}, schema, format_checker=jsonschema.FormatChecker())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**result, "verdict": "maybe"}, schema)


def test_the_command_schema_accepts_what_the_station_accepts() -> None:
    """An input schema: keys with a default may be left out, as the README's own command form leaves them."""
    schema = json.loads((HERE / "command.schema.json").read_text())
    for ok in ({}, {"id": "your-id", "args": {}}, {"id": "r1", "args": {"camera": "cam1", "part_id": "P-1"}},
               {"args": {"from_seq": 10}}, {"args": {"prompt_set": {"name": "x"}}}, {"args": {"action": "status"}},
               {"schema": "edge-inspect/command/1", "id": None, "args": {"requested_by": "mes"}}):
        jsonschema.validate(ok, schema)
    for bad in ({"verb": "reload"}, {"args": {"camera": "cam1", "part_id": ""}}, {"args": {"from_seq": "ten"}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
