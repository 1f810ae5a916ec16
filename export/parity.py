"""Checks that an exported graph computes what PyTorch computes, before it is written.

Inputs are random tensors and natural-looking frames sent through the runtime's own
preprocessing, at batch 1 and batch N: a graph that only matches on noise, or only at the
batch size it was traced with, does not pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.bundle import ImageSpec
from edge.preprocess import resize_batch, to_pixel_values

PARITY_PROMPTS = (
    "a photo of a scratched metal bracket",
    "flawless",
    "A CLEAN, Intact Part!",
    "rust stain near the left edge; small hole (2 mm) in the centre",
    "x",
    " ".join(["a very long prompt that keeps going"] * 20),
)


def natural_frames(count: int, seed: int) -> list[np.ndarray]:
    """Deterministic BGR scenes (gradients, shapes, edges, noise) of non-square sizes."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(count):
        h, w = int(rng.integers(180, 480)), int(rng.integers(240, 640))
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = (np.sin(xx / rng.uniform(20, 80)) + np.cos(yy / rng.uniform(20, 80))) * 40 + 120
        img = np.repeat(base[..., None], 3, axis=2) * rng.uniform(0.6, 1.2, size=3)
        for _ in range(int(rng.integers(2, 6))):
            centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            colour = tuple(int(c) for c in rng.integers(0, 255, size=3))
            cv2.circle(img, centre, int(rng.integers(8, 80)), colour, -1)
        img += rng.normal(0, 6, size=img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.asarray((a * b).sum(axis=1))


@dataclass
class ParityCase:
    name: str
    min_cosine: float


def vision_cases(spec: ImageSpec, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = spec.size
    return {
        "random batch 1": rng.standard_normal((1, 3, s, s)).astype(np.float32),
        f"random batch {batch}": rng.standard_normal((batch, 3, s, s)).astype(np.float32),
        f"natural batch {batch}": to_pixel_values(natural_frames(batch, seed), spec),
    }


def image_cases(spec: ImageSpec, batch: int, seed: int) -> dict[str, np.ndarray]:
    """uint8 BGR frames [B, S, S, 3] for graphs that take ``images``: noise over the whole 0..255 range (the
    folded first layer must hold at the extremes) and natural frames through the runtime's own resize."""
    rng = np.random.default_rng(seed)
    s = spec.size
    return {
        "random uint8 batch 1": rng.integers(0, 256, size=(1, s, s, 3), dtype=np.uint8),
        f"random uint8 batch {batch}": rng.integers(0, 256, size=(batch, s, s, 3), dtype=np.uint8),
        f"natural uint8 batch {batch}": resize_batch(natural_frames(batch, seed), spec),
    }


def text_cases(
    ids_of: Callable[[list[str]], np.ndarray], vocab: int, length: int, batch: int, seed: int
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    prompts = list(PARITY_PROMPTS)
    return {
        "prompts batch 1": ids_of(prompts[:1]),
        f"prompts batch {len(prompts)}": ids_of(prompts),
        f"random ids batch {batch}": rng.integers(0, vocab, size=(batch, length), dtype=np.int64),
    }


def compare(
    cases: dict[str, np.ndarray],
    reference: Callable[[np.ndarray], np.ndarray],
    candidate: Callable[[np.ndarray], np.ndarray],
) -> list[ParityCase]:
    """Worst row cosine per case between reference and candidate outputs."""
    return [
        ParityCase(name, float(cosine_rows(reference(x), candidate(x)).min()))
        for name, x in cases.items()
    ]
