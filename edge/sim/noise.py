"""Perlin noise, vectorised: the mask generator of DRAEM-style synthetic anomalies."""

from __future__ import annotations

import numpy as np


def _fade(t: np.ndarray) -> np.ndarray:
    return 6 * t**5 - 15 * t**4 + 10 * t**3


def perlin(shape: tuple[int, int], res: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D Perlin noise in about [-1, 1]; ``res`` lattice cells per axis (must divide shape)."""
    d = (shape[0] // res[0], shape[1] // res[1])
    ys = np.arange(shape[0]) * (res[0] / shape[0])
    xs = np.arange(shape[1]) * (res[1] / shape[1])
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1) % 1  # [H, W, 2] inside the cell
    angles = 2 * np.pi * rng.random((res[0] + 1, res[1] + 1))
    grads = np.dstack((np.cos(angles), np.sin(angles)))  # [R0+1, R1+1, 2]

    def tile(a: slice, b: slice) -> np.ndarray:
        return np.repeat(np.repeat(grads[a, b], d[0], 0), d[1], 1)

    g00, g10 = tile(slice(0, -1), slice(0, -1)), tile(slice(1, None), slice(0, -1))
    g01, g11 = tile(slice(0, -1), slice(1, None)), tile(slice(1, None), slice(1, None))
    n00 = (grid * g00).sum(2)
    n10 = (np.dstack((grid[..., 0] - 1, grid[..., 1])) * g10).sum(2)
    n01 = (np.dstack((grid[..., 0], grid[..., 1] - 1)) * g01).sum(2)
    n11 = (np.dstack((grid[..., 0] - 1, grid[..., 1] - 1)) * g11).sum(2)
    t = _fade(grid)
    n0 = n00 * (1 - t[..., 0]) + t[..., 0] * n10
    n1 = n01 * (1 - t[..., 0]) + t[..., 0] * n11
    return np.asarray(np.sqrt(2) * ((1 - t[..., 1]) * n0 + t[..., 1] * n1), dtype=np.float32)


def perlin_blob(size: int, rng: np.random.Generator, threshold: float = 0.25) -> np.ndarray:
    """A soft, irregular blob mask in [0, 1] of side ``size`` (a power of two works best)."""
    res = int(rng.choice([2, 4]))
    side = max(res, (size // res) * res)
    noise = perlin((side, side), (res, res), rng)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    r = np.hypot(yy - side / 2, xx - side / 2) / (side / 2)
    falloff = np.clip(1.0 - r, 0, 1)  # keep the blob inside its box
    mask = np.clip((0.5 * noise + falloff - threshold - 0.1) * 3, 0, 1)
    return np.asarray(mask, dtype=np.float32)
