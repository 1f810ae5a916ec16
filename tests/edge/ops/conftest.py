"""Ops tests share the MQTT tests' real mosquitto fixture."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.config import ServiceConfig, parse_config
from edge.encoders.onnxruntime import OrtImageEncoder
from edge.mqtt.local_broker import free_port
from tests.edge.conftest import PROMPTS
from tests.edge.mqtt.conftest import Broker, broker  # noqa: F401 - re-exported fixture

__all__ = ["Broker", "broker", "HangingEncoder", "get", "wait_for"]


class HangingEncoder:
    """A real ONNX Runtime encoder that can be made to hang, as a wedged GPU driver would.

    Fault injection, not a mock: every call really encodes; ``hang()`` makes the next call
    block until ``release()``, which is what a stuck CUDA kernel looks like from Python.
    """

    def __init__(self, path: Path) -> None:
        self._inner = OrtImageEncoder(path)
        self.name, self.precision, self.max_batch = "onnxruntime", "fp32", self._inner.max_batch
        self.has_patches = self._inner.has_patches
        self._hang = threading.Event()
        self._release = threading.Event()
        self.hanging = threading.Event()

    def hang(self) -> None:
        self._hang.set()

    def release(self) -> None:
        self._release.set()

    def _maybe_hang(self) -> None:
        if self._hang.is_set():
            self.hanging.set()
            self._release.wait(60)

    def encode_images(self, pixel_values: np.ndarray) -> np.ndarray:
        self._maybe_hang()
        return self._inner.encode_images(pixel_values)

    def encode_views(self, pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self._maybe_hang()
        return self._inner.encode_views(pixel_values)

    def close(self) -> None:
        self._release.set()
        self._inner.close()


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_for(check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout} s")


@pytest.fixture
def config(tiny_bundles: dict[str, Path], tmp_path: Path) -> Callable[..., ServiceConfig]:
    prompts = tmp_path / "prompts.yaml"
    prompts.write_text(PROMPTS)

    def make(cameras: list[dict[str, Any]] | None = None, **extra: Any) -> ServiceConfig:
        data = {"cameras": cameras or [{"name": "cam1", "source": "sim://line?seed=1&size=160x120", "fps": 20}],
                "model": {"bundle": str(tiny_bundles["clip"])}, "prompts": str(prompts),
                "state_dir": str(tmp_path / "state"), "station": {"site": "s", "line": "l", "station": "st"},
                "ops": {"http": {"port": free_port()}, "stall_after_s": 1.0}, **extra}
        return parse_config(data, "test")
    return make
