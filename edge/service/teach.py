"""Teaching good parts from the line: frames become the good-part memory through the prompt-set path.

An operator picks good frames (the next N of a camera, or recent frames by result id); they are
staged as PNGs under ``STATE_DIR/good/pending-*`` and shown; once kept, the folder is renamed to
``STATE_DIR/good/<hash>`` and the active prompt set is re-activated with ``good`` pointing at it,
through :meth:`PromptManager.apply`: validated (the images are checked and the memory built, off the
inference thread), versioned, audited with who and when, and rolled back like any edit. A selection
that is empty, from a camera that is down, or with a frame unlike the others (another product) is
refused and the active memory stays.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.cameras import Camera, CameraState
from edge.errors import CameraError, ConfigError

MAX_TEACH = 64  # frames per teaching; 16 is what the memory's numbers were measured with


def unique(ids: Sequence[str]) -> list[str]:
    """``ids`` without repeats, in their first order."""
    return list(dict.fromkeys(ids))


class Teacher:
    def __init__(self, root: Path, cameras: dict[str, Camera], recent_frame: Callable[[str], np.ndarray | None]
                 ) -> None:
        self.root = root  # STATE_DIR/good
        self.cameras = cameras
        self._recent_frame = recent_frame  # result id -> its raw frame (the publisher's ring), or None

    def capture(self, camera: str, count: int, timeout_s: float = 30.0) -> list[np.ndarray]:
        """The camera's next ``count`` frames (copies; inference is not disturbed)."""
        if camera not in self.cameras:
            raise ConfigError(f"teach: unknown camera '{camera}'; known: {', '.join(self.cameras)}.")
        if not 1 <= count <= MAX_TEACH:
            raise ConfigError(f"teach: frames must be 1 to {MAX_TEACH}, got {count}.")
        cam = self.cameras[camera]
        if cam.state != CameraState.STREAMING or cam.stale:
            raise CameraError(f"teach: camera '{camera}' is {cam.state.value} ({cam.stats.last_error or 'no frames'}); "
                              "teach from a camera that delivers frames.")
        frames: list[np.ndarray] = []
        last = 0
        deadline = time.monotonic() + timeout_s
        while len(frames) < count and time.monotonic() < deadline:
            frame = cam.latest_peek()
            if frame is not None and frame.number > last:
                last = frame.number
                frames.append(frame.image.copy())
            else:
                time.sleep(0.02)
        if len(frames) < count:
            raise CameraError(f"teach: camera '{camera}' gave {len(frames)} of {count} frames in {timeout_s:g} s; "
                              "check that the line is running.")
        return frames

    def recent(self, ids: Sequence[str]) -> list[np.ndarray]:
        """The frames of recent results, each id once (order kept): a repeated frame would count as several
        good parts, driving the leave-one-out scores to about 0 and the memory's threshold down with them."""
        ids = unique(ids)
        if len(ids) > MAX_TEACH:
            raise ConfigError(f"teach: {len(ids)} results selected; pick at most {MAX_TEACH}.")
        frames = [self._recent_frame(i) for i in ids]
        missing = [i for i, f in zip(ids, frames) if f is None]
        if missing:
            raise ConfigError(f"teach: results {', '.join(missing[:3])} are no longer kept (only the newest frames "
                              "are); pick recent ones or teach the next frames of a camera.")
        return [f for f in frames if f is not None]

    def stage(self, frames: Sequence[np.ndarray]) -> tuple[str, list[str]]:
        """Write the frames as PNGs in a pending folder: (stage id, file names) for the operator to look at."""
        if not frames:
            raise ConfigError("teach: no frames selected; pick good frames or give a number of frames.")
        digest = hashlib.sha256(b"".join(hashlib.sha256(np.ascontiguousarray(f).tobytes()).digest() for f in frames))
        stage = f"pending-{digest.hexdigest()[:12]}"
        folder = self.root / stage
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for i, frame in enumerate(frames):
            name = f"good{i:03d}.png"
            if not cv2.imwrite(str(folder / name), frame):
                raise OSError(f"{folder / name}: cannot write the taught frame")
            names.append(name)
        self._prune_pending(keep=stage)
        return stage, names

    def staged(self, stage: str) -> Path:
        if not stage.startswith("pending-") or not stage[8:].isalnum():
            raise ConfigError(f"teach: '{stage}' is not a staged selection; teach again.")
        folder = self.root / stage
        if not folder.is_dir():
            raise ConfigError(f"teach: selection {stage} is gone (another was staged since); teach again.")
        return folder

    def keep(self, stage: str) -> Path:
        """The staged folder under its final name (content-addressed, so the same frames are kept once)."""
        folder = self.staged(stage)
        final = self.root / stage.removeprefix("pending-")
        if final.exists():
            shutil.rmtree(folder)
        else:
            folder.rename(final)
        return final

    def _prune_pending(self, keep: str) -> None:
        for old in self.root.glob("pending-*"):
            if old.name != keep:
                shutil.rmtree(old, ignore_errors=True)
