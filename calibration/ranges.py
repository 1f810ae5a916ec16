"""Activation ranges seen on calibration data, through ONNX Runtime's own calibrators.

One reader type feeds every calibrator (ranges for the FP16 overflow check, MinMax /
Percentile / Entropy for INT8), so the tensors a pass sees are always the preprocessed
batches of :mod:`calibration.data`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator


class FeedReader(CalibrationDataReader):  # type: ignore[misc]
    """Feeds prepared input dicts to an ONNX Runtime calibrator, reporting progress."""

    def __init__(self, feeds: Sequence[dict[str, np.ndarray]], on_batch: Callable[[int], None] | None = None):
        self._feeds = list(feeds)
        self._next = 0
        self._on_batch = on_batch

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self._feeds):
            return None
        feed = self._feeds[self._next]
        self._next += 1
        if self._on_batch:
            self._on_batch(self._next)
        return feed

    def __len__(self) -> int:
        return len(self._feeds)

    def rewind(self) -> None:
        self._next = 0


def input_names(model_path: Path) -> list[str]:
    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def activation_absmax(model_path: Path, reader: FeedReader) -> dict[str, float]:
    """Largest |value| of every float tensor (node inputs and outputs) over the reader's batches."""
    with tempfile.TemporaryDirectory(prefix="edge-inspect-ranges-") as tmp:
        calibrator = create_calibrator(
            model_path, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=CalibrationMethod.MinMax,
        )
        calibrator.collect_data(reader)
        data = calibrator.compute_data()
    out: dict[str, float] = {}
    for name, td in data.data.items():
        lo, hi = (float(np.max(np.abs(v))) for v in td.range_value)
        out[name] = max(lo, hi)
    return out
