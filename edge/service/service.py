"""The inspection service: capture, inference and publishing on their own threads.

    cameras (1 thread each, newest frame wins)
        -> inference worker: gather newest frames of all cameras, cut ROIs/tiles, preprocess,
           ONE batched encoder call, score against the active prompt state, decide
        -> bounded result queue (inference waits when it is full: results are never dropped)
        -> publisher: evidence for NG frames, then every sink gets the same payload

Capture never waits for inference or publishing; inference falling behind costs skipped
frames (counted per camera), never lost results.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import yaml

import edge
from edge.bundle import Bundle
from edge.cameras import Camera, CameraState, Frame
from edge.config import CameraConfig, ServiceConfig
from edge.encoders.select import open_encoders
from edge.errors import CameraError, ConfigError
from edge.model import ZeroShotModel
from edge.preprocess import to_pixel_values
from edge.prompts import PromptSet, load_prompt_set, parse_prompt_set
from edge.results import InspectionResult, ModelRef, PromptSetRef, TileRef, iso_ms
from edge.service.decision import Smoother, decide
from edge.service.evidence import EvidenceStore
from edge.service.prompt_history import PromptHistory
from edge.service.prompt_state import EmbeddingCache, PromptState, build_state, score
from edge.service.prompt_watch import PromptFileWatcher
from edge.service.sequence import SequenceCounter
from edge.service.sinks import JsonLinesSink, Sink, StdoutSink
from edge.service.status import StatusBoard
from edge.service.tiles import Tile, crop, tiles_for

if TYPE_CHECKING:
    from edge.mqtt.bridge import MqttBridge
    from edge.ops.http import OpsServer

log = logging.getLogger("edge_inspect.service")


@dataclass
class Counters:
    inspected: int = 0
    batches: int = 0
    stage_s: dict[str, float] = field(default_factory=lambda: {"preprocess": 0.0, "encode": 0.0,
                                                               "score": 0.0, "publish": 0.0})
    verdicts: dict[str, int] = field(default_factory=dict)
    by_category: dict[tuple[str, str], int] = field(default_factory=dict)  # (verdict, category) -> count


@dataclass
class _Pending:
    part_id: str
    since: float  # monotonic


class InspectionService:
    """Use as a context manager; ``run()`` blocks until stopped, a duration, or sources end."""

    def __init__(self, config: ServiceConfig, sinks: list[Sink] | None = None,
                 model: ZeroShotModel | None = None) -> None:
        self.config = config
        self.status = StatusBoard()
        self.counters = Counters()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._new_frame = threading.Condition()
        self._results: queue.Queue[tuple[InspectionResult, np.ndarray] | None] = queue.Queue(
            maxsize=config.results.queue)
        self._extra_sinks = sinks or []
        self._model = model
        self._smoother = Smoother()
        self._pending: dict[str, _Pending] = {}
        self._pending_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._bridge: MqttBridge | None = None
        self.cameras: dict[str, Camera] = {}
        self.heartbeat = time.monotonic()  # the inference loop's last turn: stall detection, watchdog
        self.batch_observers: list[Callable[[int, float], None]] = []  # (crops, encode seconds) per batch
        self.ops: OpsServer | None = None
        self.history = PromptHistory(config.state_dir / "prompt-sets")
        # what the operator page shows and previews re-score; written by the publisher, read by web requests
        self._recent: deque[InspectionResult] = deque(maxlen=500)
        self._recent_defects: deque[tuple[InspectionResult, np.ndarray]] = deque(maxlen=8)
        self._recent_lock = threading.Lock()

    # ---- start-up: everything that can be wrong is found before the first frame ----
    def start(self) -> InspectionService:
        cfg = self.config
        bundle = Bundle.open(cfg.model.bundle)
        if self._model is None:
            encoders = open_encoders(bundle, cfg.model)
            self._model = ZeroShotModel(bundle, encoders.image, encoders.text)
            if encoders.note and cfg.model.backend == "tensorrt":
                self.status.problem("encoder", encoders.note)  # asked for TensorRT, fell back: degraded
            elif encoders.note:
                self.status.fact("backend_note", encoders.note)
        size = bundle.manifest.image.size
        self._model.embed_pixels(np.zeros((1, 3, size, size), np.float32))  # warm-up before the first frame
        self._model_ref = ModelRef(name=bundle.manifest.name, precision=cfg.model.precision,
                                   bundle=bundle.hash[:16], backend=self._model.image_encoder.name)
        self.status.fact("version", edge.__version__)
        self.status.fact("model", self._model_ref.model_dump())
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self._cache = EmbeddingCache(cfg.state_dir / "embeddings", bundle.hash)
        self._prompt_state = self._load_prompts(cfg.prompts)
        self._seq = SequenceCounter(cfg.state_dir / "sequence.sqlite")
        self._evidence = EvidenceStore(cfg.evidence_dir, int(cfg.evidence.max_mb * 1e6),
                                       cfg.evidence.jpeg_quality)
        self._sinks = self._open_sinks()
        self._watcher = PromptFileWatcher(cfg.prompts, self._reload_from_file, self._prompt_error).start()
        if cfg.mqtt is not None:
            from edge.mqtt.bridge import MqttBridge

            self._bridge = MqttBridge(self, cfg.mqtt).start()
        for cam in cfg.cameras:
            self.cameras[cam.name] = Camera(cam, self._new_frame).start()
        self._spawn("inference", self._inference_loop)
        self._spawn("publisher", self._publish_loop)
        if cfg.ops.http.port is not None:
            from edge.ops.http import OpsServer

            self.ops = OpsServer(self, cfg.ops).start()
        log.info("service started: %d camera(s), bundle %s, prompt set %s %s", len(self.cameras),
                 bundle.manifest.name, self.prompt_state.prompts.name, self.prompt_state.version)
        return self

    def _spawn(self, name: str, target) -> None:  # type: ignore[no-untyped-def]
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _open_sinks(self) -> list[Sink]:
        sinks: list[Sink] = list(self._extra_sinks)
        if self.config.results.jsonl is not None:
            sinks.append(JsonLinesSink(self.config.results.jsonl))
        if self.config.results.stdout:
            sinks.append(StdoutSink())
        return sinks

    # ---- prompt sets ----
    @property
    def prompt_state(self) -> PromptState:
        return self._prompt_state

    def _load_prompts(self, path: Path) -> PromptState:
        return self.set_prompts(load_prompt_set(path), source=str(path), base=path.resolve().parent)

    def set_prompts(self, prompts: PromptSet, source: str, base: Path | None = None) -> PromptState:
        """Encode and activate a set between two frames; ConfigError leaves the old one active."""
        assert self._model is not None
        base = base or self.config.prompts.resolve().parent
        state = build_state(self._model, prompts, base, self._cache, source)
        self._prompt_state = state  # one reference swap: a frame sees the old set or the new one
        self.history.record(prompts, source)
        self.status.fact("prompt_set", {"name": prompts.name, "version": state.version})
        if self._bridge is not None:
            self._bridge.publish_prompts()
        log.info("prompt set active: %s %s (from %s)", prompts.name, state.version, source)
        return state

    def _reload_from_file(self, path: Path) -> None:
        self._load_prompts(path)

    def reload_prompts(self) -> PromptState:
        """Read the prompt file again (cmd/reload)."""
        return self._load_prompts(self.config.prompts)

    def apply_prompt_set(self, data: object, source: str) -> PromptState:
        """Validate, encode, activate, and write to the prompt file (so a restart keeps it).

        The same path for every remote edit (MQTT now, the operator page later). The file is
        replaced atomically and the watcher is told, so it does not reload its own write.
        """
        prompts = parse_prompt_set(data, source)
        state = self.set_prompts(prompts, source=source)
        path = self.config.prompts
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(f"# activated by {source}\n" + yaml.safe_dump(prompts.model_dump(mode="json",
                       exclude_defaults=True), sort_keys=False), encoding="utf-8")
        tmp.replace(path)
        self._watcher.acknowledge()
        return state

    def rollback(self, version: str, source: str) -> PromptState:
        """Activate an earlier set from the history, through the same path as any edit."""
        prompts = self.history.load(version)
        return self.apply_prompt_set(prompts.model_dump(mode="json"), f"rollback to {version} by {source}")

    def preview(self, data: object) -> dict[str, object]:
        """Score the newest frame of every camera, and the last NG/uncertain frames, with a candidate set
        beside the active one; nothing changes."""
        assert self._model is not None
        prompts = parse_prompt_set(data, "preview")
        candidate = build_state(self._model, prompts, self.config.prompts.resolve().parent, self._cache, "preview")
        frames = [(f, None) for c in self.cameras.values() if (f := c.latest_peek()) is not None]
        defects = self.recent_defects()
        crops, tiles = self._crops(frames)
        for result, image in defects:
            h, w = image.shape[:2]
            ts = tiles_for(self._camera_config(result.camera), w, h)
            tiles.append(ts)
            crops.extend(crop(image, t.box) for t in ts)
        embeds = self._model.embed_pixels(to_pixel_values(crops, self._model.bundle.manifest.image)) if crops else None
        verdicts: list[dict[str, object]] = [{} for _ in tiles]
        for state, key in ((candidate, "candidate"), (self.prompt_state, "active")):
            scores = score(self._model, state, embeds) if embeds is not None else None
            i = 0
            for n, ts in enumerate(tiles):
                rows = scores[i : i + len(ts)].max(axis=0)  # type: ignore[index]
                i += len(ts)
                per = {name: round(float(s), 4) for name, s in zip(state.names, rows)}
                d = decide(per, state.prompts)
                verdicts[n][key] = {"verdict": d.verdict, "category": d.category, "score": round(d.score, 4),
                                    "scores": per}
        cameras = {f.camera: verdicts[n] for n, (f, _) in enumerate(frames)}
        recent = [{"id": r.id, "seq": r.seq, "camera": r.camera, "snapshot": r.snapshot, **verdicts[len(frames) + n]}
                  for n, (r, _) in enumerate(defects)]
        return {"version": candidate.version, "cameras": cameras, "recent_defects": recent}

    def snapshot(self, camera: str) -> str:
        """Save the camera's newest frame to the evidence store (cmd/snapshot)."""
        if camera not in self.cameras:
            raise ConfigError(f"snapshot: unknown camera '{camera}'; known: {', '.join(self.cameras)}.")
        frame = self.cameras[camera].latest_peek()
        if frame is None:
            raise CameraError(f"snapshot: camera '{camera}' has no frame yet; check its state.")
        return self._evidence.save_raw(frame.image, camera, f"snapshot-{int(time.time() * 1000)}")

    def _prompt_error(self, message: str | None) -> None:
        self.status.fact("prompt_error", message)

    # ---- triggers (local API; the MQTT trigger command calls this) ----
    def trigger(self, camera: str, part_id: str) -> None:
        if camera not in self.cameras:
            raise ConfigError(f"trigger: unknown camera '{camera}'; known: {', '.join(self.cameras)}.")
        with self._pending_lock:
            self._pending[camera] = _Pending(part_id, time.monotonic())

    # ---- inference ----
    def _gather(self, last: dict[str, int]) -> list[tuple[Frame, str | None]]:
        """Newest unseen frame of every camera; waits (briefly) only when there is none."""
        batch = self._collect(last)
        if not batch:
            with self._new_frame:
                if not any(c.has_new(last.get(n, 0)) for n, c in self.cameras.items()):
                    self._new_frame.wait(0.05)
            batch = self._collect(last)
        return batch

    def _collect(self, last: dict[str, int]) -> list[tuple[Frame, str | None]]:
        """(Triggered mode: only the cameras with a pending trigger.)"""
        out = []
        triggered = self.config.trigger.mode == "triggered"
        for name, cam in self.cameras.items():
            pending = self._pending.get(name) if triggered else None
            if triggered and pending is None:
                continue
            frame = cam.latest(after=last.get(name, 0))
            if frame is None or (pending is not None and frame.captured_mono < pending.since):
                continue
            last[name] = frame.number
            if pending is not None:
                with self._pending_lock:
                    self._pending.pop(name, None)
            out.append((frame, pending.part_id if pending else None))
        return out

    def _sources_finished(self) -> bool:
        return all(c.state in (CameraState.ENDED, CameraState.STOPPED) for c in self.cameras.values())

    def _inference_loop(self) -> None:
        last: dict[str, int] = {}
        version = self.prompt_state.version
        while not self._stop.is_set():
            self.heartbeat = time.monotonic()
            self._camera_health()
            batch = self._gather(last)
            if not batch:
                if self._sources_finished() and not any(c.has_new(last.get(n, 0))
                                                        for n, c in self.cameras.items()):
                    break
                continue
            state = self.prompt_state
            if state.version != version:
                self._smoother.reset()
                version = state.version
            for result, image in self.inspect(batch, state):
                self._put(result, image)
        self._results.put(None)  # tells the publisher that no more results come

    def _put(self, result: InspectionResult, image: np.ndarray) -> None:
        while True:  # never drop a result: wait for room, however long the sinks take
            try:
                self._results.put((result, image), timeout=0.5)
                return
            except queue.Full:
                self.status.problem("results", "result queue full: sinks are slower than inference")

    def _crops(self, batch: Sequence[tuple[Frame, str | None]]) -> tuple[list[np.ndarray], list[list[Tile]]]:
        crops: list[np.ndarray] = []
        tiles: list[list[Tile]] = []
        for frame, _ in batch:
            h, w = frame.image.shape[:2]
            ts = tiles_for(self._camera_config(frame.camera), w, h)
            tiles.append(ts)
            crops.extend(crop(frame.image, t.box) for t in ts)
        return crops, tiles

    def _camera_config(self, name: str) -> CameraConfig:
        return self.cameras[name].config

    def inspect(self, batch: list[tuple[Frame, str | None]], state: PromptState
                ) -> list[tuple[InspectionResult, np.ndarray]]:
        """Score a batch of frames in one encoder call and decide each."""
        assert self._model is not None
        t0 = time.perf_counter()
        crops, tiles = self._crops(batch)
        pixels = to_pixel_values(crops, self._model.bundle.manifest.image)
        t1 = time.perf_counter()
        embeds = self._model.embed_pixels(pixels)  # [N, D]
        t2 = time.perf_counter()
        scores = score(self._model, state, embeds)  # [N, C]
        out, i = [], 0
        for (frame, part_id), frame_tiles in zip(batch, tiles):
            rows = scores[i : i + len(frame_tiles)]
            i += len(frame_tiles)
            out.append((self._result(frame, part_id, frame_tiles, rows, state), frame.image))
        t3 = time.perf_counter()
        self._account(len(batch), t1 - t0, t2 - t1, t3 - t2)
        for observe in self.batch_observers:
            observe(len(crops), t2 - t1)
        return out

    def _account(self, frames: int, pre: float, enc: float, post: float) -> None:
        c = self.counters
        c.batches += 1
        c.inspected += frames
        c.stage_s["preprocess"] += pre
        c.stage_s["encode"] += enc
        c.stage_s["score"] += post

    def _result(self, frame: Frame, part_id: str | None, tiles: list[Tile], rows: np.ndarray,
                state: PromptState) -> InspectionResult:
        names = state.names
        frame_scores = rows.max(axis=0)  # [C] max over tiles
        scores = {n: round(float(s), 6) for n, s in zip(names, frame_scores)}
        decision = self._smoother.apply(frame.camera, decide(scores, state.prompts), state.prompts)
        tile_ref = None
        if len(tiles) > 1:
            best = tiles[int(rows[:, names.index(decision.category)].argmax())]
            tile_ref = TileRef(index=best.index, box=best.box)
        truth = frame.meta.get("truth")
        # numbered (and validated) by the publisher thread, which commits seqs in batches, off
        # the inference path: model_construct skips validation only until then
        return InspectionResult.model_construct(
            id=uuid.uuid4().hex, seq=0, ts=iso_ms(frame.captured_at),
            station=self.config.station.path, camera=frame.camera, verdict=decision.verdict,
            category=decision.category, score=round(decision.score, 6), scores=scores, tile=tile_ref,
            prompt_set=PromptSetRef(name=state.prompts.name, version=state.version),
            model=self._model_ref, latency_ms=round((time.monotonic() - frame.captured_mono) * 1000, 2),
            part_id=part_id, simulated=truth is not None,
            truth=truth if isinstance(truth, dict) else None,
        )

    def _camera_health(self) -> None:
        for name, cam in self.cameras.items():
            if cam.state == CameraState.RECONNECTING:
                self.status.problem(f"camera {name}", cam.stats.last_error or "reconnecting")
            elif cam.state == CameraState.STREAMING and cam.stale:
                self.status.problem(f"camera {name}", f"no frame for {cam.config.stale_after_s:g} s")
            else:
                self.status.problem(f"camera {name}", None)

    # ---- publishing ----
    def _next_batch(self, limit: int = 256) -> tuple[list[tuple[InspectionResult, np.ndarray]], bool]:
        """Everything queued (up to ``limit``): one outbox transaction per batch."""
        item = self._results.get()
        if item is None:
            return [], True
        batch = [item]
        while len(batch) < limit:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _number(self, batch: list[tuple[InspectionResult, np.ndarray]]
                ) -> list[tuple[InspectionResult, np.ndarray]]:
        """Give a batch its seqs (one durable transaction) and validate every payload."""
        if not batch:
            return batch
        seqs = self._seq.take(len(batch))
        return [(InspectionResult.model_validate({**r.model_dump(by_alias=True), "seq": s}), image)
                for (r, image), s in zip(batch, seqs)]

    def _publish_loop(self) -> None:
        ok_every = self.config.evidence.ok_every
        finished = False
        while not finished:
            batch, finished = self._next_batch()
            t0 = time.perf_counter()
            batch = self._number(batch)
            for result, image in batch:
                self.counters.verdicts[result.verdict] = self.counters.verdicts.get(result.verdict, 0) + 1
                key = (result.verdict, result.category)
                self.counters.by_category[key] = self.counters.by_category.get(key, 0) + 1
                if result.verdict != "ok" or (ok_every and result.seq % ok_every == 0):
                    result.snapshot = self._evidence.save(image, result)
                if result.verdict != "ok":
                    with self._recent_lock:
                        self._recent_defects.append((result, image))
            results = [r for r, _ in batch]
            with self._recent_lock:
                self._recent.extend(results)
            if self._bridge is not None and results:
                self._bridge.store(results, self._stop)  # durable before any sink sees them
            for result in results:
                for sink in self._sinks:
                    sink.write(result)
            self.counters.stage_s["publish"] += time.perf_counter() - t0
        self.status.problem("results", None)
        self._done.set()

    # ---- what operations read (health, metrics, watchdog) ----
    def stalled_for(self, now: float | None = None) -> float:
        """Seconds since the inference loop last turned (it turns at least every 50 ms when healthy)."""
        if self._done.is_set():
            return 0.0
        return (now if now is not None else time.monotonic()) - self.heartbeat

    def recent(self) -> list[InspectionResult]:
        """The last results, oldest first (a copy: the publisher keeps appending)."""
        with self._recent_lock:
            return list(self._recent)

    def recent_defects(self) -> list[tuple[InspectionResult, np.ndarray]]:
        with self._recent_lock:
            return list(self._recent_defects)

    @property
    def backend(self) -> str | None:
        return self._model_ref.backend if getattr(self, "_model_ref", None) is not None else None

    @property
    def result_queue_depth(self) -> int:
        return self._results.qsize()

    @property
    def bridge(self) -> MqttBridge | None:
        return self._bridge

    # ---- running and stopping ----
    def run(self, duration: float | None = None) -> None:
        """Block until stop(), ``duration`` seconds, or every finite source is done."""
        deadline = None if duration is None else time.monotonic() + duration
        while not self._done.is_set() and not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self._done.wait(0.1)

    def request_stop(self) -> None:
        """Safe from a signal handler: only sets an event."""
        self._stop.set()

    def close(self) -> None:
        """Stop capture, let inference finish its batch, drain every queued result, flush."""
        if self.ops is not None:
            self.ops.stop()
        for cam in self.cameras.values():
            cam.stop()
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)
        if hasattr(self, "_watcher"):
            self._watcher.stop()
        if self._bridge is not None:
            self._bridge.stop()
        for sink in getattr(self, "_sinks", []):
            sink.close()
        if hasattr(self, "_seq"):
            self._seq.close()
        if self._model is not None:
            self._model.close()

    def __enter__(self) -> InspectionService:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
