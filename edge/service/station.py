"""The running station: the pipeline and the prompt manager behind :class:`StationControl`.

Built only by the composition root (``edge/app.py``), which hands the MQTT bridge and the
web app this object as a ``StationControl`` and nothing more. It starts every loop under
:func:`supervised` and says when it is done, and with which exit code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.cameras import Frame
from edge.config import ServiceConfig
from edge.errors import CameraError, ConfigError, EdgeInspectError
from edge.inspect.frames import score_frames
from edge.inspect.prompt_state import PromptState
from edge.results import InspectionResult
from edge.service.control import CameraView, Where
from edge.service.pipeline import Pipeline
from edge.service.prompt_history import HistoryEntry
from edge.service.prompts import PromptManager
from edge.service.status import StatusBoard
from edge.service.supervise import Supervised, supervised
from edge.service.teach import Teacher

log = logging.getLogger("edge_inspect.station")

WATCH_INTERVAL_S = 0.5


class Station:
    """Implements StationControl; ``start()`` the loops, ``run()`` until done, ``close()``."""

    def __init__(self, config: ServiceConfig, pipeline: Pipeline, prompts: PromptManager, status: StatusBoard,
                 stop: threading.Event) -> None:
        self.config = config
        self.pipeline = pipeline
        self.prompts = prompts
        self.teacher = Teacher(config.state_dir / "good", pipeline.cameras, pipeline.publisher.recent_frame)
        self.status_board = status
        self.stop_event = stop
        self.exit_code = 0
        self._fatal = threading.Event()
        self._threads: list[Supervised] = []

    # ---- lifecycle ----
    def start(self) -> Station:
        for cam in self.pipeline.cameras.values():
            self._threads.append(supervised(f"camera-{cam.name}", cam.run, self.status_board, self.stop_event))
        self._threads.append(supervised("inference", self.pipeline.inference_loop, self.status_board,
                                        self.stop_event))
        self._threads.append(supervised("publisher", self.pipeline.publisher.loop, self.status_board,
                                        self.stop_event))
        self._threads.append(supervised("prompt-watch", self._watch_prompts, self.status_board, self.stop_event))
        return self

    def supervise(self, name: str, loop: Any, restart: bool = True) -> Supervised:
        """Start an adapter's loop (MQTT, HTTP) under the same boundary; its owner stops and joins it."""
        return supervised(name, loop, self.status_board, self.stop_event, restart=restart, on_fatal=self.fatal)

    def fatal(self, reason: str) -> None:
        """A part that cannot recover: stop, and exit non-zero (systemd restarts the process)."""
        log.error("stopping: %s", reason)
        self.status_board.problem("station", reason)
        self.exit_code = 1
        self._fatal.set()
        self.stop_event.set()

    def run(self, duration: float | None = None) -> None:
        """Block until stop, ``duration`` seconds, or every finite source is done and published."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self.pipeline.done.is_set() and not self.stop_event.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.pipeline.done.wait(0.1)

    def request_stop(self) -> None:
        """Safe from a signal handler: only sets an event."""
        self.stop_event.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop capture, let inference finish its batch, drain the queued results, stop the loops."""
        for cam in self.pipeline.cameras.values():
            cam.stop()
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
        lost = self.pipeline.publisher.held_numbered()
        if lost:
            log.error("stopping with %d numbered results that no sink could take (seq %d..%d will be gaps): %s",
                      len(lost), lost[0], lost[-1], self.status_board.summary())

    # ---- the prompt file watcher ----
    def _watch_prompts(self) -> None:
        while not self.stop_event.wait(WATCH_INTERVAL_S):
            self.check_prompt_file()

    def check_prompt_file(self) -> None:
        """One look at the prompt file: a changed, valid set is activated; an invalid one is reported
        (status fact ``prompt_error``) and the active set stays."""
        try:
            if self.prompts.reload_if_changed() is not None:
                self.status_board.fact("prompt_error", None)
        except EdgeInspectError as err:
            log.error("prompt set rejected, previous set stays active: %s", err)
            self.status_board.fact("prompt_error", str(err))

    # ---- StationControl ----
    @property
    def prompt_state(self) -> PromptState:
        return self.prompts.state

    def apply_prompts(self, data: object, source: str) -> PromptState:
        return self.prompts.apply(data, source)

    def rollback_prompts(self, version: str, source: str) -> PromptState:
        return self.prompts.rollback(version, source)

    def reload_prompts(self, source: str) -> PromptState:
        return self.prompts.reload(source)

    def prompt_history(self, limit: int = 100) -> list[HistoryEntry]:
        return self.prompts.entries(limit)

    def preview_prompts(self, data: object) -> dict[str, Any]:
        """Score the newest frame of every camera and the last NG/uncertain frames with a candidate
        set beside the active one; nothing changes."""
        candidate = self.prompts.candidate(data, "preview")
        frames = [f for c in self.pipeline.cameras.values() if (f := c.latest_peek()) is not None]
        defects = self.pipeline.publisher.recent_defects()
        images = [f.image for f in frames] + [image for _, image in defects]
        views = [self.pipeline.cameras[f.camera].config for f in frames] + \
                [self._view(r.camera) for r, _ in defects]
        verdicts: list[dict[str, Any]] = [{} for _ in images]
        for state, key in ((candidate, "candidate"), (self.prompts.state, "active")):
            for n, fs in enumerate(score_frames(self.pipeline.model, state, images, views)):
                d = fs.decide(state)
                verdicts[n][key] = {"verdict": d.verdict, "category": d.category, "score": round(d.score, 6),
                                    "scores": fs.as_dict()}
        cameras = {f.camera: verdicts[n] for n, f in enumerate(frames)}
        recent = [{"id": r.id, "seq": r.seq, "camera": r.camera, "snapshot": r.snapshot,
                   **verdicts[len(frames) + n]} for n, (r, _) in enumerate(defects)]
        return {"version": candidate.version, "cameras": cameras, "recent_defects": recent}

    def _view(self, camera: str) -> Any:
        cam = self.pipeline.cameras.get(camera)
        return cam.config if cam is not None else None

    def trigger(self, camera: str, part_id: str) -> dict[str, Any]:
        queued = self.pipeline.trigger(camera, part_id)
        return {"camera": camera, "part_id": part_id, "queued": queued,
                "timeout_s": self.config.trigger.timeout_s}

    def snapshot(self, camera: str) -> str:
        """Save the camera's newest frame to the evidence store (cmd/snapshot)."""
        frame = self.latest_frame(camera)
        if frame is None:
            raise CameraError(f"snapshot: camera '{camera}' has no frame yet; check its state.")
        return self.pipeline.publisher.evidence.save_raw(frame.image, camera, f"snapshot-{int(time.time() * 1000)}")

    def latest_frame(self, camera: str) -> Frame | None:
        if camera not in self.pipeline.cameras:
            raise ConfigError(f"unknown camera '{camera}'; known: {', '.join(self.pipeline.cameras)}.")
        return self.pipeline.cameras[camera].latest_peek()

    def latest_where(self, camera: str) -> Where | None:
        """The last inspected frame of a camera with its anomaly map and region (None before the first)."""
        return self.pipeline.last_where.get(camera)

    def recent(self) -> list[InspectionResult]:
        return self.pipeline.publisher.recent()

    def cameras(self) -> dict[str, CameraView]:
        return {name: CameraView(name, cam.state.value, cam.stats.frames, cam.stats.skipped, cam.stats.reconnects,
                                 cam.stats.unreadable, cam.stats.last_error, cam.stale, cam.config)
                for name, cam in self.pipeline.cameras.items()}

    def status(self) -> dict[str, Any]:
        return self.status_board.snapshot()

    # ---- the good-part memory ----
    def teach_stage(self, camera: str | None, frames: int, ids: Sequence[str]) -> dict[str, Any]:
        """Collect good frames (the camera's next ``frames``, or recent results by id) and stage them for a look."""
        images = self.teacher.recent(ids) if ids else self.teacher.capture(camera or "", frames)
        stage, files = self.teacher.stage(images)
        return {"stage": stage, "files": files}

    def teach_keep(self, stage: str, source: str) -> PromptState:
        """Keep a staged selection as the good parts: the active set again, with ``good`` pointing at them (the
        memory is built and checked on this thread, never the inference thread; a refusal changes nothing)."""
        final = self.teacher.keep(stage)
        data = {**self.prompts.state.prompts.model_dump(mode="json"), "good": str(final)}
        return self.apply_prompts(data, f"{source} (taught {len(list(final.glob('*.png')))} good frames)")

    def teach(self, camera: str | None, frames: int, ids: Sequence[str], source: str) -> PromptState:
        """Stage and keep in one step (cmd/memory teach)."""
        return self.teach_keep(self.teach_stage(camera, frames, ids)["stage"], source)

    def staged_image(self, stage: str, name: str) -> Path:
        path = self.teacher.staged(stage) / name
        if path.parent != self.teacher.staged(stage) or not path.is_file():
            raise ConfigError(f"teach: no image {name!r} in {stage}.")
        return path

    def memory_status(self) -> dict[str, Any]:
        state = self.prompts.state
        if not state.memories:
            return {"active": False, "version": None, "images": 0, "good": state.prompts.good, "views": []}
        views = [{"tiles": len(m.tiles), "patches": m.patches, "thresholds": [round(t.threshold, 6) for t in m.tiles],
                  "leave_one_out": [round(x, 4) for x in m.loo_scores], "leave_one_out_images": list(m.names)}
                 for m in state.memories.values()]
        return {"active": True, "version": state.memory_version, "images": state.good_images,
                "good": state.prompts.good, "views": views}

    def memory_rollback(self, source: str) -> PromptState:
        """Back to the last activated set whose good parts differ from the active one's (or none)."""
        current = self.prompts.state.prompts.good
        for entry in self.prompts.entries(500):
            try:
                earlier = self.prompts.history.load(entry.version)
            except ConfigError:
                continue
            if earlier.good != current:
                return self.prompts.rollback(entry.version, f"{source} (memory)")
        raise ConfigError("memory rollback: no earlier prompt set with other good parts in the history.")
