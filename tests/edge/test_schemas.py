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
    for key in ("schema", "truth", "replayed"):  # every key of result/1's first version is sent, so required
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


def test_a_consumer_s_schema_takes_earlier_and_later_builds_of_the_same_id() -> None:
    """DESIGN.md: additions are optional keys. A consumer validating with today's file must take a result of an
    earlier build (without the keys added since result/1 was published) and of a later one (with a key this file
    does not know, at the top and inside an object); everything this build sends is still listed."""
    from edge.results import RESULT_SCHEMA_ID
    from edge.schemas import ADDED_SINCE_FIRST

    schema = json.loads((HERE / "result.schema.json").read_text())
    assert set(ADDED_SINCE_FIRST[RESULT_SCHEMA_ID]["InspectionResult"]) <= set(schema["properties"]) - set(
        schema["required"])
    earlier = {
        "schema": "edge-inspect/result/1", "id": "a1", "seq": 1, "ts": "2026-11-28T20:40:12.345Z",
        "station": "s/l/st", "camera": "cam1", "verdict": "ok", "category": "good", "score": 0.9,
        "scores": {"good": 0.9}, "tile": None, "prompt_set": {"name": "p", "version": "abc"},
        "model": {"name": "m", "precision": "fp32", "bundle": "b", "backend": "onnxruntime"},
        "latency_ms": 12.5, "snapshot": None, "part_id": None, "replayed": False, "simulated": False, "truth": None,
    }
    jsonschema.validate(earlier, schema)
    later = {**earlier, "source": None, "anomaly": None, "memory": None, "lot": "L-7",
             "model": {**earlier["model"], "lens": "12mm"}}
    jsonschema.validate(later, schema)
    status = json.loads((HERE / "status.schema.json").read_text())
    assert "since" in status["properties"] and "since" not in status["required"]


def test_a_command_s_schema_stays_strict() -> None:
    """What the device takes is refused with a reason when a key is unknown (a typo must not pass silently)."""
    schema = json.loads((HERE / "command.schema.json").read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"id": "x", "args": {}, "colour": 1}, schema)


def test_the_mqtt_tests_still_catch_a_key_the_device_sends_undocumented() -> None:
    """The schemas allow unknown keys, so tests/edge/mqtt's validate_all also walks every payload for keys its
    schema does not list (at the top, in objects, in anyOf branches such as a response's result)."""
    from tests.edge.mqtt.conftest import _unlisted

    schema = json.loads((HERE / "result.schema.json").read_text())
    result = {"model": {"name": "m", "precision": "fp32", "bundle": "b", "backend": "onnxruntime", "arch": "x"},
              "tile": {"index": 0, "box": [0, 0, 1, 1], "zoom": 2}, "bogus": 1, "seq": 1}
    assert sorted(_unlisted(result, schema, schema)) == ["bogus", "model.arch", "tile.zoom"]
    response = json.loads((HERE / "response.schema.json").read_text())
    body = {"verb": "memory", "ok": True, "result": {"active": False, "version": None, "images": 0, "good": None,
                                                      "prompt_set": None, "views": [], "extra": 1}}
    assert _unlisted(body, response, response) == ["result.extra"]


def test_an_answer_of_the_first_response_1_build_still_validates() -> None:
    """response/1 was first published with an untyped result; that build answered trigger with {camera, part_id}
    and prompts/test with {version, cameras}: today's file must take them (keys added later are optional)."""
    schema = json.loads((HERE / "response.schema.json").read_text())
    base = {"schema": "edge-inspect/response/1", "verb": "trigger", "id": "t1", "ok": True, "error": None,
            "ts": "2026-11-28T20:40:12.345Z"}
    jsonschema.validate({**base, "result": {"camera": "cam1", "part_id": "P-1"}}, schema)
    jsonschema.validate({**base, "verb": "prompts/test", "result": {"version": "v", "cameras": {}}}, schema)
    with pytest.raises(jsonschema.ValidationError):  # what was there from the start stays required
        jsonschema.validate({**base, "result": {"camera": "cam1"}}, schema)
