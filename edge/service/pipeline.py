"""The line: capture -> one batched inference -> the publisher.

    cameras (1 loop each, newest frame wins)
        -> inference: the newest frame of every camera (triggered mode: of every camera with a
           pending trigger), ROI/tiles, ONE encoder call, scores, verdicts
        -> the publisher's bounded queue (inference waits when it is full: results are never
           dropped) -> numbered, durable results -> sinks (see edge.service.publisher)

Capture never waits for inference or publishing; a frame replaced before inference took it
is counted as skipped.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.cameras import Camera, CameraState, Frame
from edge.config import ServiceConfig
from edge.errors import ConfigError
from edge.inspect.decision import Smoother
from edge.inspect.frames import FrameScores, score_frames
from edge.inspect.prompt_state import PromptState
from edge.model import ZeroShotModel
from edge.results import AnomalyRef, InspectionResult, MemoryRef, ModelRef, PromptSetRef, SourceRef, TileRef, iso_ms
from edge.service.control import Observers
from edge.service.publisher import Publisher
from edge.service.status import StatusBoard

log = logging.getLogger("edge_inspect.pipeline")

MAX_PENDING_TRIGGERS = 64  # per camera


@dataclass
class Counters:
    inspected: int = 0
    batches: int = 0
    triggers_timed_out: int = 0
    stage_s: dict[str, float] = field(default_factory=lambda: {"resize": 0.0, "encode": 0.0, "score": 0.0,
                                                               "memory": 0.0})


@dataclass
class Trigger:
    part_id: str
    since: float  # monotonic: only a frame captured after this serves the trigger


class Pipeline:
    """Owns the capture -> inference -> publish flow; the station starts its loops under supervision."""

    def __init__(self, config: ServiceConfig, model: ZeroShotModel, model_ref: ModelRef,
                 prompt_state: Callable[[], PromptState], publisher: Publisher, status: StatusBoard,
                 observers: Observers, stop: threading.Event) -> None:
        self.config = config
        self.model = model
        self.model_ref = model_ref
        self._prompt_state = prompt_state  # () -> PromptState, the active set at the time of the call
        self.publisher = publisher
        self.status = status
        self.observers = observers
        self.stop = stop
        self.counters = Counters()
        self.new_frame = threading.Condition()
        self.cameras: dict[str, Camera] = {c.name: Camera(c, self.new_frame) for c in config.cameras}
        self.heartbeat = time.monotonic()
        self._smoother = Smoother()
        self._triggers: dict[str, deque[Trigger]] = {name: deque() for name in self.cameras}
        self._trigger_lock = threading.Lock()
        self._last: dict[str, int] = {}
        self._version: str | None = None
        self._inference_done = False
        self.last_where: dict[str, tuple[np.ndarray, np.ndarray | None, tuple[int, int, int, int] | None]] = {}

    # ---- triggers ----
    def trigger(self, camera: str, part_id: str) -> int:
        """Queue a trigger: the camera's next frame captured after now is inspected with ``part_id``.
        Returns the trigger's place in the camera's queue (1 = next)."""
        if camera not in self.cameras:
            raise ConfigError(f"trigger: unknown camera '{camera}'; known: {', '.join(self.cameras)}.")
        if self.config.trigger.mode != "triggered":
            raise ConfigError("trigger: this station runs in continuous mode (every frame is inspected, "
                              "part_id is not used); set trigger.mode: triggered to inspect on triggers.")
        with self._trigger_lock:
            pending = self._triggers[camera]
            if len(pending) >= MAX_PENDING_TRIGGERS:
                raise ConfigError(f"trigger: camera '{camera}' already has {MAX_PENDING_TRIGGERS} triggers "
                                  "waiting for frames; check the camera (its state says why).")
            pending.append(Trigger(part_id, time.monotonic()))
            return len(pending)

    def _expire_triggers(self, now: float) -> None:
        timeout = self.config.trigger.timeout_s
        with self._trigger_lock:
            for camera, pending in self._triggers.items():
                while pending and now - pending[0].since > timeout:
                    t = pending.popleft()
                    self.counters.triggers_timed_out += 1
                    log.warning("trigger for part %s on camera %s: no frame within %g s; not inspected",
                                t.part_id, camera, timeout)
                    self.status.problem(f"trigger {camera}", f"part {t.part_id}: no frame within {timeout:g} s "
                                        "(trigger.timeout_s); check the camera")

    # ---- inference ----
    def _collect(self) -> list[tuple[Frame, str | None]]:
        """The newest unseen frame of every camera (triggered mode: of cameras with a trigger due)."""
        out = []
        triggered = self.config.trigger.mode == "triggered"
        for name, cam in self.cameras.items():
            with self._trigger_lock:
                due = self._triggers[name][0] if triggered and self._triggers[name] else None
            if triggered and due is None:
                continue
            frame = cam.latest(after=self._last.get(name, 0))
            if frame is None or (due is not None and frame.captured_mono < due.since):
                continue
            self._last[name] = frame.number
            if due is not None:
                with self._trigger_lock:
                    self._triggers[name].popleft()
                self.status.problem(f"trigger {name}", None)
            out.append((frame, due.part_id if due else None))
        return out

    def _gather(self) -> list[tuple[Frame, str | None]]:
        batch = self._collect()
        if not batch:
            with self.new_frame:
                if not any(c.has_new(self._last.get(n, 0)) for n, c in self.cameras.items()):
                    self.new_frame.wait(0.05)
            batch = self._collect()
        return batch

    def _sources_finished(self) -> bool:
        return all(c.state in (CameraState.ENDED, CameraState.STOPPED) for c in self.cameras.values())

    def inference_loop(self) -> None:
        """Runs until stop or until every finite source ended; restartable (its state is on self)."""
        while not self.stop.is_set():
            self.heartbeat = time.monotonic()
            self._camera_health()
            self._expire_triggers(self.heartbeat)
            batch = self._gather()
            if not batch:
                if self._sources_finished() and not any(c.has_new(self._last.get(n, 0))
                                                        for n, c in self.cameras.items()):
                    break
                continue
            state = self._prompt_state()
            if state.version != self._version:
                self._smoother.reset()
                self._version = state.version
            for result, image, heat in self.inspect(batch, state):
                self.publisher.put(result, image, heat)
        self._inference_done = True
        self.publisher.end()

    def inspect(self, batch: list[tuple[Frame, str | None]], state: PromptState
                ) -> list[tuple[InspectionResult, np.ndarray, np.ndarray | None]]:
        """Score a batch of frames in one encoder call and decide each."""
        timings: dict[str, float] = {}
        views = [self.cameras[f.camera].config for f, _ in batch]
        scored = score_frames(self.model, state, [f.image for f, _ in batch], views, timings=timings)
        t0 = time.perf_counter()
        out = [(self._result(frame, part_id, fs, state), frame.image, fs.anomaly.heat if fs.anomaly else None)
               for (frame, part_id), fs in zip(batch, scored)]
        for (frame, _), fs in zip(batch, scored):  # what the page's live view shows: the last inspected frame, where
            self.last_where[frame.camera] = (frame.image, fs.anomaly.heat if fs.anomaly else None, fs.region)
        timings["score"] = timings.get("score", 0.0) + time.perf_counter() - t0
        c = self.counters
        c.batches += 1
        c.inspected += len(batch)
        for stage, seconds in timings.items():
            c.stage_s[stage] = c.stage_s.get(stage, 0.0) + seconds
        self.observers.notify("on_batch", sum(len(fs.tiles) for fs in scored), timings.get("encode", 0.0))
        return out

    def _result(self, frame: Frame, part_id: str | None, fs: FrameScores, state: PromptState) -> InspectionResult:
        decision = self._smoother.apply(frame.camera, fs.decide(state), state.prompts)
        best = fs.best_tile(decision.category)
        truth = frame.meta.get("truth")
        # numbered (and validated) by the publisher, which commits seqs in batches off the inference path
        return InspectionResult.model_construct(
            id=uuid.uuid4().hex, seq=0, ts=iso_ms(frame.captured_at),
            station=self.config.station.path, camera=frame.camera, verdict=decision.verdict,
            category=decision.category, score=round(decision.score, 6), scores=fs.as_dict(),
            tile=None if best is None else TileRef(index=best.index, box=best.box),
            prompt_set=PromptSetRef(name=state.prompts.name, version=state.version),
            model=self.model_ref, latency_ms=round((time.monotonic() - frame.captured_mono) * 1000, 2),
            part_id=part_id, simulated=truth is not None, truth=truth if isinstance(truth, dict) else None,
            source=SourceRef.model_validate(frame.meta["source"]) if "source" in frame.meta else None,
            anomaly=None if fs.anomaly is None else AnomalyRef(
                score=round(fs.anomaly.score, 6), threshold=round(fs.anomaly.threshold, 6), box=fs.anomaly.box),
            memory=None if fs.anomaly is None else MemoryRef(version=state.memory_version or "",
                                                             images=state.good_images),
        )

    def _camera_health(self) -> None:
        for name, cam in self.cameras.items():
            if cam.state == CameraState.RECONNECTING:
                self.status.problem(f"camera {name}", cam.stats.last_error or "reconnecting")
            elif cam.state == CameraState.STREAMING and cam.stale:
                self.status.problem(f"camera {name}", f"no frame for {cam.config.stale_after_s:g} s")
            else:
                self.status.problem(f"camera {name}", None)

    def stalled_for(self, now: float | None = None) -> float:
        """Seconds since the inference loop last turned (it turns at least every 50 ms when healthy)."""
        if self._inference_done:
            return 0.0
        return (now if now is not None else time.monotonic()) - self.heartbeat

    @property
    def done(self) -> threading.Event:
        """Every finite source ended and every result was published."""
        return self.publisher.done
