"""Surface textures of the simulated parts, generated once per simulator and re-used.

A small bank per material is made at start-up and random crops of it are taken per part,
which keeps rendering well above 30 frames/s on one core.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.sim.noise import perlin

MATERIALS = ("brushed metal", "painted plastic", "cast metal", "textile", "circuit board")
BANK_SIDE = 640


def _brushed(rng: np.random.Generator) -> np.ndarray:
    base = rng.normal(0, 1, (BANK_SIDE, BANK_SIDE)).astype(np.float32)
    streaks = cv2.blur(base, (61, 1)) * 60 + rng.uniform(150, 190)
    tint = np.array([1.0, 1.0, 1.02]) * rng.uniform(0.9, 1.05, 3)
    return np.dstack([streaks * t for t in tint])


def _plastic(rng: np.random.Generator) -> np.ndarray:
    colour = rng.uniform(40, 220, 3)
    grain = cv2.GaussianBlur(rng.normal(0, 4, (BANK_SIDE, BANK_SIDE)).astype(np.float32), (0, 0), 1.5)
    return np.dstack([grain + c for c in colour])


def _cast(rng: np.random.Generator) -> np.ndarray:
    coarse = perlin((BANK_SIDE, BANK_SIDE), (16, 16), rng) * 18
    fine = rng.normal(0, 9, (BANK_SIDE, BANK_SIDE)).astype(np.float32)
    grey = coarse + cv2.GaussianBlur(fine, (0, 0), 1.0) + rng.uniform(95, 140)
    return np.dstack([grey * 0.97, grey, grey * 1.03])


def _textile(rng: np.random.Generator) -> np.ndarray:
    period = int(rng.integers(5, 9))
    yy, xx = np.mgrid[0:BANK_SIDE, 0:BANK_SIDE]
    weave = (np.sin(2 * np.pi * xx / period) * np.sin(2 * np.pi * yy / period)).astype(np.float32)
    colour = rng.uniform(50, 200, 3)
    noise = rng.normal(0, 5, (BANK_SIDE, BANK_SIDE)).astype(np.float32)
    return np.dstack([weave * 22 + noise + c for c in colour])


def _pcb(rng: np.random.Generator) -> np.ndarray:
    img = np.zeros((BANK_SIDE, BANK_SIDE, 3), np.float32)
    img[:] = (rng.uniform(30, 60), rng.uniform(100, 140), rng.uniform(20, 50))  # BGR green
    for _ in range(60):  # copper traces
        y, x = (int(v) for v in rng.integers(0, BANK_SIDE, 2))
        length = int(rng.integers(30, 200))
        end = (x + length, y) if rng.random() < 0.5 else (x, y + length)
        cv2.line(img, (x, y), end, (60, 170, 190), int(rng.integers(1, 4)))
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return img


_MAKERS = {"brushed metal": _brushed, "painted plastic": _plastic, "cast metal": _cast,
           "textile": _textile, "circuit board": _pcb}


class TextureBank:
    """A few textures per material; ``sample`` crops one at a random place."""

    def __init__(self, rng: np.random.Generator, per_material: int = 4,
                 materials: tuple[str, ...] = MATERIALS) -> None:
        self._bank = {
            m: [np.clip(_MAKERS[m](rng), 0, 255).astype(np.uint8) for _ in range(per_material)]
            for m in materials
        }

    def sample(self, material: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        textures = self._bank[material]
        tex = textures[int(rng.integers(len(textures)))]
        if h > BANK_SIDE or w > BANK_SIDE:  # large frames: repeat the texture
            tex = np.tile(tex, (h // BANK_SIDE + 1, w // BANK_SIDE + 1, 1))
        y = int(rng.integers(0, tex.shape[0] - h + 1))
        x = int(rng.integers(0, tex.shape[1] - w + 1))
        return tex[y : y + h, x : x + w].copy()
