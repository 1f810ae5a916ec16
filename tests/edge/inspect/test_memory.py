"""The good-part memory's parts on made-up tokens: search, coreset, thresholds, maps and boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.inspect.memory import (
    MemoryParams,
    ViewMemory,
    frame_anomaly,
    greedy_coreset,
    locally_aware,
    set_thresholds,
    strongest_region,
    tile_memory,
)
from edge.scoring import l2_normalize

GRID = (6, 6)


def _tokens(n: int, seed: int, dim: int = 16) -> np.ndarray:
    """Good parts: every position has its own token, plus a little noise per part."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(0).standard_normal((36, dim))
    return l2_normalize(base[None] + 0.05 * rng.standard_normal((n, 36, dim))).astype(np.float32)


def test_local_search_equals_brute_force_over_the_neighbourhood() -> None:
    good = _tokens(8, 1)
    memory = tile_memory(good, np.arange(8), GRID, MemoryParams(dim=None, radius=1, max_patches=10_000))
    query = _tokens(2, 2)
    got = memory.distances(query)
    g = memory.project(good).reshape(8, 6, 6, -1)  # the memory's own space (centred PCA)
    query = memory.project(query)
    for n in range(2):
        for y in range(6):
            for x in range(6):
                near = g[:, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].reshape(-1, g.shape[-1])
                want = float(np.sqrt(((near - query[n, y * 6 + x]) ** 2).sum(axis=1)).min())  # Euclidean
                assert got[n, y * 6 + x] == pytest.approx(want, abs=1e-4)


def test_global_search_finds_a_token_anywhere() -> None:
    good = _tokens(8, 1)
    memory = tile_memory(good, np.arange(8), GRID, MemoryParams(dim=None, radius=None, max_patches=10_000))
    moved = np.roll(_tokens(1, 3), 7, axis=1)  # every token at another position
    local = tile_memory(good, np.arange(8), GRID, MemoryParams(dim=None, radius=0, max_patches=10_000))
    assert memory.distances(moved).max() < 0.2 < 1.0 < local.distances(moved).min()


def test_a_defect_token_stands_out_and_leave_one_out_excludes_the_image_itself() -> None:
    good = _tokens(10, 1)
    memory = tile_memory(good, np.arange(10), GRID, MemoryParams(dim=8, max_patches=10_000))
    part = _tokens(1, 5)
    part[0, 14] = l2_normalize(np.random.default_rng(9).standard_normal(16))  # one odd patch
    d = memory.distances(part)[0]
    assert int(d.argmax()) == 14 and d[14] > 5 * np.delete(d, 14).max()
    assert memory.distances(good[3:4]).max() < 1e-3  # its own tokens are in the memory ...
    assert memory.distances(good[3:4], exclude=3).max() > 1e-3  # ... unless it is left out


def test_coreset_bounds_the_memory_and_spreads_out() -> None:
    points = l2_normalize(np.random.default_rng(0).standard_normal((500, 8)))
    keep = greedy_coreset(points, 40)
    assert len(keep) == 40 == len(set(keep.tolist()))
    rest = np.delete(points, keep, axis=0)
    cover = ((rest[:, None] - points[keep][None]) ** 2).sum(-1).min(axis=1).max()
    random_cover = ((rest[:, None] - points[:40][None]) ** 2).sum(-1).min(axis=1).max()
    assert cover < random_cover  # k-centre covers the rest better than the first 40 points
    memory = tile_memory(_tokens(30, 1), np.arange(30), GRID, MemoryParams(max_patches=36 * 12))
    assert memory.size == 36 * 12


def test_thresholds_come_from_the_good_images_and_a_good_part_stays_under() -> None:
    good = [_tokens(1, s)[0][None].repeat(2, 0) for s in range(12)]  # [T=2][P, D] per image
    tiles = [tile_memory(np.stack([g[t] for g in good]), np.arange(12), GRID, MemoryParams(dim=None))
             for t in range(2)]
    loo, typical = set_thresholds(tiles, good, margin=1.0)
    assert 0.5 < min(typical) <= 1.0 <= max(typical) < 2.0  # relative to the median image
    assert 0.5 < max(loo) <= 1.0 and min(loo) > 0.2  # the worst good part is under the threshold
    spread = np.array(loo)
    assert max(loo) == pytest.approx(1.0) or spread.mean() + 3.5 * spread.std() == pytest.approx(1.0, abs=1e-6)
    view = ViewMemory(tiles, 12, "v", loo)
    new_good = _tokens(1, 99)[0][None].repeat(2, 0)
    boxes = [(0, 0, 96, 96), (96, 0, 96, 96)]
    assert frame_anomaly(view, new_good, boxes, 192, 96).ratio < 1.5
    bad = new_good.copy()
    bad[1, 20] = l2_normalize(np.random.default_rng(3).standard_normal(16))
    a = frame_anomaly(view, bad, boxes, 192, 96)
    assert a.ratio > 3 and a.box is not None and a.box[0] >= 96  # in the second tile


class _Tile:
    """A tile memory that answers with given distances (threshold 1): the map's geometry, no search."""

    def __init__(self, distances: np.ndarray) -> None:
        self.grid, self.threshold, self._d = GRID, 1.0, distances.reshape(1, -1).astype(np.float32)

    def distances(self, tokens: np.ndarray) -> np.ndarray:
        return np.repeat(self._d, len(tokens), axis=0)


def test_the_box_finds_the_defect_in_a_crop_that_is_raised_as_a_whole() -> None:
    """A defect moves every token of its crop a little (attention mixes the crop): the box must still close
    around the patch that differs most, not around the whole raised tile (whose centre can be far off)."""
    rng = np.random.default_rng(0)
    maps = [0.5 + 0.05 * rng.standard_normal(36) for _ in range(3)]  # three quiet tiles
    raised = 3.5 + 0.05 * rng.standard_normal(36)  # the fourth raised throughout
    raised[20] = 5.0  # and one patch (row 3, column 2) highest
    view = ViewMemory([_Tile(m) for m in (*maps, raised)], 16, "v")  # type: ignore[misc]
    boxes = [(96 * i, 0, 96, 96) for i in range(4)]
    a = frame_anomaly(view, np.zeros((4, 36, 8), np.float32), boxes, 384, 96)
    assert a.ratio == pytest.approx(5.0) and a.box is not None
    x, y, w, h = a.box
    assert w <= 48 and h <= 48, a.box  # not the whole 96 px tile
    assert x <= 288 + 2 * 16 + 8 <= x + w and y <= 3 * 16 + 8 <= y + h, a.box  # around the patch's centre


def test_a_defect_filling_its_crop_is_boxed_there_not_on_noise_elsewhere() -> None:
    """Centring a crop on its median cancels a defect that covers most of it; the box must stay in that crop."""
    rng = np.random.default_rng(1)
    maps = [0.5 + 0.05 * rng.standard_normal(36) for _ in range(3)]
    maps[0][7] = 0.9  # a noise spike in a quiet tile
    large = 0.5 + 0.05 * rng.standard_normal(36)
    large[:30] = 3.0  # the defect covers 30 of the fourth tile's 36 patches
    view = ViewMemory([_Tile(m) for m in (*maps, large)], 16, "v")  # type: ignore[misc]
    a = frame_anomaly(view, np.zeros((4, 36, 8), np.float32), [(96 * i, 0, 96, 96) for i in range(4)], 384, 96)
    assert a.ratio == pytest.approx(3.0, abs=0.01) and a.box is not None and a.box[0] >= 288, a.box


def test_locally_aware_averages_neighbours_only_when_asked() -> None:
    t = _tokens(2, 1)
    assert np.array_equal(locally_aware(t, GRID, 1), t)
    smooth = locally_aware(t, GRID, 3)
    assert smooth.shape == t.shape and not np.allclose(smooth, t)
    assert np.allclose(np.linalg.norm(smooth, axis=-1), 1)


def test_the_box_surrounds_the_strongest_region() -> None:
    heat = np.zeros((60, 80), np.float32)
    heat[20:26, 50:60] = 2.0
    heat[40:42, 5:7] = 1.0  # a weaker spot elsewhere
    assert strongest_region(heat) == (400, 160, 80, 48)  # x 50..59, y 20..25 at 1/8 scale
    assert strongest_region(np.zeros((4, 4), np.float32)) is None


def test_a_cached_memory_names_the_images_of_today_not_those_it_was_built_from(tmp_path: Path) -> None:
    """The cache is keyed by the images' contents: renamed files hit it, and their new names must show."""
    from edge.config import CameraConfig
    from edge.inspect.goodparts import MemoryCache, memory_for

    class Hit(MemoryCache):
        def get(self, version: str) -> ViewMemory | None:
            return ViewMemory([], 3, version, [0.5, 0.6, 0.7], ["old0.png", "old1.png", "old2.png"])

    images = [np.full((8, 8, 3), i, np.uint8) for i in range(3)]
    view = CameraConfig.model_validate({"name": "cam", "source": "sim://line"})
    memory = memory_for(None, images, ["a.png", "b.png", "c.png"], view, MemoryParams(),  # type: ignore[arg-type]
                        Hit(tmp_path, "bundle"))
    assert memory.names == ["a.png", "b.png", "c.png"] and memory.loo_scores == [0.5, 0.6, 0.7]
