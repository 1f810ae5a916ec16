"""The service with the demo model: verdicts that match the simulator's truth, and tiles.

Accuracy is compared with the demo-model card (export/demo_models/card.json), re-measured
here on a small sample, through the whole service (cameras, tiles, batching, prompt set).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edge.config import parse_config
from edge.service.service import InspectionService
from edge.sim import LineSimulator
from edge.sim.scene import Defect
from export.captions import DEMO_PROMPTS_FILE
from export.demo_models import recipe
from export.demo_models.evaluate import CARD_JSON
from tests.edge.conftest import Collector
from tests.helpers import run_cli

TILES = {"rows": 2, "cols": 2, "overlap": 0.25}


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo-clip"
    run_cli("export", str(recipe.folder("clip")), "--out", str(out), "--quiet")
    return out


@pytest.fixture(scope="module")
def card_tiled() -> dict[str, Any]:
    card = json.loads(CARD_JSON.read_text())
    return next(r for r in card["results"] if r["family"] == "clip")["onnx"]["tiled"]


def _service(bundle: Path, tmp_path: Path, cameras: list[dict[str, Any]]) -> Collector:
    cfg = parse_config({"cameras": cameras, "model": {"bundle": str(bundle)}, "prompts": str(DEMO_PROMPTS_FILE),
                        "state_dir": str(tmp_path / "state")}, "test")
    sink = Collector()
    with InspectionService(cfg, sinks=[sink]) as svc:
        svc.run(duration=300)
    return sink


def _top1(results: list[Any], truth: list[str]) -> float:
    top = [max(r.scores, key=lambda k: r.scores[k]) for r in results]
    return float(np.mean([t == p for t, p in zip(truth, top)]))


def test_sim_results_match_truth_at_the_card_accuracy(demo_clip: Path, tmp_path: Path,
                                                      card_tiled: dict[str, Any]) -> None:
    url = "sim://line?seed=2000&defect_rate=0.5&hard=0.1&frames=80&live=0"
    sink = _service(demo_clip, tmp_path, [{"name": "cam1", "source": url, "tiles": TILES}])
    assert len(sink.results) == 80
    truth = [r.truth["defect"] for r in sink.results]  # type: ignore[index]
    assert _top1(sink.results, truth) >= card_tiled["top1"] - 0.15
    good_ok = np.mean([r.verdict != "ng" for r, t in zip(sink.results, truth) if t == "good"])
    defect_flagged = np.mean([r.verdict != "ok" for r, t in zip(sink.results, truth) if t != "good"])
    assert defect_flagged > 1 - good_ok  # defective parts are flagged more often than good ones


def test_video_file_results_match_its_sidecar(demo_clip: Path, tmp_path: Path, card_tiled: dict[str, Any]) -> None:
    video = tmp_path / "line.avi"
    run_cli("sim", "sim://line?seed=2000&defect_rate=0.5&hard=0.1", "--frames", "40", "--out", str(video))
    truth = [f["defect"] for f in json.loads(video.with_suffix(".truth.json").read_text())["frames"]]
    sink = _service(demo_clip, tmp_path, [{"name": "cam1", "source": str(video), "loop": False, "tiles": TILES}])
    assert len(sink.results) == 40 and not any(r.simulated for r in sink.results)
    assert _top1(sink.results, truth) >= card_tiled["top1"] - 0.2


def _mosaic(cell: np.ndarray, goods: list[np.ndarray], index: int) -> np.ndarray:
    cells = list(goods)
    cells.insert(index, cell)
    rows = [np.hstack(cells[r * 3 : r * 3 + 3]) for r in range(3)]
    return np.vstack(rows)


def test_tiles_find_a_small_defect_that_the_whole_frame_misses(demo_clip: Path, tmp_path: Path) -> None:
    """A 3x3 mosaic of parts (1920x1440) with one defective part: squashed whole, the defect is
    a few pixels; a 3x3 tile grid looks at each part at the model's scale."""
    sim = LineSimulator(seed=77)
    good = [sim.render(i, sim.sample_part(i, np.random.default_rng([77, i])), None).image for i in range(8)]
    cams = []
    for i in range(10):  # defective parts, clear at their own scale
        rng = np.random.default_rng([78, i])
        part = sim.sample_part(100 + i, rng)
        frame = sim.render(100 + i, part, Defect("hole", 0.9, seed=i))
        folder = tmp_path / f"mosaic{i}"
        folder.mkdir()
        cv2.imwrite(str(folder / "single.png"), frame.image)
        cv2.imwrite(str(folder / "z_mosaic.png"), _mosaic(frame.image, good, 4))
        cams.append(folder)
    whole = _service(demo_clip, tmp_path / "a", [{"name": f"c{i}", "source": str(f), "loop": False}
                                                  for i, f in enumerate(cams)])
    tiled = _service(demo_clip, tmp_path / "b", [{"name": f"c{i}", "source": str(f), "loop": False,
                                                  "tiles": {"rows": 3, "cols": 3, "overlap": 0.0}}
                                                 for i, f in enumerate(cams)])
    found = 0
    for i in range(10):
        single, w = [r for r in whole.results if r.camera == f"c{i}"]  # single.png, then the mosaic
        t = [r for r in tiled.results if r.camera == f"c{i}"][1]
        if max(single.scores, key=lambda k: single.scores[k]) != "hole":
            continue  # the model does not see this one even up close: not a test of tiling
        assert t.tile is not None
        if t.scores["hole"] > w.scores["hole"] + 0.1 and t.tile.index == 5:  # 0 is the whole frame
            found += 1
    assert found >= 2
