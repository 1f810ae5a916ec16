"""Frames from the simulated line as training/evaluation data (rendered in parallel)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from edge.bundle import ImageSpec
from edge.preprocess import resize_for_model
from edge.sim import SimTruth, simulator
from edge.sim.scene import SimFrame
from edge.sim.source import SimParams


def _render_range(params: SimParams, spec: ImageSpec, start: int, stop: int) -> tuple[np.ndarray, list[SimTruth]]:
    sim = simulator(params)
    frames = [sim.frame(i) for i in range(start, stop)]
    return np.stack([resize_for_model(f.image, spec) for f in frames]), [f.truth for f in frames]


def _render_groups(params: SimParams, spec: ImageSpec, start: int, stop: int, zoom: tuple[float, float] = (1.0, 2.0)
                   ) -> tuple[np.ndarray, list[SimTruth], np.ndarray]:
    sim = simulator(params.model_copy(update={"defect_rate": 1.0}))
    images, truths, masks = [], [], []
    for index in range(start, stop):
        rng = np.random.default_rng([params.seed, index])
        part = sim.sample_part(index, rng)
        variants = [None] + [sim.sample_defect(part, rng) for _ in params.defects]
        for kind, defect in zip(("good", *params.defects), variants):
            if defect is not None:
                defect.kind = kind
            frame = sim.render(index, part, defect)
            image, mask = _zoomed_view(frame, rng, zoom, spec)
            images.append(image)
            masks.append(mask)
            truths.append(frame.truth)
    return np.stack(images), truths, np.stack(masks)


def _zoomed_view(frame: SimFrame, rng: np.random.Generator, zoom: tuple[float, float], spec: ImageSpec
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A training view of a frame (a window zoomed around its defect) and its mask, both resized for the model."""
    x, y, cw, ch = zoom_window(frame.image.shape, frame.truth.box, rng, zoom)
    return resize_for_model(frame.image[y : y + ch, x : x + cw], spec), mask_for_model(frame.mask, (x, y, cw, ch), spec)


def _in_parallel(work: Callable[..., Any], params: SimParams, spec: ImageSpec, count: int, workers: int,
                 *extra: Any) -> tuple[np.ndarray, list[SimTruth], np.ndarray]:
    """``work(params, spec, start, stop, *extra)`` over ``count`` items split between processes, joined (never
    more processes than items: an empty share would have nothing to stack)."""
    workers = max(1, min(workers, count))
    bounds = np.linspace(params.start, params.start + count, workers + 1).astype(int)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        out = list(pool.map(work, [params] * workers, [spec] * workers, bounds[:-1].tolist(), bounds[1:].tolist(),
                            *([e] * workers for e in extra)))
    return np.concatenate([p[0] for p in out]), [t for p in out for t in p[1]], np.concatenate([p[2] for p in out])


def mask_for_model(mask: np.ndarray | None, window: tuple[int, int, int, int], spec: ImageSpec) -> np.ndarray:
    """A defect mask cut and resized like its image: uint8 [S, S], 255 = fully covered (area-averaged)."""
    if mask is None:
        return np.zeros((spec.size, spec.size), np.uint8)
    x, y, cw, ch = window
    cut = mask[y : y + ch, x : x + cw].astype(np.uint8) * 255
    return np.asarray(resize_for_model(np.repeat(cut[..., None], 3, axis=2), spec)[..., 0])


def zoom_crop(image: np.ndarray, box: tuple[int, int, int, int] | None, rng: np.random.Generator,
              zoom_range: tuple[float, float] = (1.0, 2.0)) -> np.ndarray:
    """A random window (zoomed by ``zoom_range``) around the defect box; see :func:`zoom_window`."""
    x, y, cw, ch = zoom_window(image.shape, box, rng, zoom_range)
    return image[y : y + ch, x : x + cw]


def zoom_window(shape: tuple[int, ...], box: tuple[int, int, int, int] | None, rng: np.random.Generator,
                zoom_range: tuple[float, float] = (1.0, 2.0)) -> tuple[int, int, int, int]:
    """A random window (x, y, w, h), zoomed by ``zoom_range``, that keeps the defect box inside
    as far as it fits (centred on it otherwise); good parts get a window on the part.

    Training sees defects at the scales that the service's tiles show them: measured here,
    a small ViT trained from scratch on whole frames stayed at chance on defects for 300
    steps, while zoomed views broke out of that plateau within 200.
    """
    h, w = shape[:2]
    zoom = float(rng.uniform(*zoom_range))
    cw, ch = int(w / zoom), int(h / zoom)
    x_lo, x_hi, y_lo, y_hi = 0, w - cw, 0, h - ch
    if box is None:  # a window on the part (the centre region of the frame)
        box = (w // 4, h // 4, w // 2, h // 2)
    bx, by, bw, bh = box
    if bw > cw or bh > ch:  # the defect is larger than the window: centre on it
        bx, by, bw, bh = bx + bw // 2, by + bh // 2, 0, 0
    x_lo, x_hi = max(0, min(bx + bw - cw, x_hi)), min(x_hi, max(0, bx))
    y_lo, y_hi = max(0, min(by + bh - ch, y_hi)), min(y_hi, max(0, by))
    x = int(rng.integers(x_lo, max(x_lo, x_hi) + 1))
    y = int(rng.integers(y_lo, max(y_lo, y_hi) + 1))
    return x, y, cw, ch


def render_groups(params: SimParams, parts: int, spec: ImageSpec, workers: int = 2,
                  zoom: tuple[float, float] = (1.0, 2.0)) -> tuple[np.ndarray, list[SimTruth], np.ndarray]:
    """Counterfactual groups: each part rendered good and once with every defect kind.

    Within a group the frames differ only by the defect, so a contrastive batch made of
    whole groups cannot be solved by material, shape or lighting: the towers must learn
    the defects themselves. Returns (images [N, S, S, 3], truths, masks [N, S, S] uint8 coverage).
    """
    return _in_parallel(_render_groups, params, spec, parts, workers, zoom)


def _render_views(params: SimParams, spec: ImageSpec, start: int, stop: int, zoom: tuple[float, float]
                  ) -> tuple[np.ndarray, list[SimTruth], np.ndarray]:
    sim = simulator(params)
    images, truths, masks = [], [], []
    for index in range(start, stop):
        frame = sim.frame(index)
        image, mask = _zoomed_view(frame, np.random.default_rng([params.seed, index]), zoom, spec)
        images.append(image)
        masks.append(mask)
        truths.append(frame.truth)
    return np.stack(images), truths, np.stack(masks)


def render_views(params: SimParams, count: int, spec: ImageSpec, zoom: tuple[float, float] = (1.0, 1.0),
                 workers: int = 2) -> tuple[np.ndarray, list[SimTruth], np.ndarray]:
    """``count`` frames of the line as training views (zoomed by ``zoom`` around the defect, 1 = the whole frame),
    with each view's defect mask: (images [N, S, S, 3], truths, masks [N, S, S] uint8 coverage)."""
    return _in_parallel(_render_views, params, spec, count, workers, zoom)


def render_frames(params: SimParams, count: int, spec: ImageSpec, workers: int = 2
                  ) -> tuple[np.ndarray, list[SimTruth]]:
    """``count`` frames from ``params.start`` on, resized for the model: ([N, S, S, 3], truths)."""
    bounds = np.linspace(params.start, params.start + count, workers + 1).astype(int)
    if workers <= 1:
        return _render_range(params, spec, params.start, params.start + count)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_render_range, [params] * workers, [spec] * workers,
                              bounds[:-1].tolist(), bounds[1:].tolist()))
    return np.concatenate([p[0] for p in parts]), [t for p in parts for t in p[1]]


def _raw_range(params: SimParams, start: int, stop: int) -> tuple[list[np.ndarray], list[SimTruth]]:
    sim = simulator(params)
    frames = [sim.frame(i) for i in range(start, stop)]
    return [f.image for f in frames], [f.truth for f in frames]


def raw_frames(params: SimParams, count: int, workers: int = 2) -> tuple[list[np.ndarray], list[SimTruth]]:
    """Whole camera frames (not resized), for evaluations that tile them like the service."""
    bounds = np.linspace(params.start, params.start + count, workers + 1).astype(int)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_raw_range, [params] * workers, bounds[:-1].tolist(), bounds[1:].tolist()))
    return [i for p in parts for i in p[0]], [t for p in parts for t in p[1]]
