"""Frames -> per-frame scores and verdicts: the one path of every caller.

The line, the operator's preview, ``prompts test``, the calibration gate, ``evaluate`` and the
demo card all score frames here, so a number measured offline is the number the line
produces:

1. each frame is cut into its camera's ROI and tiles; every crop of every frame goes through
   ONE encoder call, which gives image embeddings and, for bundles that have them, patch tokens;
2. each crop is scored against the prompt state's text (and exemplars); a category's frame
   score is its max over the frame's tiles (the tile that gave it is named);
3. WHERE: with a good-part memory for the frame's view, the patch tokens give an anomaly map
   per crop, fused into a frame map, a score and a box (edge.inspect.memory);
4. WHAT: a frame whose anomaly reaches the uncertain band is named from a zoomed crop around
   the box (a second, small encoder call for those frames only), the view the text understands
   best; the verdict comes from the anomaly, the category from the text (edge.inspect.decision).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from edge.inspect.decision import Decision, decide, decide_anomaly
from edge.inspect.memory import MAP_SCALE, Box, FrameAnomaly, frame_anomalies, strongest_region
from edge.inspect.prompt_state import PromptState, View, camera_for, score
from edge.inspect.tiles import Tile, crop, tiles_for
from edge.model import ZeroShotModel

ZOOM_RANGE = (1.0, 6.0)  # the zoomed crop: frame / zoom, within the views the towers know
# The zoomed crop is this many times the box's size (where ZOOM_RANGE allows). 1.5, not 2: on the tuning seeds
# (python -m export.demo_models.tune) demo-siglip's mean type top-1 of the five products rose 86.6 -> 90.1 %,
# demo-clip's stayed at 95.0 %; a window as large as the box did less for demo-siglip and more for demo-clip (the
# card, export/demo_models/README.md, has the sweep and the rule).
# With a memory the crop only names; without one it also judges the frame again (and decides which frames get a
# crop, _regions), so text-only verdicts move with it too.
NAME_WINDOW = 1.5


@dataclass(frozen=True)
class FrameScores:
    """One frame's scores: per category (max over tiles) and per tile, and where (with a memory)."""

    names: list[str]
    scores: np.ndarray  # [C] the frame's score per category
    tile_scores: np.ndarray  # [T, C]
    tiles: list[Tile]
    anomaly: FrameAnomaly | None = None
    named: np.ndarray | None = None  # [C] text scores of the zoomed crop around the region
    zoom: Box | None = None  # that crop, in frame pixels
    region: Box | None = None  # where: the anomaly's box, or (text only) the windows' strongest region

    def as_dict(self, digits: int = 6) -> dict[str, float]:
        """Every category's score: of the zoomed crop when the frame was named from one, else the frame's."""
        return score_dict(self.names, self.named if self.named is not None else self.scores, digits)

    def decide(self, state: PromptState) -> Decision:
        """The frame's verdict (before N-of-M smoothing): from the anomaly when there is a memory, named by the
        text; from the text scores and thresholds otherwise."""
        if self.anomaly is None:
            return decide(self.as_dict(), state.prompts)
        return decide_anomaly(self.anomaly.ratio, self.as_dict(), state.prompts)

    def best_tile(self, category: str) -> Tile | None:
        """The tile that gave ``category`` its frame score; None when the frame is one crop."""
        if len(self.tiles) < 2:
            return None
        return self.tiles[int(self.tile_scores[:, self.names.index(category)].argmax())]


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
    """Split crop rows [N, ...] back into frames ([T_i, ...] each), in order."""
    bounds = np.cumsum([0, *counts])
    return [crop_scores[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def score_dict(names: Sequence[str], row: np.ndarray, digits: int = 6) -> dict[str, float]:
    """A frame's scores by category, rounded as results carry them: what every decision is made on."""
    return {n: round(float(s), digits) for n, s in zip(names, row)}


def frame_rows(crop_scores: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Crop scores [N, C] -> frame scores [F, C]: a category's frame score is its max over the frame's crops
    (the line, the calibration gate and the demo card all reduce crops to frames this way)."""
    return np.stack([rows.max(axis=0) for rows in per_frame(crop_scores, counts)])


def frame_scores(crop_scores: np.ndarray, tiles: Sequence[list[Tile]], names: list[str]) -> list[FrameScores]:
    """Crop scores [N, C] -> one FrameScores per frame (max over its tiles)."""
    parts = per_frame(crop_scores, [len(t) for t in tiles])  # split once: this runs for every batch of the line
    return [FrameScores(names, rows.max(axis=0), rows, list(ts)) for rows, ts in zip(parts, tiles)]


def zoom_box(box: Box, width: int, height: int) -> Box:
    """A window of the frame's shape around ``box``, NAME_WINDOW times its size, zoomed 1x to 6x, inside the frame."""
    x, y, w, h = box
    zoom = min(width / max(NAME_WINDOW * w, 1), height / max(NAME_WINDOW * h, 1))
    zoom = float(np.clip(zoom, *ZOOM_RANGE))
    cw, ch = int(width / zoom), int(height / zoom)
    cx, cy = x + w / 2, y + h / 2
    x0 = int(np.clip(cx - cw / 2, 0, width - cw))
    y0 = int(np.clip(cy - ch / 2, 0, height - ch))
    return x0, y0, cw, ch


def _area(box: Box) -> int:
    return box[2] * box[3]


def _encode(model: ZeroShotModel, crops: list[np.ndarray], batch: int | None, clock: dict[str, float]
            ) -> tuple[np.ndarray, np.ndarray | None]:
    step = batch or max(1, len(crops))
    images, patches = [], []
    t = time.perf_counter()
    for i in range(0, len(crops), step):
        pixels = model.inputs(crops[i : i + step])
        t1 = time.perf_counter()
        image, tokens = model.embed_views(pixels)
        t2 = time.perf_counter()
        clock["resize"] += t1 - t
        clock["encode"] += t2 - t1
        t = t2
        images.append(image)
        if tokens is not None:
            patches.append(tokens)
    return np.concatenate(images), (np.concatenate(patches) if patches else None)


def _locate(frames: Sequence[np.ndarray], views: Sequence[View], state: PromptState, tokens: np.ndarray,
            tiles: Sequence[list[Tile]], out: list[FrameScores]) -> None:
    """Anomaly maps for the frames whose view has a memory: all frames of one view searched together."""
    parts = per_frame(tokens, [len(t) for t in tiles])
    groups: dict[int, list[int]] = {}
    for n, (view, ts) in enumerate(zip(views, tiles)):
        memory = state.memory_for(view)
        if memory is not None and len(memory.tiles) == len(ts):
            groups.setdefault(id(memory), []).append(n)
    for members in groups.values():
        memory = state.memory_for(views[members[0]])
        assert memory is not None
        found = frame_anomalies(memory, np.stack([parts[n] for n in members]), [[t.box for t in tiles[n]]
                                for n in members], [(frames[n].shape[1], frames[n].shape[0]) for n in members])
        for n, anomaly in zip(members, found):
            out[n] = replace(out[n], anomaly=anomaly)


def text_heat(fs: FrameScores, state: PromptState, width: int, height: int) -> np.ndarray:
    """Without a memory: each window's defect score (best defect - best good class) spread over the pixels it
    covers, averaged where windows overlap (WinCLIP's idea, on the crops the encoder saw anyway)."""
    oks = np.array([c.ok for c in state.prompts.categories])
    per_tile = fs.tile_scores[:, ~oks].max(axis=1) - fs.tile_scores[:, oks].max(axis=1)  # [T]
    mh, mw = max(1, height // MAP_SCALE), max(1, width // MAP_SCALE)
    total, count = np.zeros((mh, mw), np.float32), np.zeros((mh, mw), np.float32)
    for tile, value in zip(fs.tiles, per_tile):
        x, y, w, h = tile.box
        x0, y0 = x // MAP_SCALE, y // MAP_SCALE
        x1, y1 = max(x0 + 1, (x + w) // MAP_SCALE), max(y0 + 1, (y + h) // MAP_SCALE)
        total[y0:y1, x0:x1] += value
        count[y0:y1, x0:x1] += 1
    return total / np.maximum(count, 1)


def _regions(frames: Sequence[np.ndarray], state: PromptState, out: list[FrameScores]) -> list[int]:
    """The frames to name from a zoomed crop, with their region set: an anomaly that reaches the uncertain band
    (memory), or (text only, several windows) a verdict that is not ok."""
    band = 1.0 - state.prompts.decision.uncertain_margin
    todo = []
    for n, fs in enumerate(out):
        region = None
        if fs.anomaly is not None:
            region = fs.anomaly.box if fs.anomaly.ratio >= band else None
        elif len(fs.tiles) > 1 and (decision := fs.decide(state)).verdict != "ok":
            h, w = frames[n].shape[:2]
            heat = text_heat(fs, state, w, h)
            region = strongest_region(heat - heat.min())
            tile = fs.best_tile(decision.category)
            if region is not None and tile is not None and _area(zoom_box(region, w, h)) >= _area(tile.box):
                region = None  # the tile that decided is already as close a view as the zoomed crop would be
        if region is not None:
            out[n] = replace(fs, region=region)
            todo.append(n)
    return todo


def _name(model: ZeroShotModel, state: PromptState, frames: Sequence[np.ndarray], out: list[FrameScores],
          batch: int | None, clock: dict[str, float]) -> None:
    """Two stages: frames with a region are named (and, text only, judged again) from a zoomed crop around it."""
    todo = _regions(frames, state, out)
    if not todo:
        return
    boxes = [zoom_box(out[n].region, frames[n].shape[1], frames[n].shape[0]) for n in todo]  # type: ignore[arg-type]
    image, _ = _encode(model, [crop(frames[n], b) for n, b in zip(todo, boxes)], batch, clock)
    for n, b, row in zip(todo, boxes, score(model, state, image)):
        out[n] = replace(out[n], named=row, zoom=b)


def score_frames(model: ZeroShotModel, state: PromptState, frames: Sequence[np.ndarray],
                 views: Sequence[View] | View = None, batch: int | None = None,
                 timings: dict[str, float] | None = None) -> list[FrameScores]:
    """Score frames with the service's own path. ``views``: one per frame, or one for all.

    With ``batch`` (crops per encoder call) long offline runs are chunked; the line passes
    None: all crops of all cameras in one call. ``timings`` accumulates seconds per stage
    (resize: cutting tiles and resizing them into the batch buffer; encode; score; memory) for the pipeline
    benchmark.
    """
    per: list[View] = list(views) if isinstance(views, (list, tuple)) else [views] * len(frames)  # type: ignore[list-item]
    clock = {"resize": 0.0, "encode": 0.0, "score": 0.0, "memory": 0.0}
    t0 = time.perf_counter()
    crops, tiles = cut(frames, per)
    if not crops:
        return []
    clock["resize"] += time.perf_counter() - t0
    image, tokens = _encode(model, crops, batch, clock)
    t = time.perf_counter()
    out = frame_scores(score(model, state, image), tiles, state.names)
    t1 = time.perf_counter()
    clock["score"] += t1 - t
    if state.memories and tokens is not None:
        _locate(frames, per, state, tokens, tiles, out)
        clock["memory"] += time.perf_counter() - t1
    if state.memories or any(len(t) > 2 for t in tiles):
        _name(model, state, frames, out, batch, clock)
    if timings is not None:
        for k, v in clock.items():
            timings[k] = timings.get(k, 0.0) + v
    return out
