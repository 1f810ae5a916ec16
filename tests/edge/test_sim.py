"""The simulated line: deterministic per seed, ground truth that matches the pixels."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import CameraError
from edge.sim import DEFECTS, LineSimulator, parse_sim_url
from edge.sim.products import CATALOGUE
from edge.sim.scene import Defect
from tests.helpers import one_line_error, run_cli


def test_same_seed_same_frames_other_seed_other_frames() -> None:
    a, b, c = LineSimulator(seed=5), LineSimulator(seed=5), LineSimulator(seed=6)
    for i in (0, 7, 123):
        fa, fb = a.frame(i), b.frame(i)
        assert np.array_equal(fa.image, fb.image) and fa.truth == fb.truth
        assert not np.array_equal(fa.image, c.frame(i).image)
    assert not np.array_equal(a.frame(1).image, a.frame(2).image)


@pytest.mark.parametrize("kind", DEFECTS)
def test_truth_box_is_where_the_defect_changed_pixels(kind: str) -> None:
    sim = LineSimulator(seed=9)
    for index in range(4):
        rng = np.random.default_rng([9, index])
        part = sim.sample_part(index, rng)
        defect = Defect(kind, severity=0.7, seed=index + 100, missing_index=index % len(part.components))
        with_defect = sim.render(index, part, defect)
        without = sim.render(index, part, None)
        assert with_defect.truth.defect == kind and without.truth.defect == "good"
        x, y, w, h = with_defect.truth.box  # type: ignore[misc]
        assert w > 0 and h > 0
        diff = np.abs(with_defect.image.astype(int) - without.image.astype(int)).max(axis=2)
        inside = np.zeros(diff.shape, bool)
        inside[y : y + h, x : x + w] = True
        changed = diff > 12
        assert changed[inside].sum() > 5  # the defect is visible inside its box
        assert changed[~inside].sum() <= 0.02 * changed.sum() + 2  # and (almost) nowhere else
        mask = with_defect.mask
        assert mask is not None and mask.shape == diff.shape and without.mask is None
        assert mask[inside].sum() > 5 and not mask[~inside].any()  # the mask lies in its box
        assert changed[mask].mean() > 0.3 or kind == "missing"  # and covers changed pixels ...
        near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        assert near[changed].mean() > 0.8  # ... most of which it holds (within a pixel)


@pytest.mark.parametrize("product", list(CATALOGUE))
def test_a_product_line_shows_one_design_whatever_the_seed(product: str) -> None:
    a = LineSimulator(seed=1, product=product, defect_rate=0.0)
    b = LineSimulator(seed=2, product=product, defect_rate=0.0)
    fa, fb = [a.frame(i) for i in range(4)], [b.frame(i) for i in range(4)]
    spec = CATALOGUE[product]
    assert {(f.truth.material, f.truth.shape, f.truth.product) for f in fa + fb} == {
        (spec.material, spec.shape, product)}
    # the same design: frames of two seeds differ little more than two frames of one seed
    def mean_diff(x: np.ndarray, y: np.ndarray) -> float:
        return float(np.abs(cv2.blur(x, (9, 9)).astype(int) - cv2.blur(y, (9, 9)).astype(int)).mean())

    within, across = mean_diff(fa[0].image, fa[1].image), mean_diff(fa[0].image, fb[0].image)
    assert across < 2.0 * within + 4
    mixed = LineSimulator(seed=1)  # the mixed line changes material and shape from part to part
    assert len({(mixed.frame(i).truth.material, mixed.frame(i).truth.shape) for i in range(12)}) > 3


def test_unknown_product_lists_the_catalogue() -> None:
    with pytest.raises(CameraError, match="unknown product 'gear'.*random, steel-plate"):
        parse_sim_url("sim://line?product=gear")
    assert parse_sim_url("sim://line?product=pcb-board").product == "pcb-board"
    assert len(CATALOGUE) >= 8 and len({p.material for p in CATALOGUE.values()}) == 5


def test_frames_carry_complete_truth() -> None:
    sim = LineSimulator(seed=1, defect_rate=1.0)
    truths = [sim.frame(i).truth for i in range(40)]
    assert {t.defect for t in truths} == set(DEFECTS)
    assert all(t.box is not None and t.severity > 0 for t in truths)
    assert len({t.part_id for t in truths}) == 40
    assert any(t.severity < 0.3 for t in truths)  # hard, small defects exist
    good = LineSimulator(seed=1, defect_rate=0.0).frame(3).truth
    assert good.defect == "good" and good.box is None and good.severity == 0


def test_url_parameters() -> None:
    p = parse_sim_url("sim://line?seed=3&size=320x240&defect_rate=0.2&defects=scratch,hole&fps=5")
    assert (p.seed, p.size, p.defect_rate, p.defects, p.fps) == (3, (320, 240), 0.2, ("scratch", "hole"), 5)
    frame = LineSimulator(seed=3, size=p.size).frame(0)
    assert frame.image.shape == (240, 320, 3)


@pytest.mark.parametrize("url, word", [
    ("sim://line?sede=3", "sede"), ("sim://line?defects=dust", "dust"), ("sim://line?seed=-1", "seed"),
])
def test_bad_url_names_the_parameter(url: str, word: str) -> None:
    with pytest.raises(CameraError, match=word) as err:
        parse_sim_url(url)
    assert "known parameters" in str(err.value)


def test_sim_cli_writes_folder_and_video(tmp_path: Path) -> None:
    run_cli("sim", "sim://line?seed=4&size=320x240", "--frames", "5", "--out", str(tmp_path / "f"))
    rows = [json.loads(line) for line in (tmp_path / "f" / "truth.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all((tmp_path / "f" / r["image"]).is_file() for r in rows)
    for r in rows:  # a mask per defective frame, inside its box
        assert (r["mask"] is None) == (r["defect"] == "good")
        if r["mask"]:
            mask = cv2.imread(str(tmp_path / "f" / r["mask"]), cv2.IMREAD_GRAYSCALE)
            x, y, w, h = r["box"]
            assert mask.shape == (240, 320) and mask[y : y + h, x : x + w].sum() == mask.sum() > 0
    run_cli("sim", "sim://line?seed=4&size=320x240", "--frames", "6", "--out", str(tmp_path / "v.avi"))
    cap = cv2.VideoCapture(str(tmp_path / "v.avi"))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 6
    sidecar = json.loads((tmp_path / "v.truth.json").read_text())
    assert len(sidecar["frames"]) == 6


def test_sim_cli_bad_url(tmp_path: Path) -> None:
    line = one_line_error(run_cli("sim", "sim://line?speed=3", "--out", str(tmp_path), expect=7))
    assert "speed" in line


@pytest.mark.parametrize("size", [(160, 120), (96, 72)])
def test_small_frames_render_every_defect(size: tuple[int, int]) -> None:
    """Defects are sized for the part, so a thumbnail-sized line (tests, low-res cameras) renders too."""
    sim = LineSimulator(seed=3, size=size, defect_rate=1.0)
    kinds = {f.truth.defect for f in (sim.frame(i) for i in range(60))}
    assert kinds == set(DEFECTS) and sim.frame(0).image.shape == (size[1], size[0], 3)
