"""The result payload (schema ``edge-inspect/result/1``), identical on every sink.

Key names are the MQTT contract of DESIGN.md; integrators parse them, so they change only
with a new schema id; a key added within the id is optional (edge.schemas.ADDED_SINCE_FIRST).
``schemas/result.schema.json`` is generated from this model (``python -m edge.schemas --write``)
and a test fails when it is stale.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from edge.sim.scene import SimTruth
from edge.validation import inline

RESULT_SCHEMA_ID: Final = "edge-inspect/result/1"


def iso_ms(ts: datetime) -> str:
    """UTC ISO-8601 with milliseconds and ``Z``: 2026-11-28T20:40:12.345Z."""
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class _Payload(BaseModel):
    # every key is always sent: the schema lists every key as required (nullable where it can be null)
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)


class TileRef(_Payload):
    index: int = Field(ge=0, description="0 is the whole ROI when the camera also scores it whole.")
    box: tuple[int, int, int, int] = Field(description="x, y, w, h in frame pixels.")


class SourceRef(_Payload):
    """Which file and frame a replayed file or folder result is about."""

    file: str = Field(description="The image or video file's name.")
    frame: int = Field(ge=0, description="0-based: the image's place in the folder, or the video frame.")


class AnomalyRef(_Payload):
    """Where the frame differs from the good parts (a prompt set with a good-part memory)."""

    score: float = Field(ge=0, description="The deciding tile's largest patch distance to the good parts.")
    threshold: float = Field(ge=0, description="That tile's threshold: ng at score >= threshold, uncertain "
                             "within decision.uncertain_margin (as a share of it) below.")
    box: tuple[int, int, int, int] | None = Field(description="x, y, w, h in frame pixels around the strongest "
                                                  "region; null when nothing stands out.")


class MemoryRef(_Payload):
    version: str = Field(description="Identity of the good-part memory (images, view, settings, bundle).")
    images: int = Field(ge=0, description="Good images it was built from.")


class PromptSetRef(_Payload):
    name: str
    version: str = Field(description="sha256 (first 16 hex) of the set's canonical JSON.")


class ModelRef(_Payload):
    name: str
    precision: Literal["fp32", "fp16", "int8"]
    bundle: str = Field(description="Bundle content hash (first 16 hex).")
    backend: str = Field(description="onnxruntime | tensorrt")
    family: Literal["clip", "siglip"] | None = Field(default=None, description=(
        "How to read the scores: clip, a softmax over the categories for each crop; siglip, an independent "
        "sigmoid per category. A frame's score per category is its largest over the frame's crops (blended with "
        "exemplar similarity where a category has exemplars), so clip's sum to 1 only for a single crop without "
        "exemplars. Null only from code that does not know the bundle."))


class InspectionResult(_Payload):
    """One inspection of one camera's frame."""

    schema_: Literal["edge-inspect/result/1"] = Field(default=RESULT_SCHEMA_ID, alias="schema")
    id: str = Field(description="Unique per result; re-sends carry the same id (de-duplicate on it).")
    seq: int = Field(ge=1, description="Per station, +1 per result, never reused: a gap is a lost result.")
    ts: str = Field(description="Capture time, UTC ISO-8601 with ms and Z.", json_schema_extra={"format": "date-time"})
    station: str = Field(description="site/line/station")
    camera: str
    verdict: Literal["ok", "ng", "uncertain"]
    category: str = Field(description="The deciding defect for ng/uncertain, else the top category.")
    score: float
    scores: dict[str, float] = Field(description="Every category's score.")
    tile: TileRef | None = Field(description="The crop that gave the top score; null without tiling.")
    prompt_set: PromptSetRef
    model: ModelRef
    latency_ms: float = Field(ge=0, description="Capture to verdict.")
    snapshot: str | None = Field(default=None, description="Evidence image reference (NG frames).")
    part_id: str | None = Field(default=None, description="From the trigger, when one gave it.")
    replayed: bool = Field(default=False, description="True on re-sends from the outbox.")
    simulated: bool = Field(default=False, description="True for frames from sim://.")
    truth: Annotated[dict[str, Any] | None, WithJsonSchema({"anyOf": [
        inline(SimTruth.model_json_schema(mode="serialization")), {"type": "null"}]})] = Field(
        default=None, description="The simulator's ground truth (frames from sim:// only).")
    source: SourceRef | None = Field(default=None, description="For files and folders replayed by a camera: the "
                                     "file and frame; null for live cameras and the simulator.")
    anomaly: AnomalyRef | None = Field(default=None, description="With a good-part memory: the anomaly score, "
                                       "threshold and box; null without one.")
    memory: MemoryRef | None = Field(default=None, description="The good-part memory that scored the frame; null "
                                     "without one.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_serialization_defaults_required=True)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
