"""The evidence store keeps the newest frames within its byte budget."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.results import InspectionResult, ModelRef, PromptSetRef
from edge.service.evidence import EvidenceStore
from edge.sim import LineSimulator


def _result(seq: int) -> InspectionResult:
    return InspectionResult(
        id=f"r{seq}", seq=seq, ts="2026-11-28T20:40:12.345Z", station="s/l/st", camera="cam1", verdict="ng",
        category="hole", score=0.9, scores={"good": 0.1, "hole": 0.9}, tile=None,
        prompt_set=PromptSetRef(name="p", version="v"),
        model=ModelRef(name="m", precision="fp32", bundle="b", backend="onnxruntime"), latency_ms=1.0)


def test_store_stays_under_its_bound_and_keeps_the_newest(tmp_path: Path) -> None:
    frames = [LineSimulator(seed=1).frame(i).image for i in range(5)]
    budget = 200_000
    store = EvidenceStore(tmp_path / "ev", max_bytes=budget)
    refs = [store.save(frames[seq % 5], _result(seq)) for seq in range(1, 41)]
    on_disk = sorted((tmp_path / "ev").rglob("*.jpg"))
    assert sum(p.stat().st_size for p in on_disk) <= budget == store.max_bytes
    assert store.deleted > 0 and len(on_disk) == 40 - store.deleted
    assert (tmp_path / "ev" / refs[-1]).is_file() and not (tmp_path / "ev" / refs[0]).exists()
    image = cv2.imread(str(tmp_path / "ev" / refs[-1]))
    assert image is not None and image.shape == frames[0].shape
    assert not np.array_equal(image, frames[40 % 5])  # annotated: the verdict and scores are drawn
    again = EvidenceStore(tmp_path / "ev", max_bytes=budget)  # a restart counts what is there
    assert again.total == sum(p.stat().st_size for p in on_disk)
