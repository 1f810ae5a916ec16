"""JSON Schema files for every payload that leaves the device, generated from the models.

``python -m edge.schemas --write`` regenerates them; a test fails when the committed files
are stale, so an integrator's schema can never drift from what the service sends.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from edge.mqtt.payloads import (
    COMMAND_SCHEMA_ID,
    PROMPTS_ACTIVE_SCHEMA_ID,
    RESPONSE_SCHEMA_ID,
    STATUS_SCHEMA_ID,
    CommandRequest,
    CommandResponse,
    PromptsActive,
    StatusPayload,
)
from edge.results import RESULT_SCHEMA_ID, InspectionResult

HERE = Path(__file__).resolve().parent
SCHEMAS: dict[str, tuple[str, type[BaseModel]]] = {
    "result.schema.json": (RESULT_SCHEMA_ID, InspectionResult),
    "status.schema.json": (STATUS_SCHEMA_ID, StatusPayload),
    "command.schema.json": (COMMAND_SCHEMA_ID, CommandRequest),
    "response.schema.json": (RESPONSE_SCHEMA_ID, CommandResponse),
    "prompts-active.schema.json": (PROMPTS_ACTIVE_SCHEMA_ID, PromptsActive),
}




# Keys added to a schema id after it was first published (DESIGN.md: "Additions are optional keys; a change that
# breaks a consumer bumps the schema id"), by the object (model title) they were added to. This build always sends
# them, but devices of earlier builds under the same id do not, so the schema does not require them. Add a key here
# when it is added to a published payload.
ADDED_SINCE_FIRST: dict[str, dict[str, tuple[str, ...]]] = {
    RESULT_SCHEMA_ID: {"InspectionResult": ("source", "anomaly", "memory"),  # result/1 was published without them
                       "ModelRef": ("family",)},
    STATUS_SCHEMA_ID: {"StatusPayload": ("since", "backend_note"), "ModelRef": ("family",),
                       "OutboxStats": ("replay_from",)},
    # response/1 was first published with an untyped result: the first build answered trigger with {camera,
    # part_id} and prompts/test with {version, cameras}
    RESPONSE_SCHEMA_ID: {"TriggerResult": ("queued", "timeout_s"), "PromptsTestResult": ("recent_defects",)},
}
SENT_COMMENT = ("Sent by the device. A key listed here but not in 'required' may be absent: it was added after this "
                "schema id was first published (devices of earlier builds leave it out), or it is optional by "
                "nature. Later builds may add optional keys, so objects allow keys this file does not list: ignore "
                "keys you do not know. A change that would break a consumer gets a new schema id.")


def _for_consumers(node: object, added: dict[str, tuple[str, ...]]) -> None:
    """At every depth: drop additionalProperties: false (pydantic writes it for extra='forbid'), since a consumer
    validating with this file must accept the optional keys a later build of the same id adds; and take the keys in
    ``added`` (by the title of the object that has them) out of its ``required``, since earlier builds lack them."""
    if isinstance(node, dict):
        if node.get("additionalProperties") is False:
            del node["additionalProperties"]
        keys = added.get(str(node.get("title")), ())
        if keys and "required" in node:
            node["required"] = [k for k in node["required"] if k not in keys]
        for value in node.values():
            _for_consumers(value, added)
    elif isinstance(node, list):
        for value in node:
            _for_consumers(value, added)


def render(schema_id: str, model: type[BaseModel]) -> str:
    # what the device accepts may leave out keys with a default; in what it sends, every key is there
    sent = schema_id != COMMAND_SCHEMA_ID
    schema = model.model_json_schema(by_alias=True, mode="serialization" if sent else "validation")
    if sent:
        _for_consumers(schema, ADDED_SINCE_FIRST.get(schema_id, {}))
        schema["$comment"] = SENT_COMMENT
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Check that the committed schema files are current (exit 1 naming the stale ones), or rewrite them."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m edge.schemas", description="The JSON Schema files of every "
                                     f"payload the device sends or takes, in {HERE}: checks they match the models.")
    parser.add_argument("--write", action="store_true", help="rewrite them from the models")
    args = parser.parse_args(argv)
    stale = []
    for name, (schema_id, model) in SCHEMAS.items():
        text = render(schema_id, model)
        path = HERE / name
        if args.write:
            path.write_text(text, encoding="utf-8")
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print(f"stale: {', '.join(stale)}; run: python -m edge.schemas --write", file=sys.stderr)
        return 1
    print(f"{'written' if args.write else 'current'}: {', '.join(SCHEMAS)} ({HERE})")
    return 0
