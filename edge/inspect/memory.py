"""The good-part memory: where a frame differs from the good parts it was shown (PatchCore-style).

Built from a folder of good images alone (no defect examples needed), per camera view (the
ROI and tile grid a camera's frames are cut into), one memory per tile of the view:

1. each good image and a few copies of it moved like the line moves its parts (a small rotation,
   shift and gain: ``augment``) are cut into the view's crops and encoded; the vision graph's
   ``patch_embeds`` give one token per patch of each crop;
2. the tokens are projected to ``dim`` dimensions (PCA of the good tokens) and, optionally, made
   *locally aware* (each token averaged with its neighbours, PatchCore's aggregation);
3. the memory keeps, per patch position, at most ``max_patches / positions`` tokens chosen by a
   greedy coreset (k-centre), so its size is bounded whatever the number of images;
4. its threshold comes from the good images themselves: each image is scored against the memory
   without its own tokens (leave-one-out), as a new part would be; the threshold is set on the
   frame's score (the max over its tiles), from the tail of those scores (see set_thresholds).

A query patch's anomaly is its Euclidean distance (in the PCA space) to the nearest memory token
at the same position or within ``radius`` positions of it (parts on a line are roughly registered: this finds a defect
that looks like something elsewhere on a good part, and costs a fraction of a global search);
``radius: null`` searches every position (PatchCore's global nearest neighbour). Both are
batched matrix multiplies. A crop's map is its patches' distances divided by its tile's
threshold, so maps of different tiles (scales) compare; the frame's map is their max. The frame's box is
found on the same maps each centred on its crop's median (see ``_fuse``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from edge.prompts import MemorySettings
from edge.scoring import l2_normalize

Box = tuple[int, int, int, int]
TAIL_SD = 3.5  # the threshold is at least the good parts' mean + this many standard deviations (see set_thresholds)


_DEFAULTS = MemorySettings()  # the prompt set's ``memory:`` defaults (edge.prompts says why each): one place


@dataclass(frozen=True)
class MemoryParams:
    """How a memory is built (the prompt set's ``memory:`` section, or its defaults)."""

    augment: int = _DEFAULTS.augment  # moved copies per good image
    max_angle: float = _DEFAULTS.max_angle  # degrees, the line's own pose variation
    max_shift: float = _DEFAULTS.max_shift  # of the frame side
    radius: int | None = _DEFAULTS.radius  # positions searched around a patch's own; None: everywhere
    neighbourhood: int = _DEFAULTS.neighbourhood  # 1: each token alone; 3: averaged with its 3x3 neighbours
    dim: int | None = _DEFAULTS.dim  # PCA dimensions; None: the tokens' own width
    max_patches: int = _DEFAULTS.max_patches  # per tile of the view
    margin: float = _DEFAULTS.margin  # threshold = max(worst leave-one-out frame score, mean + 3.5 sd) x margin
    seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()[:12]


def augment(image: np.ndarray, params: MemoryParams, rng: np.random.Generator) -> np.ndarray:
    """A copy of a good frame moved as the line moves its parts: rotation, shift, light."""
    h, w = image.shape[:2]
    angle = rng.uniform(-params.max_angle, params.max_angle)
    m = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), np.float64)
    m[:, 2] += rng.uniform(-params.max_shift, params.max_shift, 2) * np.array([w, h], np.float64)
    moved = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return cv2.convertScaleAbs(moved, alpha=float(rng.uniform(0.94, 1.06)))


def locally_aware(tokens: np.ndarray, grid: tuple[int, int], size: int) -> np.ndarray:
    """[N, P, D] -> each token averaged with its ``size`` x ``size`` neighbours (edges: the ones that exist)."""
    if size <= 1:
        return tokens
    n, p, d = tokens.shape
    g = tokens.reshape(n, grid[0], grid[1], d).astype(np.float32)
    summed = np.zeros_like(g)
    counts = np.zeros((1, grid[0], grid[1], 1), np.float32)
    r = size // 2
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            src_y, dst_y = _span(dy, grid[0])
            src_x, dst_x = _span(dx, grid[1])
            summed[:, dst_y, dst_x] += g[:, src_y, src_x]
            counts[:, dst_y, dst_x] += 1
    return l2_normalize((summed / counts).reshape(n, p, d))


def _span(offset: int, length: int) -> tuple[slice, slice]:
    """(source, destination) slices so that destination[i] = source[i + offset] where both exist."""
    if offset >= 0:
        return slice(offset, length), slice(0, length - offset)
    return slice(0, length + offset), slice(-offset, length)


def greedy_coreset(points: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Indices of ``k`` points chosen by greedy k-centre (each pick the point farthest from those picked)."""
    n = len(points)
    if k >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    chosen = [int(rng.integers(n))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(k - 1):
        pick = int(np.argmax(nearest))
        chosen.append(pick)
        nearest = np.minimum(nearest, ((points - points[pick]) ** 2).sum(axis=1))
    return np.array(sorted(chosen))


@dataclass
class TileMemory:
    """The memory of one tile of a view: tokens per patch position, projected and bounded."""

    grid: tuple[int, int]
    mean: np.ndarray  # [Dp] PCA centre
    basis: np.ndarray  # [Dp, D] PCA basis (identity-like when dim is None)
    entries: np.ndarray  # local: [Py, Px, M, D]; global: [N, D]
    owners: np.ndarray  # which good image each entry came from (local: [Py, Px, M]; global: [N])
    radius: int | None
    neighbourhood: int
    threshold: float = 1.0

    def project(self, tokens: np.ndarray) -> np.ndarray:
        """Patch tokens [N, P, Dp] -> the memory's space [N, P, D] (centred, PCA)."""
        x = locally_aware(tokens, self.grid, self.neighbourhood)
        return np.asarray((x - self.mean) @ self.basis, np.float32)

    def distances(self, tokens: np.ndarray, exclude: int | None = None) -> np.ndarray:
        """Euclidean distance of each patch to its nearest memory token: [N, P]. ``exclude``: leave one image out.

        Euclidean, not cosine: a dull region (a dark belt) has small centred tokens whose direction is noise;
        their cosine distances would be large, their Euclidean ones are small, as they should be."""
        q = self.project(tokens)
        if self.radius is None:
            return self._global(q, exclude)
        return self._local(q, exclude)

    def _global(self, q: np.ndarray, exclude: int | None) -> np.ndarray:
        n, p, d = q.shape
        flat = q.reshape(-1, d)
        norms = self.norms
        best = np.empty(len(flat), np.float32)
        for i in range(0, len(flat), 2048):  # one matrix multiply per chunk: |m|^2 - 2 q.m (+ |q|^2 below)
            part = norms[None, :] - 2 * (flat[i : i + 2048] @ self.entries.T)
            if exclude is not None:
                part[:, self.owners == exclude] = np.inf
            best[i : i + 2048] = part.min(axis=1)
        best += (flat**2).sum(axis=1)
        return np.sqrt(np.maximum(best, 0)).reshape(n, p)

    @property
    def norms(self) -> np.ndarray:
        """|m|^2 of every entry, computed once."""
        cached: np.ndarray | None = self.__dict__.get("_norms")
        if cached is None:
            cached = (self.entries**2).sum(axis=-1)
            self.__dict__["_norms"] = cached
        return cached

    def _local(self, q: np.ndarray, exclude: int | None) -> np.ndarray:
        gy, gx = self.grid
        n, _, d = q.shape
        qg = np.ascontiguousarray(q.reshape(n, gy, gx, d).transpose(1, 2, 0, 3))  # [Py, Px, N, D]
        norms = self.norms  # [Py, Px, M]
        best = np.full((gy, gx, n), np.inf, np.float32)
        r = self.radius or 0
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                mem_y, q_y = _span(dy, gy)
                mem_x, q_x = _span(dx, gx)
                mem = self.entries[mem_y, mem_x]  # [y, x, M, D]: positions shifted by (dy, dx)
                part = norms[mem_y, mem_x][:, :, None, :] - 2 * np.matmul(qg[q_y, q_x], mem.transpose(0, 1, 3, 2))
                if exclude is not None:  # [y, x, N, M], one batched multiply
                    part = np.where((self.owners[mem_y, mem_x] == exclude)[:, :, None, :], np.inf, part)
                best[q_y, q_x] = np.minimum(best[q_y, q_x], part.min(axis=3))
        best += (qg**2).sum(axis=3)
        return np.sqrt(np.maximum(best, 0)).transpose(2, 0, 1).reshape(n, gy * gx)

    @property
    def size(self) -> int:
        return int(self.entries.shape[-2] * self.grid[0] * self.grid[1]) if self.radius is not None \
            else int(len(self.entries))


def _pca(tokens: np.ndarray, dim: int | None) -> tuple[np.ndarray, np.ndarray]:
    flat = tokens.reshape(-1, tokens.shape[-1]).astype(np.float64)
    mean = flat.mean(axis=0)
    if dim is None or dim >= flat.shape[1]:
        return mean.astype(np.float32), np.eye(flat.shape[1], dtype=np.float32)
    sample = flat[:: max(1, len(flat) // 20000)] - mean
    _, _, vt = np.linalg.svd(sample, full_matrices=False)
    return mean.astype(np.float32), vt[:dim].T.astype(np.float32)


def tile_memory(tokens: np.ndarray, owners: np.ndarray, grid: tuple[int, int], params: MemoryParams) -> TileMemory:
    """A tile's memory from good tokens [N, P, Dp] (``owners``: the good image each row came from)."""
    aware = locally_aware(tokens, grid, params.neighbourhood)
    mean, basis = _pca(aware, params.dim)
    projected = np.asarray((aware - mean) @ basis, np.float32)  # [N, P, D]
    n, p, d = projected.shape
    if params.radius is None:
        flat, who = projected.reshape(-1, d), np.repeat(owners, p)
        keep = greedy_coreset(flat, params.max_patches, params.seed)
        return TileMemory(grid, mean, basis, flat[keep], who[keep], None, params.neighbourhood)
    per_position = max(1, params.max_patches // p)
    by_position = projected.transpose(1, 0, 2)  # [P, N, D]
    picks = [greedy_coreset(by_position[i], per_position, params.seed + i) for i in range(p)]
    m = min(len(k) for k in picks)
    stacked = np.stack([by_position[i][picks[i][:m]] for i in range(p)]).reshape(grid[0], grid[1], m, d)
    owned = np.stack([owners[picks[i][:m]] for i in range(p)]).reshape(grid[0], grid[1], m)
    return TileMemory(grid, mean, basis, np.ascontiguousarray(stacked), owned, params.radius, params.neighbourhood)


@dataclass
class ViewMemory:
    """One memory per tile of a camera view, with what it was built from."""

    tiles: list[TileMemory]
    images: int  # good images (before augmentation)
    version: str  # identity: bundle, images, view, params
    loo_scores: list[float] = field(default_factory=list)  # each good image left out, in threshold units
    names: list[str] = field(default_factory=list)  # the good images' file names, in the order of loo_scores

    @property
    def patches(self) -> int:
        return sum(t.size for t in self.tiles)


def set_thresholds(tiles: list[TileMemory], originals: Sequence[np.ndarray], margin: float
                   ) -> tuple[list[float], list[float]]:
    """Leave-one-out thresholds: each original good image (all tiles' tokens [T][P, Dp]) is scored without its
    own tokens, as a new part would be.

    A frame's score is the max over its tiles, so the threshold is set on that max, not per tile (a
    per-tile threshold at each tile's largest good score would be exceeded by one new good part in
    four with five tiles). Each tile's distances are first scaled by that tile's median good score.
    The frame threshold is the larger of the worst good frame score and their mean + 3.5 standard
    deviations (the worst of 16 is a noisy estimate of the tail: measured on four products, new
    good parts' 99th percentile was 0.80-1.19 times it, and the mean + 3.5 sd tracked it), times
    ``margin``; each tile's threshold is its scale times it.

    Returns each good image's frame score in threshold units, and its mean patch distance relative to the
    median image's (an image of another product differs everywhere, not in one spot: see goodparts)."""
    found = [[t.distances(tokens[i][None], exclude=idx)[0] for idx, tokens in enumerate(originals)]
             for i, t in enumerate(tiles)]  # [T][N] -> [P] distances
    per_tile = np.array([[float(d.max()) for d in row] for row in found])  # [T, N]
    means = np.array([[float(d.mean()) for d in row] for row in found]).mean(axis=0)  # [N]
    scale = np.maximum(np.median(per_tile, axis=1), 1e-6)  # [T]
    frame = (per_tile / scale[:, None]).max(axis=0)  # [N] each good image's frame score
    limit = max(float(frame.max()), float(frame.mean() + TAIL_SD * frame.std())) * margin
    for t, s in zip(tiles, scale):
        t.threshold = float(s) * limit
    return [float(f) / limit for f in frame], [float(m) for m in means / max(float(np.median(means)), 1e-9)]


@dataclass
class FrameAnomaly:
    """A frame's anomaly: score and threshold of the deciding tile, the box, the coarse map."""

    score: float  # the deciding tile's largest patch distance
    threshold: float  # that tile's threshold: ng at score >= threshold
    ratio: float  # score / threshold, the same scale for every tile
    box: Box | None  # x, y, w, h in frame pixels around the strongest region
    heat: np.ndarray  # [h, w] float32 in threshold units, frame-shaped at MAP_SCALE


MAP_SCALE = 8  # the frame map is 1/8 of the frame's side


def frame_anomaly(memory: ViewMemory, tokens: np.ndarray, boxes: Sequence[Box], width: int, height: int
                  ) -> FrameAnomaly:
    """One frame: its crops' tokens [T, P, Dp] and boxes -> fused map, score and box."""
    return frame_anomalies(memory, tokens[None], [boxes], [(width, height)])[0]


def frame_anomalies(memory: ViewMemory, tokens: np.ndarray, boxes: Sequence[Sequence[Box]],
                    sizes: Sequence[tuple[int, int]]) -> list[FrameAnomaly]:
    """Several frames of one view at once (tokens [F, T, P, Dp]): one search per tile for all of them."""
    distances = [tile.distances(tokens[:, t]) for t, tile in enumerate(memory.tiles)]  # T x [F, P]
    return [_fuse(memory, [d[f] for d in distances], boxes[f], *sizes[f]) for f in range(len(tokens))]


def _fuse(memory: ViewMemory, distances: list[np.ndarray], boxes: Sequence[Box], width: int, height: int
          ) -> FrameAnomaly:
    """The crops' patch distances -> the frame's score (its most anomalous crop), map and box.

    The box comes from a second map in which each crop's map is centred on its own median: a defect moves every
    patch token of its crop a little (attention mixes the whole crop, more so in demo-siglip's tower), which
    raises a crop's whole map, and on the plain map the region around the peak then grew to the whole tile (its
    centre off the defect). Measured on the tuning seeds with 3x3 tiles, demo-siglip's localisation went from
    67 % to 80 % (mean of 9 products) and its type top-1 from 53 % to 61 %; demo-clip's stayed at 100 %.
    Only crops that reach half the frame's score take part in it: centring cancels a defect that fills most of
    its crop, and the box must not then go to a noise spike in a quiet crop (that rule came after the tuning
    measurement above; the card's hold-out numbers include it)."""
    mh, mw = max(1, height // MAP_SCALE), max(1, width // MAP_SCALE)
    heat = np.zeros((mh, mw), np.float32)
    where = np.full((mh, mw), -np.inf, np.float32)
    covered = np.zeros((mh, mw), bool)
    ratios = [(d / tile.threshold).reshape(tile.grid).astype(np.float32) for tile, d in zip(memory.tiles, distances)]
    peaks = [float(r.max()) for r in ratios]
    k = int(np.argmax(peaks))
    for ratio, peak, (x, y, w, h) in zip(ratios, peaks, boxes):
        x0, y0 = x // MAP_SCALE, y // MAP_SCALE
        x1, y1 = min(mw, max(x0 + 1, (x + w) // MAP_SCALE)), min(mh, max(y0 + 1, (y + h) // MAP_SCALE))
        size = (x1 - x0, y1 - y0)
        heat[y0:y1, x0:x1] = np.maximum(heat[y0:y1, x0:x1], cv2.resize(ratio, size, interpolation=cv2.INTER_LINEAR))
        if peak >= 0.5 * peaks[k]:
            cell = cv2.resize(ratio - np.float32(np.median(ratio)), size, interpolation=cv2.INTER_LINEAR)
            where[y0:y1, x0:x1] = np.maximum(where[y0:y1, x0:x1], cell)
            covered[y0:y1, x0:x1] = True
    where[~covered] = where[covered].min()  # cells outside those crops never join the region
    box = strongest_region(where) or strongest_region(heat)  # flat centred maps (a crop filled alike): the plain one
    return FrameAnomaly(float(distances[k].max()), memory.tiles[k].threshold, peaks[k], box, heat)


def strongest_region(heat: np.ndarray, level: float = 0.6) -> Box | None:
    """The box (frame pixels) of the connected region around the map's maximum, where the map is at least
    ``level`` of the way from its median to its maximum."""
    peak = float(heat.max())
    if peak <= 0:
        return None
    floor = float(np.median(heat))
    mask = (heat >= floor + level * (peak - floor)).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    ys, xs = np.nonzero(labels == labels[y, x])
    s = MAP_SCALE
    return int(xs.min() * s), int(ys.min() * s), int((xs.max() - xs.min() + 1) * s), int((ys.max() - ys.min() + 1) * s)


def blend_heat(image: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The anomaly map (threshold units) over the frame: blue = like the good parts, red = at or over the threshold."""
    h = cv2.resize(np.clip(heat, 0, 1.5) / 1.5, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    colour = cv2.applyColorMap((h * 255).astype(np.uint8), cv2.COLORMAP_JET)
    return cv2.addWeighted(image, 0.6, colour, 0.4, 0)


def grid_of(patches: int) -> tuple[int, int]:
    side = int(round(math.sqrt(patches)))
    return side, patches // side
