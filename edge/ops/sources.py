"""What the ops endpoints read, handed over by the composition root (they never reach into the station).

``/healthz`` is built from the status board plus a list of :class:`HealthSource` s (the
pipeline, the outbox, the MQTT link); ``/metrics`` from :class:`OpsSources`' readers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.service.control import HealthSource, StationControl
from edge.service.pipeline import Counters, Pipeline
from edge.service.publisher import Tally


@dataclass
class PipelineHealth:
    """Cameras, the inference loop (a stalled loop cannot report itself) and the result queue."""

    pipeline: Pipeline
    stall_after_s: float
    backend: str
    name: str = "pipeline"

    def health(self) -> tuple[dict[str, str], dict[str, Any]]:
        problems: dict[str, str] = {}
        stalled = self.pipeline.stalled_for()
        if stalled > self.stall_after_s:
            problems["encoder"] = f"inference loop stalled for {stalled:.0f} s (limit {self.stall_after_s:g} s)"
        cameras = {}
        for name, cam in self.pipeline.cameras.items():
            cameras[name] = {"state": cam.state.value, "frames": cam.stats.frames, "skipped": cam.stats.skipped,
                             "reconnects": cam.stats.reconnects, "unreadable": cam.stats.unreadable,
                             "last_error": cam.stats.last_error}
            if cam.state.value == "reconnecting":
                problems.setdefault(f"camera {name}", cam.stats.last_error or "reconnecting")
        return problems, {"cameras": cameras, "encoder": {"backend": self.backend, "stalled_s": round(stalled, 2)},
                          "result_queue": self.pipeline.publisher.queue_depth}


@dataclass
class OutboxHealth:
    """The outbox's backlog, and a broker that takes results but does not acknowledge them."""

    stats: Callable[[], dict[str, Any]]
    ack_alarm_s: float
    name: str = "outbox"

    def health(self) -> tuple[dict[str, str], dict[str, Any]]:
        stats = self.stats()
        age = stats.get("oldest_undelivered_s") or 0
        problems = {}
        if age > self.ack_alarm_s:
            problems["broker"] = (f"broker not acknowledging: the oldest undelivered result waits {age:.0f} s "
                                  f"(limit mqtt.ack_alarm_s {self.ack_alarm_s:g} s)")
        return problems, {"outbox": stats}


@dataclass
class LinkHealth:
    connected: Callable[[], bool]
    last_error: Callable[[], str | None]
    name: str = "mqtt"

    def health(self) -> tuple[dict[str, str], dict[str, Any]]:
        return {}, {"mqtt": {"connected": self.connected(), "last_error": self.last_error()}}


@dataclass
class OpsSources:
    control: StationControl
    health: list[HealthSource]
    counters: Callable[[], Counters]
    tally: Callable[[], Tally]
    queue_depth: Callable[[], int]
    stalled_for: Callable[[], float]
    backend: str
    state_dir: Path
    evidence_dir: Path
    stall_after_s: float
    outbox_stats: Callable[[], dict[str, Any]] | None = None
    mqtt_connected: Callable[[], bool] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
