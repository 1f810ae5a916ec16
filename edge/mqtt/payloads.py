"""Status, command and response payloads (pydantic, JSON Schema files generated from them)."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

STATUS_SCHEMA_ID: Final = "edge-inspect/status/1"
RESPONSE_SCHEMA_ID: Final = "edge-inspect/response/1"
COMMAND_SCHEMA_ID: Final = "edge-inspect/command/1"
MAX_COMMAND_BYTES = 256 * 1024


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class StatusPayload(_Payload):
    """Retained on ``.../status``: birth ``online``, ``degraded`` with reasons, ``offline`` on a clean
    shutdown and as the last will (which the broker sends later, on its own: its ``ts`` is null)."""

    schema_: Literal["edge-inspect/status/1"] = Field(default=STATUS_SCHEMA_ID, alias="schema")
    state: Literal["online", "degraded", "offline"]
    reasons: list[str] = Field(default_factory=list, description="'component: reason' for each problem.")
    ts: str | None = Field(json_schema_extra={"format": "date-time"}, description=(
        "When the station sent this status (UTC, ms, Z); null in the last will, which the broker publishes "
        "when it loses the station: use the time you received it."))
    since: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                              description="When the current MQTT connection was made (also in the will).")
    station: str
    version: str | None = None
    model: dict[str, Any] | None = None
    prompt_set: dict[str, Any] | None = None
    outbox: dict[str, Any] | None = Field(default=None, description="Backlog etc.; null when offline.")
    cameras: dict[str, str] | None = Field(default=None, description="Camera states; null when offline (a will "
                                           "registered at connect time would only carry stale ones).")


class PromptsActive(_Payload):
    """Retained on ``.../prompts/active``: the active set, with its version and where it came from.
    Sent back verbatim as ``prompts/set``'s ``prompt_set``, ``version`` and ``source`` are ignored. The
    other keys are the prompt set's own (the operator YAML as JSON; later versions may add keys)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    version: str = Field(description="sha256 (first 16 hex) of the set's canonical JSON.")
    source: str = Field(description="The file, 'mqtt:<requested_by>', 'ui:<operator>' or 'rollback to ...'.")
    name: str
    templates: list[str]
    categories: list[dict[str, Any]]
    decision: dict[str, Any]


class TriggerArgs(_Payload):
    camera: str
    part_id: str = Field(min_length=1, max_length=128)


class SnapshotArgs(_Payload):
    camera: str


class ReplayArgs(_Payload):
    from_seq: int = Field(ge=1)
    to_seq: int | None = Field(default=None, ge=1)
    limit: int = Field(default=10_000, ge=1, le=100_000)


class PromptsArgs(_Payload):
    """``prompts/set`` and ``prompts/test``: a prompt set (the operator YAML, as JSON)."""

    prompt_set: dict[str, Any]
    requested_by: str | None = Field(default=None, max_length=128, description="For the audit log.")


class Empty(_Payload):
    requested_by: str | None = None


class CommandRequest(_Payload):
    """Every command payload; ``args`` is validated per verb."""

    schema_: Literal["edge-inspect/command/1"] = Field(default=COMMAND_SCHEMA_ID, alias="schema")
    id: str | None = Field(default=None, max_length=128, description="Echoed in the response.")
    args: dict[str, Any] = Field(default_factory=dict)


class CommandResponse(_Payload):
    schema_: Literal["edge-inspect/response/1"] = Field(default=RESPONSE_SCHEMA_ID, alias="schema")
    verb: str
    id: str | None = None
    ok: bool
    error: str | None = None
    result: dict[str, Any] | None = None
    ts: str
