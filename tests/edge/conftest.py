"""Service fixtures: a config builder on the tiny bundles, and a collecting sink."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.config import ServiceConfig, parse_config
from edge.results import InspectionResult
from edge.service.sinks import SinkBase

PROMPTS = """\
name: tiny
templates: ["a photo of a {} part"]
categories:
  - {name: good, ok: true, prompts: ["flawless", "clean"]}
  - {name: scratch, prompts: ["scratched"]}
  - {name: hole, prompts: ["with a hole"]}
"""


class Collector(SinkBase):
    """A sink that keeps results, for assertions; thread-safe."""

    name = "collector"

    def __init__(self) -> None:
        self.results: list[InspectionResult] = []
        self._lock = threading.Lock()

    def write(self, result: InspectionResult) -> None:
        with self._lock:
            self.results.append(result)

    def wait_for(self, predicate: Callable[[list[InspectionResult]], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(list(self.results)):
                    return
            time.sleep(0.05)
        raise AssertionError(f"condition not met in {timeout} s; {len(self.results)} results")


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.yaml"
    path.write_text(PROMPTS)
    return path


@pytest.fixture
def make_config(tiny_bundles: dict[str, Path], prompts_file: Path, tmp_path: Path
                ) -> Callable[..., ServiceConfig]:
    def make(cameras: list[dict[str, Any]], **extra: Any) -> ServiceConfig:
        data = {"cameras": cameras, "model": {"bundle": str(tiny_bundles["siglip"])},
                "prompts": str(prompts_file), "state_dir": str(tmp_path / "state"),
                "station": {"site": "s1", "line": "l1", "station": "st1"}, **extra}
        return parse_config(data, "test")
    return make
