"""One capture loop per camera (run by the station on its own supervised thread) that always
holds the newest frame.

Capture never waits for inference: each new frame replaces the previous one, and a frame
replaced before anyone took it is counted as skipped (never silently). When a source
fails or stalls (no frame for ``stale_after_s``), the thread reopens it with exponential
backoff and reports its state, so the service can say "camera down" instead of going quiet.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum

import cv2
import numpy as np

from edge.cameras.sources import FrameSource, open_source, redact
from edge.config import CameraConfig
from edge.errors import CameraError

log = logging.getLogger("edge_inspect.camera")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0


class CameraState(str, Enum):
    STARTING = "starting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    ENDED = "ended"  # a finite source (file/folder without loop, sim with frames=N) is done
    STOPPED = "stopped"


@dataclass
class Frame:
    camera: str
    number: int  # per camera, +1 for each captured frame
    image: np.ndarray
    captured_at: datetime  # UTC wall clock, for the result's ts
    captured_mono: float  # monotonic, for latency
    meta: dict[str, object] = field(default_factory=dict)


@dataclass
class CameraStats:
    frames: int = 0
    skipped: int = 0  # replaced before inference took them
    reconnects: int = 0
    unreadable: int = 0  # replay files that could not be decoded (skipped)
    converted: int = 0  # frames with another channel count (grey, BGRA) converted to BGR
    capture_s: float = 0.0  # reading (decoding) and converting frames, on this camera's thread: the bench's capture
    last_error: str | None = None


class Camera:
    """Owns a FrameSource; ``run()`` is its capture loop (the station runs it on a supervised
    thread); ``latest()`` never blocks on capture."""

    def __init__(self, config: CameraConfig, new_frame: threading.Condition | None = None) -> None:
        self.config = config
        self.name = config.name
        self.state = CameraState.STARTING
        self.stats = CameraStats()
        self._newest: Frame | None = None
        self._taken = 0
        self._lock = threading.Lock()
        self._new_frame = new_frame or threading.Condition()
        self._stop = threading.Event()
        self._last_frame_mono = time.monotonic()
        self._unreadable_before = 0  # unreadable files of sources already closed

    def stop(self) -> None:
        """Ask the capture loop to end (the station joins its thread)."""
        self._stop.set()
        self._set_state(CameraState.STOPPED)

    def latest(self, after: int = 0) -> Frame | None:
        """The newest frame if its number is greater than ``after``."""
        with self._lock:
            frame = self._newest
            if frame is None or frame.number <= after:
                return None
            self._taken = frame.number
            return frame

    def latest_peek(self) -> Frame | None:
        """The newest frame without taking it (previews, snapshots)."""
        with self._lock:
            return self._newest

    def has_new(self, after: int) -> bool:
        """Whether a frame newer than ``after`` waits (without taking it)."""
        with self._lock:
            return self._newest is not None and self._newest.number > after

    @property
    def stale(self) -> bool:
        return time.monotonic() - self._last_frame_mono > self.config.stale_after_s

    def _set_state(self, state: CameraState, reason: str | None = None) -> None:
        if self._stop.is_set() and state not in (CameraState.STOPPED, CameraState.ENDED):
            return  # stopping: the loop's last word must not undo STOPPED
        reason = redact(reason) if reason else reason  # whatever raised it: it reaches /healthz and MQTT status
        if state != self.state:
            log.info("camera %s: %s%s", self.name, state.value, f" ({reason})" if reason else "")
        self.state = state
        if reason:
            self.stats.last_error = reason

    def _bgr(self, image: np.ndarray) -> np.ndarray:
        """Every frame leaves the camera as BGR uint8: a grey or BGRA camera is converted (and counted)."""
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image
        if image.dtype != np.uint8:
            image = cv2.convertScaleAbs(image, alpha=255.0 / max(1.0, float(image.max())))  # e.g. 16-bit mono
        if image.ndim == 2 or image.shape[2] == 1:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        else:
            raise CameraError(f"camera {self.name}: frames with {image.shape[2]} channels; expected 1, 3 or 4.")
        if self.stats.converted == 0:
            log.info("camera %s: converting frames to BGR (the source gives %s)", self.name, image.shape)
        self.stats.converted += 1
        return image

    def _publish(self, image: np.ndarray, meta: dict[str, object]) -> None:
        image = self._bgr(image)
        now = time.monotonic()
        with self._lock:
            if self._newest is not None and self._newest.number > self._taken:
                self.stats.skipped += 1  # newest wins: the unread frame is dropped, and counted
            self.stats.frames += 1
            self._newest = Frame(self.name, self.stats.frames, image, datetime.now(timezone.utc), now, meta)
        self._last_frame_mono = now
        with self._new_frame:
            self._new_frame.notify_all()

    def run(self) -> None:
        """Open, capture, reopen with backoff; returns at stop or when a finite source ended."""
        backoff = BACKOFF_START_S
        while not self._stop.is_set():
            try:
                source = open_source(self.config.source, loop=self.config.loop)
            except CameraError as err:
                self._set_state(CameraState.RECONNECTING, str(err))
                self.stats.reconnects += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            try:
                ended = self._capture(source)
            finally:
                self._unreadable_before += source.unreadable
                source.close()
            if ended:
                self._set_state(CameraState.ENDED)
                return
            if self._stop.is_set():
                return
            if not self._stop.is_set():
                self.stats.reconnects += 1
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _wait_taken(self) -> None:
        """Replay sources: hold the next read until inference took the current frame."""
        while not self._stop.is_set():
            with self._lock:
                if self._newest is None or self._taken >= self._newest.number:
                    return
            self._stop.wait(0.002)
            self._last_frame_mono = time.monotonic()  # waiting for inference is not a stall

    def _capture(self, source: FrameSource) -> bool:
        """Read until stop, end (True) or failure (False)."""
        period = 1.0 / self.config.fps if self.config.fps else source.period
        next_due = time.monotonic()
        self._last_frame_mono = time.monotonic()
        while not self._stop.is_set():
            if not source.live:
                self._wait_taken()
            started = time.perf_counter()
            try:
                raw = source.read()
            except CameraError as err:
                self._set_state(CameraState.RECONNECTING, str(err))
                return False
            except Exception as err:  # a source bug must not kill the thread while the state says streaming
                log.exception("camera %s: source failed", self.name)
                self._set_state(CameraState.RECONNECTING, f"source failed: {type(err).__name__}: {err}")
                return False
            self.stats.unreadable = self._unreadable_before + source.unreadable
            if raw is None:
                return True
            self._publish(raw.image, raw.meta)
            self.stats.capture_s += time.perf_counter() - started
            self._set_state(CameraState.STREAMING)
            if period:
                next_due = max(next_due + period, time.monotonic() - period)
                self._stop.wait(max(0.0, next_due - time.monotonic()))
        return False
