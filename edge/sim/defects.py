"""Synthetic defects painted onto a part's surface, after published recipes.

* scratches: anti-aliased thin lines, or CutPaste "scar" strips cut from the surface itself,
  rotated and colour-jittered (Li et al., CutPaste, CVPR 2021);
* stains and rust: a Perlin-noise mask blending a foreign texture into the surface
  (Zavrtanik et al., DRAEM, ICCV 2021);
* holes and dents, cracks: drawn geometry with shading.

Each painter works in part coordinates, returns the defect's mask (bool [H, W]: the pixels it
changed visibly; the box is the mask's bounding box), and scales size and contrast by a
severity in (0, 1], so that small, faint, hard cases exist.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edge.sim.noise import perlin_blob

Box = tuple[int, int, int, int]
Mask = np.ndarray  # bool [H, W] in part pixels


def _pick_point(mask: np.ndarray, margin: int, rng: np.random.Generator) -> tuple[int, int]:
    """A point on the part at least ``margin`` pixels inside its outline."""
    inner = cv2.erode(mask, np.ones((2 * margin + 1, 2 * margin + 1), np.uint8))
    ys, xs = np.nonzero(inner if inner.any() else mask)
    i = int(rng.integers(len(ys)))
    return int(xs[i]), int(ys[i])


def box_of(layer: np.ndarray) -> Box:
    """Bounding box (x, y, w, h) of a mask's non-zero pixels; (0, 0, 0, 0) when empty."""
    ys, xs = np.nonzero(layer)
    if len(ys) == 0:
        return (0, 0, 0, 0)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def _apply_delta(surface: np.ndarray, delta: np.ndarray, mask: np.ndarray) -> None:
    out = surface.astype(np.float32) + delta * mask[..., None]
    surface[:] = np.clip(out, 0, 255).astype(np.uint8)


def scratch(surface: np.ndarray, mask: np.ndarray, severity: float, rng: np.random.Generator) -> Mask:
    if rng.random() < 0.3:
        return _scar(surface, mask, severity, rng)
    length = int(30 + 260 * severity * rng.uniform(0.6, 1.0))
    x, y = _pick_point(mask, length // 2 + 2, rng)
    angle = rng.uniform(0, np.pi)
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    layer = np.zeros(mask.shape, np.float32)
    p1, p2 = (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy))
    cv2.line(layer, p1, p2, 1.0, int(rng.integers(1, 2 + int(5 * severity))), cv2.LINE_AA)
    contrast = (35 + 120 * severity) * (1 if rng.random() < 0.6 else -1)
    _apply_delta(surface, np.repeat(layer[..., None], 3, 2) * contrast, mask)
    return layer * mask > 0.05


def _scar(surface: np.ndarray, mask: np.ndarray, severity: float, rng: np.random.Generator) -> Mask:
    length, width = int(30 + 220 * severity), int(rng.integers(3, 4 + int(8 * severity)))
    h, w = surface.shape[:2]
    sy, sx = int(rng.integers(0, max(1, h - width))), int(rng.integers(0, max(1, w - length)))
    strip = surface[sy : sy + width, sx : sx + length].astype(np.float32)
    strip = strip * rng.uniform(0.4, 0.7) + rng.uniform(60, 140) * severity  # colour jitter
    patch: np.ndarray = np.zeros_like(surface, dtype=np.float32)
    layer = np.zeros(mask.shape, np.float32)
    x, y = _pick_point(mask, length // 2 + 2, rng)
    x0, y0 = max(0, x - length // 2), max(0, y - width // 2)
    ph, pw = min(width, h - y0), min(length, w - x0)
    patch[y0 : y0 + ph, x0 : x0 + pw] = strip[:ph, :pw]
    layer[y0 : y0 + ph, x0 : x0 + pw] = 1.0
    rot = cv2.getRotationMatrix2D((float(x), float(y)), rng.uniform(0, 180), 1.0)
    patch = cv2.warpAffine(patch, rot, (w, h))
    layer = cv2.warpAffine(layer, rot, (w, h)) * mask
    blend = layer[..., None]
    surface[:] = np.clip(surface * (1 - blend) + patch * blend, 0, 255).astype(np.uint8)
    return layer > 0.05


def hole(surface: np.ndarray, mask: np.ndarray, severity: float, rng: np.random.Generator) -> Mask:
    r = int(4 + 40 * severity * rng.uniform(0.7, 1.0))
    x, y = _pick_point(mask, r + 3, rng)
    axes = (r, max(3, int(r * rng.uniform(0.6, 1.0))))
    angle = float(rng.uniform(0, 180))
    layer = np.zeros(mask.shape, np.float32)
    cv2.ellipse(layer, (x, y), axes, angle, 0, 360, 1.0, -1, cv2.LINE_AA)
    if rng.random() < 0.6:  # a through-hole: dark inside, a bright rim on the lit side
        inside = np.repeat(layer[..., None], 3, 2)
        surface[:] = (surface * (1 - inside) + rng.uniform(10, 45) * inside).astype(np.uint8)
        rim = np.zeros(mask.shape, np.float32)
        cv2.ellipse(rim, (x, y), axes, angle, 200, 340, 1.0, 2, cv2.LINE_AA)
        _apply_delta(surface, np.repeat(rim[..., None], 3, 2) * 80, mask)
    else:  # a dent: shading from dark to light across the ellipse
        yy, xx = np.mgrid[0 : mask.shape[0], 0 : mask.shape[1]].astype(np.float32)
        ramp = ((xx - x) + (yy - y)) / (r + 1e-6)
        delta = layer * ramp * (40 + 90 * severity)
        _apply_delta(surface, np.repeat(delta[..., None], 3, 2), mask)
    return layer > 0.05


def crack(surface: np.ndarray, mask: np.ndarray, severity: float, rng: np.random.Generator) -> Mask:
    steps = int(8 + 55 * severity)
    x, y = _pick_point(mask, 10, rng)
    layer = np.zeros(mask.shape, np.float32)
    heading = rng.uniform(0, 2 * np.pi)
    for branch in range(1 + int(rng.integers(0, 3))):
        px, py, a = float(x), float(y), heading + (branch * rng.uniform(0.6, 1.4))
        for _ in range(steps if branch == 0 else steps // 2):
            a += rng.normal(0, 0.45)
            nx, ny = px + np.cos(a) * rng.uniform(3, 8), py + np.sin(a) * rng.uniform(3, 8)
            cv2.line(layer, (int(px), int(py)), (int(nx), int(ny)), 1.0, 1 + int(3 * severity),
                     cv2.LINE_AA)
            px, py = nx, ny
    layer *= mask
    contrast = -(50 + 110 * severity)
    _apply_delta(surface, np.repeat(layer[..., None], 3, 2) * contrast, mask)
    return layer > 0.05


STAIN_COLOURS = ((30, 70, 150), (25, 45, 95), (35, 35, 35), (215, 225, 230), (40, 110, 160))


def stain(surface: np.ndarray, mask: np.ndarray, severity: float, rng: np.random.Generator) -> Mask:
    side = min(int(16 + 180 * severity * rng.uniform(0.6, 1.0)), min(mask.shape) - 1)  # small frames: fit the part
    blob = perlin_blob(side, rng)
    side = blob.shape[0]
    x, y = _pick_point(mask, side // 2, rng)
    h, w = mask.shape
    x0, y0 = min(max(0, x - side // 2), w - side), min(max(0, y - side // 2), h - side)
    layer = np.zeros(mask.shape, np.float32)
    layer[y0 : y0 + side, x0 : x0 + side] = blob
    layer *= mask * rng.uniform(0.55, 0.95)
    colour = np.array(STAIN_COLOURS[int(rng.integers(len(STAIN_COLOURS)))], np.float32)
    foreign: np.ndarray = (colour + rng.normal(0, 14, surface.shape)).astype(np.float32)  # DRAEM's anomaly source
    blend = layer[..., None]
    surface[:] = np.clip(surface * (1 - blend) + foreign * blend, 0, 255).astype(np.uint8)
    return layer > 0.1


PAINTERS: dict[str, Callable[[np.ndarray, np.ndarray, float, np.random.Generator], Mask]] = {
    "scratch": scratch, "hole": hole, "crack": crack, "stain": stain,
}
