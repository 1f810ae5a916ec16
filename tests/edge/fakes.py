"""A small fake StationControl for fast adapter tests (the MQTT bridge, the web app).

It implements the protocol and nothing more, so a test that passes with it shows that the
adapter needs nothing but the narrow interface. The real station is tested end to end elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from edge.cameras import Frame
from edge.config import CameraConfig
from edge.errors import ConfigError
from edge.inspect.prompt_state import PromptState
from edge.prompts import PromptSet, parse_prompt_set
from edge.results import InspectionResult
from edge.service.control import CameraView
from edge.service.prompt_history import HistoryEntry

SET = {"name": "fake", "templates": ["a {} part"],
       "categories": [{"name": "good", "ok": True, "prompts": ["clean"]}, {"name": "hole", "prompts": ["holed"]}]}


def state_of(prompts: PromptSet, source: str = "fake") -> PromptState:
    n = len(prompts.categories)
    return PromptState(prompts, np.eye(n, 4, dtype=np.float32), None, np.zeros(n, bool), source)


class FakeControl:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._state = state_of(PromptSet.model_validate(SET))
        self.frame = Frame("cam1", 1, np.zeros((48, 64, 3), np.uint8), datetime.now(timezone.utc), 0.0)
        self.results: list[InspectionResult] = []

    @property
    def prompt_state(self) -> PromptState:
        return self._state

    def apply_prompts(self, data: object, source: str) -> PromptState:
        self.calls.append(("apply", source))
        self._state = state_of(parse_prompt_set({k: v for k, v in data.items() if k not in ("version", "source")}
                                                if isinstance(data, dict) else data, source), source)
        return self._state

    def rollback_prompts(self, version: str, source: str) -> PromptState:
        self.calls.append(("rollback", version))
        raise ConfigError(f"prompt set version {version}: not in the history; pick one from the history.")

    def reload_prompts(self, source: str) -> PromptState:
        self.calls.append(("reload", source))
        return self._state

    def preview_prompts(self, data: object) -> dict[str, Any]:
        self.calls.append(("preview", data))
        return {"version": "candidate", "cameras": {}, "recent_defects": []}

    def prompt_history(self, limit: int = 100) -> list[HistoryEntry]:
        return [HistoryEntry(version=self._state.version, name="fake", ts="2026-12-01T00:00:00.000+00:00",
                             source="fake")]

    def trigger(self, camera: str, part_id: str) -> dict[str, Any]:
        self.calls.append(("trigger", (camera, part_id)))
        if camera != "cam1":
            raise ConfigError(f"trigger: unknown camera '{camera}'; known: cam1.")
        return {"camera": camera, "part_id": part_id, "queued": 1, "timeout_s": 2.0}

    def snapshot(self, camera: str) -> str:
        self.calls.append(("snapshot", camera))
        return f"{camera}/snapshot-1.jpg"

    def recent(self) -> list[InspectionResult]:
        return list(self.results)

    def cameras(self) -> dict[str, CameraView]:
        return {"cam1": CameraView("cam1", "streaming", 5, 0, 0, 0, None, False,
                                   CameraConfig(name="cam1", source="fake"))}

    def latest_frame(self, camera: str) -> Frame | None:
        return self.frame if camera == "cam1" else None

    def status(self) -> dict[str, Any]:
        return {"state": "online", "reasons": []}

    def teach_stage(self, camera: str | None, frames: int, ids: Sequence[str]) -> dict[str, Any]:
        self.calls.append(("teach_stage", (camera, frames, list(ids))))
        return {"stage": "pending-abc", "files": [f"good{i:03d}.png" for i in range(frames)]}

    def teach_keep(self, stage: str, source: str) -> PromptState:
        self.calls.append(("teach_keep", (stage, source)))
        return self._state

    def teach(self, camera: str | None, frames: int, ids: Sequence[str], source: str) -> PromptState:
        self.calls.append(("teach", (camera, frames, list(ids), source)))
        return self._state

    def staged_image(self, stage: str, name: str) -> Path:
        raise ConfigError(f"teach: no image {name!r} in {stage}.")

    def memory_status(self) -> dict[str, Any]:
        return {"active": False, "version": None, "images": 0, "good": None}

    def memory_rollback(self, source: str) -> PromptState:
        self.calls.append(("memory_rollback", source))
        return self._state

    def latest_where(self, camera: str) -> Any:
        return None
