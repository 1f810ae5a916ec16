"""Frame sources behind one interface: OpenCV devices/streams/files, image folders, sim://.

``read()`` returns the next frame or None at the end of a finite source; it raises
CameraError when the source broke (the capture thread then reconnects with backoff).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from edge.errors import CameraError, ImageError
from edge.preprocess import IMAGE_SUFFIXES, load_image

log = logging.getLogger("edge_inspect.camera")


# user-info of a URL (scheme://user:pass@host): up to the authority's last '@', which a raw password may hold
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s/?#]*@")
# rtspsrc's credential properties in a GStreamer pipeline (user-id=admin user-pw=secret)
_GST_CREDENTIAL = re.compile(r"(?i)\b(user-id|user-pw|proxy-id|proxy-pw)=(\"[^\"]*\"|'[^']*'|\S+)")


def redact(source: str) -> str:
    """A camera source as it may be shown (errors, camera stats, /healthz, the MQTT status, logs): credentials
    replaced by ``***`` (``rtsp://***@host/stream``), which the config may hold but nothing else should."""
    return _GST_CREDENTIAL.sub(r"\1=***", _USERINFO.sub(r"\1***@", source))


@dataclass
class RawFrame:
    image: np.ndarray  # BGR uint8 [H, W, 3]
    meta: dict[str, object] = field(default_factory=dict)  # e.g. simulator truth


class FrameSource(Protocol):
    """``live`` sources (devices, streams, sim) lose frames when inference is slower: the
    newest wins. Replay sources (video files, image folders, ``sim://...&live=0``) are
    lossless: the next frame is read only once the previous one was taken. ``period`` is
    the source's own pacing in seconds (0: it paces itself or needs none)."""

    name: str
    live: bool
    period: float
    unreadable: int  # files skipped because they could not be decoded (replay sources)

    def read(self) -> RawFrame | None: ...

    def close(self) -> None: ...


class SimSource:
    """The simulated line; ``truth`` travels with every frame."""

    def __init__(self, url: str) -> None:
        from edge.sim import parse_sim_url, simulator

        self.params = parse_sim_url(url)
        p = self.params
        self._sim = simulator(p)
        self._index = p.start
        self.name = url
        self.live = p.live
        self.period = 1.0 / p.fps if p.live else 0.0
        self.unreadable = 0

    def read(self) -> RawFrame | None:
        p = self.params
        if p.frames is not None and self._index >= p.start + p.frames:
            return None
        frame = self._sim.frame(self._index)
        self._index += 1
        return RawFrame(frame.image, {"truth": frame.truth.model_dump(mode="json")})

    def close(self) -> None:
        pass


class FolderSource:
    """Images of a folder in name order; unreadable files are skipped and counted."""

    def __init__(self, folder: Path, loop: bool) -> None:
        self.files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise CameraError(f"{folder}: no images (PNG, JPEG, BMP, TIFF, WebP); add some or fix the path.")
        self.loop = loop
        self.name = str(folder)
        self.live = False
        self.period = 0.0
        self.unreadable = 0
        self._i = 0

    def read(self) -> RawFrame | None:
        for _ in range(len(self.files)):
            if self._i >= len(self.files):
                if not self.loop:
                    return None
                self._i = 0
            path = self.files[self._i]
            self._i += 1
            try:
                return RawFrame(load_image(path), {"source": {"file": path.name, "frame": self._i - 1}})
            except ImageError as err:
                self.unreadable += 1
                log.warning("camera source %s: skipped an unreadable image: %s", self.name, err)
        raise CameraError(f"{self.name}: none of its images can be read; replace them.")

    def close(self) -> None:
        pass


def _opencv_target(source: str) -> tuple[object, int]:
    import cv2

    if source.isdigit():
        return int(source), cv2.CAP_ANY
    if "appsink" in source:  # a GStreamer pipeline (Jetson CSI: nvarguscamerasrc ! ... ! appsink)
        return source, cv2.CAP_GSTREAMER
    return source, cv2.CAP_ANY


class OpenCVSource:
    """USB/V4L2 devices, RTSP/HTTP streams, GStreamer pipelines and video files."""

    def __init__(self, source: str, loop: bool) -> None:
        import cv2

        target, api = _opencv_target(source)
        self._cap = cv2.VideoCapture(target, api)  # type: ignore[call-overload]
        if not self._cap.isOpened():
            self._cap.release()
            raise CameraError(
                f"{redact(source)}: cannot be opened; check the device/URL/path, permissions (video group) "
                "and, for GStreamer pipelines, that OpenCV was built with GStreamer (JetPack's is)."
            )
        self.name = redact(source)  # shown in messages; the source itself stays in the config only
        self._file = Path(source)
        self.is_file = self._file.is_file()
        self.live = not self.is_file
        self.period = 0.0
        self.loop = loop
        self.unreadable = 0
        self._frame = 0

    def _raw(self, image: np.ndarray) -> RawFrame:
        if not self.is_file:
            return RawFrame(image)
        self._frame += 1  # a replayed video: which frame of which file the verdict is about
        return RawFrame(image, {"source": {"file": self._file.name, "frame": self._frame - 1}})

    def read(self) -> RawFrame | None:
        import cv2

        ok, image = self._cap.read()
        if ok and image is not None:
            return self._raw(image)
        if self.is_file:
            if not self.loop:
                return None
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._frame = 0
            ok, image = self._cap.read()
            if ok and image is not None:
                return self._raw(image)
        raise CameraError(f"{self.name}: stopped delivering frames; reconnecting.")

    def close(self) -> None:
        self._cap.release()


def open_source(source: str, loop: bool = True) -> FrameSource:
    """Pick the source type from the string the config gives."""
    if source.startswith("sim://"):
        return SimSource(source)
    path = Path(source)
    if path.is_dir():
        return FolderSource(path, loop)
    if "://" not in source and not source.isdigit() and "appsink" not in source and not path.exists():
        raise CameraError(f"{redact(source)}: no such device, file or folder; check the camera source.")
    return OpenCVSource(source, loop)

