"""Camera sources and the capture thread that always holds the newest frame."""

from edge.cameras.camera import Camera, CameraState, Frame
from edge.cameras.sources import FrameSource, open_source, redact

__all__ = ["Camera", "CameraState", "Frame", "FrameSource", "open_source", "redact"]
