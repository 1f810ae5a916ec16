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




def render(schema_id: str, model: type[BaseModel]) -> str:
    # what the device accepts may leave out keys with a default; in what it sends, every key is there
    schema = model.model_json_schema(by_alias=True,
                                     mode="validation" if schema_id == COMMAND_SCHEMA_ID else "serialization")
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id, **schema}
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    stale = []
    for name, (schema_id, model) in SCHEMAS.items():
        text = render(schema_id, model)
        path = HERE / name
        if "--write" in argv:
            path.write_text(text, encoding="utf-8")
        elif not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    if stale:
        print(f"stale: {', '.join(stale)}; run: python -m edge.schemas --write", file=sys.stderr)
        return 1
    return 0

