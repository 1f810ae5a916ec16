"""Ops tests share the MQTT tests' real mosquitto fixture."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edge.encoders.onnxruntime import OrtImageEncoder
from tests.edge.mqtt.conftest import Broker, broker  # noqa: F401 - re-exported fixture

__all__ = ["Broker", "broker", "HangingEncoder"]


class HangingEncoder:
    """A real ONNX Runtime encoder that can be made to hang, as a wedged GPU driver would.

    Fault injection, not a mock: every call really encodes; ``hang()`` makes the next call
    block until ``release()``, which is what a stuck CUDA kernel looks like from Python.
    """

    def __init__(self, path: Path) -> None:
        self._inner = OrtImageEncoder(path)
        self.name, self.precision, self.max_batch = "onnxruntime", "fp32", self._inner.max_batch
        self._hang = threading.Event()
        self._release = threading.Event()
        self.hanging = threading.Event()

    def hang(self) -> None:
        self._hang.set()

    def release(self) -> None:
        self._release.set()

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        if self._hang.is_set():
            self.hanging.set()
            self._release.wait(60)
        return self._inner.encode_images(pixel_values)

    def close(self) -> None:
        self._release.set()
        self._inner.close()
