"""Frames -> per-frame scores: the one crop, encode and reduce path of every caller.

The line, the operator's preview, ``prompts test``, the calibration gate, ``evaluate`` and the
demo card all score frames here, so a number measured offline is the number the line
produces: each frame is cut into its camera's ROI and tiles, every crop of every frame goes
through ONE encoder call, each crop is scored against the prompt state, and a category's
frame score is its max over the frame's tiles (the tile that gave it is named).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge.config import CameraConfig, TileConfig
from edge.inspect.decision import Decision, decide
from edge.inspect.prompt_state import PromptState, score
from edge.inspect.tiles import Tile, crop, tiles_for
from edge.model import ZeroShotModel
from edge.preprocess import to_pixel_values

View = CameraConfig | TileConfig | None  # how a frame is cut: a camera's ROI + tiles, a bare grid, or whole


@dataclass(frozen=True)
class FrameScores:
    """One frame's scores: per category (max over tiles) and per tile."""

    names: list[str]
    scores: np.ndarray  # [C] the frame's score per category
    tile_scores: np.ndarray  # [T, C]
    tiles: list[Tile]

    def as_dict(self, digits: int = 6) -> dict[str, float]:
        return {n: round(float(s), digits) for n, s in zip(self.names, self.scores)}

    def decide(self, state: PromptState) -> Decision:
        """The frame's verdict with the prompt set's thresholds (before N-of-M smoothing)."""
        return decide(self.as_dict(), state.prompts)

    def best_tile(self, category: str) -> Tile | None:
        """The tile that gave ``category`` its frame score; None when the frame is one crop."""
        if len(self.tiles) < 2:
            return None
        return self.tiles[int(self.tile_scores[:, self.names.index(category)].argmax())]


def camera_for(view: View) -> CameraConfig:
    """A camera config for a bare tile grid (offline tools), or the camera itself."""
    if isinstance(view, CameraConfig):
        return view
    return CameraConfig(name="offline", source="offline", tiles=view)


def cut(frames: Sequence[np.ndarray], views: Sequence[View]) -> tuple[list[np.ndarray], list[list[Tile]]]:
    """Every frame's crops (flat, frame by frame) and each frame's tiles."""
    crops: list[np.ndarray] = []
    tiles: list[list[Tile]] = []
    for image, view in zip(frames, views):
        h, w = image.shape[:2]
        ts = tiles_for(camera_for(view), w, h)
        tiles.append(ts)
        crops.extend(crop(image, t.box) for t in ts)
    return crops, tiles


def per_frame(crop_scores: np.ndarray, counts: Sequence[int]) -> list[np.ndarray]:
    """Split crop rows [N, C] back into frames ([T_i, C] each), in order."""
    bounds = np.cumsum([0, *counts])
    return [crop_scores[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def frame_scores(crop_scores: np.ndarray, tiles: Sequence[list[Tile]], names: list[str]) -> list[FrameScores]:
    """Crop scores [N, C] -> one FrameScores per frame (max over its tiles)."""
    parts = per_frame(crop_scores, [len(t) for t in tiles])
    return [FrameScores(names, rows.max(axis=0), rows, list(ts)) for rows, ts in zip(parts, tiles)]


def score_frames(model: ZeroShotModel, state: PromptState, frames: Sequence[np.ndarray],
                 views: Sequence[View] | View = None, batch: int | None = None,
                 timings: dict[str, float] | None = None) -> list[FrameScores]:
    """Score frames with the service's own path. ``views``: one per frame, or one for all.

    With ``batch`` (crops per encoder call) long offline runs are chunked; the line passes
    None: all crops of all cameras in one call. ``timings`` accumulates seconds per stage
    (preprocess, encode, score) for the pipeline benchmark.
    """
    per: list[View] = list(views) if isinstance(views, (list, tuple)) else [views] * len(frames)  # type: ignore[list-item]
    clock = {"preprocess": 0.0, "encode": 0.0, "score": 0.0}
    t = time.perf_counter()
    crops, tiles = cut(frames, per)
    if not crops:
        return []
    spec = model.bundle.manifest.image
    step = batch or len(crops)
    embeds = []
    for i in range(0, len(crops), step):
        pixels = to_pixel_values(crops[i : i + step], spec)
        t1 = time.perf_counter()
        embeds.append(model.embed_pixels(pixels))  # [n, D]
        t2 = time.perf_counter()
        clock["preprocess"] += t1 - t
        clock["encode"] += t2 - t1
        t = t2
    out = frame_scores(score(model, state, np.concatenate(embeds)), tiles, state.names)
    clock["score"] += time.perf_counter() - t
    if timings is not None:
        for k, v in clock.items():
            timings[k] = timings.get(k, 0.0) + v
    return out
