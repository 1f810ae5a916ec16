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

from edge.app import build_station
from edge.config import parse_config
from edge.sim import LineSimulator
from edge.sim.scene import Defect
from export.captions import DEMO_PROMPTS_FILE
from export.demo_models.evaluate import CARD_JSON
from tests.edge.conftest import Collector
from tests.helpers import run_cli

TILES = {"rows": 2, "cols": 2, "overlap": 0.25}


@pytest.fixture(scope="module")
def demo_clip(demo_bundles: dict[str, Path]) -> Path:
    return demo_bundles["clip"]


@pytest.fixture(scope="module")
def card_tiled() -> dict[str, Any]:
    card = json.loads(CARD_JSON.read_text())
    return next(r for r in card["results"] if r["family"] == "clip")["onnx"]["tiled"]


def _service(bundle: Path, tmp_path: Path, cameras: list[dict[str, Any]]) -> Collector:
    cfg = parse_config({"cameras": cameras, "model": {"bundle": str(bundle)}, "prompts": str(DEMO_PROMPTS_FILE),
                        "state_dir": str(tmp_path / "state")}, "test")
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
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


def _mosaic(cell: np.ndarray, goods: list[np.ndarray], index: int, n: int) -> np.ndarray:
    cells = list(goods)
    cells.insert(index, cell)
    return np.vstack([np.hstack(cells[r * n : r * n + n]) for r in range(n)])


def _scores(bundle: Path, frames: list[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    from edge.bundle import Bundle
    from edge.inspect.frames import score_frames
    from edge.inspect.prompt_state import build_state
    from edge.model import ZeroShotModel
    from edge.prompts import load_prompt_set

    prompts = load_prompt_set(DEMO_PROMPTS_FILE)
    with ZeroShotModel(Bundle.open(bundle)) as model:
        state = build_state(model, prompts, DEMO_PROMPTS_FILE.parent, None, "test")
        return np.stack([fs.scores for fs in score_frames(model, state, frames, batch=32)]), state.names


def test_tiles_find_a_small_defect_that_the_whole_frame_misses(demo_clip: Path, tmp_path: Path) -> None:
    """A 5x5 mosaic of parts (3200x2400) with one part that has a hole. Squashed whole into
    224x224 the hole is a pixel or two; a 5x5 tile grid shows each part at the model's scale.
    The parts are chosen so that, one by one, the model sees the hole and no defect on the
    good parts: what is tested is tiling, not the model. (A 3x3 mosaic stopped being small
    enough once demo-clip was trained on 3x more parts: its whole frame found the hole too.)"""
    sim = LineSimulator(seed=77)
    goods = [sim.render(i, sim.sample_part(i, np.random.default_rng([77, i])), None).image for i in range(24)]
    holes = [sim.render(100 + i, sim.sample_part(100 + i, np.random.default_rng([78, i])),
                        Defect("hole", 0.9, seed=i)).image for i in range(16)]
    good_scores, names = _scores(demo_clip, goods)
    hole_scores, _ = _scores(demo_clip, holes)
    defects = [i for i, n in enumerate(names) if n != "good"]
    hole = names.index("hole")
    calm = [goods[i] for i in np.argsort(good_scores[:, defects].max(axis=1))[:8]]
    margin = hole_scores[:, hole] - np.delete(hole_scores, hole, axis=1).max(axis=1)
    best = int(np.argmax(margin))
    assert margin[best] > 0  # up close, hole is the model's top category for this part
    folder = tmp_path / "mosaic"
    folder.mkdir()
    cv2.imwrite(str(folder / "mosaic.png"), _mosaic(holes[best], calm * 3, 12, 5))
    whole = _service(demo_clip, tmp_path / "a", [{"name": "c", "source": str(folder), "loop": False}]).results[0]
    tiles = {"rows": 5, "cols": 5, "overlap": 0.0, "include_full": False}
    tiled = _service(demo_clip, tmp_path / "b", [{"name": "c", "source": str(folder), "loop": False,
                                                  "tiles": tiles}]).results[0]
    assert tiled.scores["hole"] == pytest.approx(hole_scores[best, hole], abs=0.02)  # the centre tile's view
    assert whole.scores["hole"] < tiled.scores["hole"] - 0.1  # the whole-frame pass misses most of it
    assert tiled.category == "hole" and tiled.verdict != "ok"  # the tiled pass decides on the hole
    assert tiled.tile is not None and tiled.tile.index == 12  # and names the centre tile
    assert tiled.tile.box == (1280, 960, 640, 480)
