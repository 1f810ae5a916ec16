"""Status, command and response payloads (pydantic, JSON Schema files generated from them)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema

from edge.results import ModelRef, PromptSetRef
from edge.validation import REQUESTED_BY_PATTERN, inline

STATUS_SCHEMA_ID: Final = "edge-inspect/status/1"
PROMPTS_ACTIVE_SCHEMA_ID: Final = "edge-inspect/prompts-active/1"
RESPONSE_SCHEMA_ID: Final = "edge-inspect/response/1"
COMMAND_SCHEMA_ID: Final = "edge-inspect/command/1"
MAX_COMMAND_BYTES = 256 * 1024


class _Payload(BaseModel):
    # every key is always sent, so the schema lists every key as required (nullable where it can be null)
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_serialization_defaults_required=True)


class OutboxStats(_Payload):
    """The durable outbox's state when the status was sent (the retained status is re-sent when the station's state
    changes, not for these counts: see its ``ts``)."""

    backlog: int = Field(description="Results not yet acknowledged by the broker.")
    oldest_undelivered_s: float | None = Field(description="Age of the oldest of them; null when none.")
    rows: int = Field(description="Results kept (undelivered, and delivered within the replay window).")
    max_rows: int = Field(description="mqtt.outbox.max_rows.")
    dropped: int = Field(description="Undelivered results discarded by the drop_oldest policy since start.")
    replay_from: int | None = Field(default=None, description="The oldest seq cmd/replay can still send; null "
                                    "when the outbox is empty.")


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
    model: ModelRef | None = Field(default=None, description="The model in use, as results name it.")
    prompt_set: PromptSetRef | None = Field(default=None, description="The active prompt set, as results name it.")
    outbox: OutboxStats | None = Field(default=None, description="The durable outbox; null when offline.")
    cameras: dict[str, str] | None = Field(default=None, description="Camera states; null when offline (a will "
                                           "registered at connect time would only carry stale ones).")
    backend_note: str | None = Field(default=None, description="Why the encoders run on another backend than the "
                                     "one configured (model.backend: auto, or tensorrt with fallback, which also "
                                     "makes the state degraded); null otherwise.")


class PromptsActive(_Payload):
    """Retained on ``.../prompts/active``: the active set, with its version and where it came from.
    Sent back verbatim as ``prompts/set``'s ``prompt_set``, ``version`` and ``source`` are ignored. The
    other keys are the prompt set's own (the operator YAML as JSON; later versions may add keys)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, json_schema_serialization_defaults_required=True)

    version: str = Field(description="sha256 (first 16 hex) of the set's canonical JSON.")
    source: str = Field(description="The file, 'mqtt:<requested_by>', 'ui:<operator>' or 'rollback to ...'.")
    name: str
    templates: list[str]
    categories: list[dict[str, Any]]
    decision: dict[str, Any]


def _requested_by(value: str) -> str:
    """A readable refusal (pydantic's own would quote the regex)."""
    if not re.fullmatch(REQUESTED_BY_PATTERN, value):  # exactly what the schema says, nothing stricter
        raise ValueError("at most 128 characters, none of them a line break, tab or other control character, "
                         "e.g. 'mes-1' or 'Anna K'")
    return value


RequestedBy = Annotated[
    Annotated[str, AfterValidator(_requested_by),
              WithJsonSchema({"type": "string", "maxLength": 128, "pattern": REQUESTED_BY_PATTERN})] | None,
    Field(description="For the audit log: at most 128 characters, no line breaks, tabs or other control "
                      "characters.")]


def _any_of(*models: type[BaseModel], null: bool = False, mode: str = "serialization") -> dict[str, Any]:
    """A JSON Schema ``anyOf`` of the models (runtime values stay plain dicts, validated per verb). ``mode``:
    "serialization" for what the device sends (every key is present, so required), "validation" for what it
    accepts (a key with a default may be left out)."""
    options: list[dict[str, Any]] = [inline(m.model_json_schema(mode=mode)) for m in models]  # type: ignore[arg-type]
    return {"anyOf": [*options, {"type": "null"}] if null else options}


# ---- command arguments, one model per verb ----
class TriggerArgs(_Payload):
    """``trigger``: inspect the camera's next frame as this part (only in ``trigger.mode: triggered``)."""

    camera: str
    part_id: str = Field(min_length=1, max_length=128, description="Carried by the result as part_id.")


class SnapshotArgs(_Payload):
    """``snapshot``: save the camera's newest frame to the evidence store."""

    camera: str


class ReplayArgs(_Payload):
    """``replay``: publish stored results again (``replayed: true``), in seq order, to heal a gap."""

    from_seq: int = Field(ge=1)
    to_seq: int | None = Field(default=None, ge=1, description="Inclusive; default: up to the newest.")
    limit: int = Field(default=10_000, ge=1, le=100_000)


class PromptsArgs(_Payload):
    """``prompts/set`` (validate, activate, keep) and ``prompts/test`` (score the current frames and the
    last NG frames with it beside the active set; nothing changes): a prompt set, the operator YAML as
    JSON. The retained ``prompts/active`` payload is accepted as it is (its version and source ignored)."""

    prompt_set: dict[str, Any]
    requested_by: RequestedBy = None


class MemoryArgs(_Payload):
    """``memory``: ``teach`` (the camera's next ``frames`` frames, or recent results by ``ids``, become the good
    parts: the memory is rebuilt and activated like a prompt edit), ``status``, or ``rollback`` (the good
    parts before the last change)."""

    action: Literal["teach", "status", "rollback"]
    camera: str | None = Field(default=None, description="teach: the camera to take frames from.")
    frames: int = Field(default=16, ge=1, le=64, description="teach: how many of its next frames.")
    ids: list[str] = Field(default_factory=list, max_length=64, description="teach: recent results' ids instead.")
    requested_by: RequestedBy = None


class Empty(_Payload):
    """``reload``: read the prompt file again (the file wins over an earlier remote edit)."""

    requested_by: RequestedBy = None


class CommandRequest(_Payload):
    """Every command payload, on ``.../cmd/{verb}``; ``args`` is validated per verb (see its $defs)."""

    schema_: Literal["edge-inspect/command/1"] = Field(default=COMMAND_SCHEMA_ID, alias="schema")
    id: str | None = Field(default=None, max_length=128, description="Echoed in the response.")
    args: Annotated[dict[str, Any], WithJsonSchema(_any_of(PromptsArgs, TriggerArgs, SnapshotArgs, ReplayArgs,
                                                           MemoryArgs, Empty, mode="validation"))] = Field(
        default_factory=dict, description="The verb's arguments: prompts/set and prompts/test take PromptsArgs, "
        "trigger TriggerArgs, snapshot SnapshotArgs, replay ReplayArgs, memory MemoryArgs, reload Empty (each "
        "validated per verb).")


# ---- command results, one model per verb ----
class PromptsSetResult(_Payload):
    """``prompts/set`` and ``reload``: the set now active."""

    name: str
    version: str


class Verdict(_Payload):
    verdict: Literal["ok", "ng", "uncertain"]
    category: str
    score: float
    scores: dict[str, float]


class PreviewFrame(_Payload):
    candidate: Verdict
    active: Verdict


class PreviewDefect(PreviewFrame):
    id: str
    seq: int
    camera: str
    snapshot: str | None


class PromptsTestResult(_Payload):
    """``prompts/test``: each camera's newest frame and the last NG/uncertain frames, scored by the
    candidate and by the active set."""

    version: str = Field(description="The candidate's version.")
    cameras: dict[str, PreviewFrame]
    recent_defects: list[PreviewDefect]


class TriggerResult(_Payload):
    camera: str
    part_id: str
    queued: int = Field(description="The trigger's place in the camera's queue (1: the next frame).")
    timeout_s: float = Field(description="Dropped (and reported) if no frame comes within this.")


class SnapshotResult(_Payload):
    snapshot: str = Field(description="Evidence reference; GET /api/evidence/{snapshot} on the ops port.")


class MemoryResult(_Payload):
    """``memory``: the active good-part memory (after teach or rollback, the new one)."""

    active: bool
    version: str | None
    images: int
    good: str | None = Field(description="The folder of good images.")
    prompt_set: str | None = Field(default=None, description="teach/rollback: the prompt-set version activated.")
    views: list[dict[str, Any]] = Field(default_factory=list, description="status: per camera view, the tiles, "
                                        "patches, thresholds, the good images' leave-one-out scores and their "
                                        "file names in the good folder (leave_one_out_images, same order).")


class ReplayResult(_Payload):
    replayed: int
    first_seq: int | None
    last_seq: int | None


class CommandResponse(_Payload):
    """On ``.../cmd/{verb}/response``, or the command's MQTT 5 response topic (with its correlation data)."""

    schema_: Literal["edge-inspect/response/1"] = Field(default=RESPONSE_SCHEMA_ID, alias="schema")
    verb: str
    id: str | None = Field(default=None, description="The command's id, also on errors when it could be read.")
    ok: bool
    error: str | None = None
    result: Annotated[dict[str, Any] | None, WithJsonSchema(_any_of(
        PromptsSetResult, PromptsTestResult, TriggerResult, SnapshotResult, ReplayResult, MemoryResult,
        null=True))] = Field(
        default=None, description="Per verb: prompts/set and reload PromptsSetResult, prompts/test "
        "PromptsTestResult, trigger TriggerResult, snapshot SnapshotResult, replay ReplayResult, memory "
        "MemoryResult; null on errors.")
    ts: str = Field(json_schema_extra={"format": "date-time"})
