"""ROIs and an overlapping tile grid: small defects on large frames.

A whole 640x480 frame squashed to 224 pixels shrinks a 10-pixel scratch to 3. Tiles give
the encoder a closer look; a category's frame score is the max over tiles, and the result
names the tile that gave it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.config import CameraConfig, TileConfig

Box = tuple[int, int, int, int]  # x, y, w, h in frame pixels


@dataclass(frozen=True)
class Tile:
    index: int  # 0 is the whole ROI when include_full
    box: Box


def _clip_roi(roi: Box | None, width: int, height: int) -> Box:
    if roi is None:
        return (0, 0, width, height)
    x, y, w, h = roi
    x, y = min(max(0, x), width - 1), min(max(0, y), height - 1)
    return (x, y, max(1, min(w, width - x)), max(1, min(h, height - y)))


def grid(roi: Box, tiles: TileConfig) -> list[Box]:
    """rows x cols boxes covering ``roi``, each overlapping its neighbours by ``overlap``."""
    x0, y0, w, h = roi
    tw = w / (tiles.cols - (tiles.cols - 1) * tiles.overlap)
    th = h / (tiles.rows - (tiles.rows - 1) * tiles.overlap)
    boxes = []
    for r in range(tiles.rows):
        for c in range(tiles.cols):
            x = x0 + c * tw * (1 - tiles.overlap)
            y = y0 + r * th * (1 - tiles.overlap)
            boxes.append((int(round(x)), int(round(y)), int(round(tw)), int(round(th))))
    return boxes


def tiles_for(camera: CameraConfig, width: int, height: int) -> list[Tile]:
    """The crops one frame of this camera is scored on."""
    roi = _clip_roi(camera.roi, width, height)
    if camera.tiles is None:
        return [Tile(0, roi)]
    boxes = ([roi] if camera.tiles.include_full else []) + grid(roi, camera.tiles)
    for n in camera.tiles.windows:  # further scales (WinCLIP-style windows)
        boxes += grid(roi, camera.tiles.model_copy(update={"rows": n, "cols": n, "windows": []}))
    return [Tile(i, b) for i, b in enumerate(boxes)]


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    x, y, w, h = box
    return image[y : y + h, x : x + w]
