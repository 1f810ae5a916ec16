"""NG evidence: the frame as JPEG with the deciding tile and the scores drawn on it.

The store is bounded in bytes; the oldest files go first, so a line that rejects every
part for a week fills a known amount of disk and keeps the newest evidence.
"""

from __future__ import annotations

import threading
from collections import deque
from pathlib import Path

import cv2
import numpy as np

from edge.inspect.memory import blend_heat
from edge.results import InspectionResult


def annotate(image: np.ndarray, result: InspectionResult, heat: np.ndarray | None = None) -> np.ndarray:
    out = blend_heat(image, heat) if heat is not None else image.copy()
    colour = {"ng": (0, 0, 255), "uncertain": (0, 200, 255), "ok": (0, 200, 0)}[result.verdict]
    if result.anomaly is not None and result.anomaly.box is not None:
        x, y, w, h = result.anomaly.box
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    elif result.tile is not None:
        x, y, w, h = result.tile.box
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, 2)
    lines = [f"{result.verdict.upper()} {result.category} {result.score:.2f}"]
    lines += [f"{k} {v:.2f}" for k, v in sorted(result.scores.items(), key=lambda kv: -kv[1])[:4]]
    for i, text in enumerate(lines):
        cv2.putText(out, text, (8, 22 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(out, text, (8, 22 + 20 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)
    return out


class EvidenceStore:
    """Files ``{camera}/{seq:012d}-{verdict}.jpg`` under ``root``, at most ``max_bytes`` in all."""

    def __init__(self, root: Path, max_bytes: int, quality: int = 85) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.quality = quality
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        existing = sorted(root.glob("*/*.jpg"), key=lambda p: p.stat().st_mtime)
        self._files: deque[tuple[Path, int]] = deque((p, p.stat().st_size) for p in existing)
        self.total = sum(size for _, size in self._files)
        self.deleted = 0

    def save(self, image: np.ndarray, result: InspectionResult, heat: np.ndarray | None = None) -> str:
        """Write the annotated frame (with the anomaly map when there is one); return its reference."""
        ok, data = cv2.imencode(".jpg", annotate(image, result, heat), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        rel = Path(result.camera) / f"{result.seq:012d}-{result.verdict}.jpg"
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.tobytes())
        with self._lock:
            self._files.append((path, len(data)))
            self.total += len(data)
            self._prune()
        return rel.as_posix()

    def save_raw(self, image: np.ndarray, camera: str, name: str) -> str:
        """An unannotated frame (cmd/snapshot)."""
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError("JPEG encoding failed")
        rel = Path(camera) / f"{name}.jpg"
        (self.root / rel).parent.mkdir(parents=True, exist_ok=True)
        (self.root / rel).write_bytes(data.tobytes())
        with self._lock:
            self._files.append((self.root / rel, len(data)))
            self.total += len(data)
            self._prune()
        return rel.as_posix()

    def _prune(self) -> None:
        while self.total > self.max_bytes and len(self._files) > 1:
            path, size = self._files.popleft()
            path.unlink(missing_ok=True)
            self.total -= size
            self.deleted += 1
