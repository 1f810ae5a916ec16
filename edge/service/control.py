"""The narrow interface that adapters (MQTT bridge, web app, health, metrics) get instead of the station.

Adapters never import the station: the composition root (``edge/app.py``) hands them a
:class:`StationControl` and registers their callbacks with :class:`Observers`. A test can
give an adapter a small fake that implements this protocol and nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.cameras import Frame
from edge.config import CameraConfig
from edge.inspect.prompt_state import PromptState
from edge.results import InspectionResult
from edge.service.prompt_history import HistoryEntry

log = logging.getLogger("edge_inspect.control")

Where = tuple[np.ndarray, "np.ndarray | None", "tuple[int, int, int, int] | None"]  # frame, anomaly map, region


@dataclass(frozen=True)
class CameraView:
    """What an adapter may know about a camera."""

    name: str
    state: str  # CameraState value
    frames: int
    skipped: int
    reconnects: int
    unreadable: int
    last_error: str | None
    stale: bool
    config: CameraConfig


class StationControl(Protocol):
    """Everything the MQTT bridge and the operator page may ask of a running station."""

    @property
    def prompt_state(self) -> PromptState: ...

    def apply_prompts(self, data: object, source: str) -> PromptState: ...

    def rollback_prompts(self, version: str, source: str) -> PromptState: ...

    def reload_prompts(self, source: str) -> PromptState: ...

    def preview_prompts(self, data: object) -> dict[str, Any]: ...

    def prompt_history(self, limit: int = 100) -> list[HistoryEntry]: ...

    def trigger(self, camera: str, part_id: str) -> dict[str, Any]: ...

    def snapshot(self, camera: str) -> str: ...

    def recent(self) -> list[InspectionResult]: ...

    def cameras(self) -> dict[str, CameraView]: ...

    def latest_frame(self, camera: str) -> Frame | None: ...

    def status(self) -> dict[str, Any]: ...

    def teach_stage(self, camera: str | None, frames: int, ids: Sequence[str]) -> dict[str, Any]: ...

    def teach_keep(self, stage: str, source: str) -> PromptState: ...

    def teach(self, camera: str | None, frames: int, ids: Sequence[str], source: str) -> PromptState: ...

    def staged_image(self, stage: str, name: str) -> Path: ...

    def memory_status(self) -> dict[str, Any]: ...

    def memory_rollback(self, source: str) -> PromptState: ...

    def latest_where(self, camera: str) -> Where | None: ...


@dataclass
class Observers:
    """Callbacks the station calls; adapters subscribe through the root. A failing observer is
    logged and reported, never allowed to break the station's own work."""

    on_prompt_change: list[Callable[[PromptState], None]] = field(default_factory=list)
    on_result: list[Callable[[list[InspectionResult]], None]] = field(default_factory=list)
    on_status: list[Callable[[str], None]] = field(default_factory=list)
    on_batch: list[Callable[[int, float], None]] = field(default_factory=list)  # (crops, encoder seconds)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def notify(self, kind: str, *args: Any) -> None:
        for callback in list(getattr(self, kind)):
            try:
                callback(*args)
            except Exception:  # an adapter's bug must not stop inspection: log it with the traceback
                log.exception("observer %s of %s failed", getattr(callback, "__qualname__", callback), kind)


class HealthSource(Protocol):
    """One part's health for ``/healthz``: its problems (component -> reason) and its facts."""

    name: str

    def health(self) -> tuple[dict[str, str], Any]: ...
