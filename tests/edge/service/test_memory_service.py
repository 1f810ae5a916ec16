"""The station with a good-part memory: anomaly and source in every result, the defect boxed, bad good folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edge.app import build_station
from edge.config import ServiceConfig, parse_config
from edge.errors import BundleError, ConfigError
from edge.sim import LineSimulator
from edge.sim.scene import Defect
from export.captions import DEMO_PROMPTS_FILE
from tests.edge.conftest import Collector
from tests.helpers import run_cli

PRODUCT = "steel-plate"
TILES = {"rows": 2, "cols": 2, "overlap": 0.25}


def _good_folder(folder: Path, count: int = 16, product: str = PRODUCT, seed: int = 5000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    line = LineSimulator(seed=seed, product=product, defect_rate=0.0)
    for i in range(count):
        cv2.imwrite(str(folder / f"good{i:03d}.png"), line.frame(i).image)
    return folder


def _prompts(folder: Path, good: str | None) -> Path:
    data = yaml.safe_load(DEMO_PROMPTS_FILE.read_text())
    if good is not None:
        data["good"] = good
    path = folder / "prompts.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def station_config(demo_bundles: dict[str, Path], tmp_path: Path) -> Callable[..., ServiceConfig]:
    def make(camera: str, good: str | None = "good", bundle: Path | None = None) -> ServiceConfig:
        return parse_config({"cameras": [{"name": "cam1", "source": camera, "loop": False, "tiles": TILES}],
                             "model": {"bundle": str(bundle or demo_bundles["clip"])},
                             "prompts": str(_prompts(tmp_path, good)), "state_dir": str(tmp_path / "state"),
                             "station": {"site": "s", "line": "l", "station": "st"}}, "test")
    return make


def _frames(folder: Path, sim: LineSimulator, defects: list[Defect | None]) -> list:
    folder.mkdir()
    truths = []
    for i, defect in enumerate(defects):
        part = sim.sample_part(100 + i, np.random.default_rng([7, i]))
        frame = sim.render(100 + i, part, defect)
        cv2.imwrite(str(folder / f"f{i:03d}.png"), frame.image)
        truths.append(frame.truth)
    return truths


def test_a_good_folder_gives_anomaly_and_source_for_every_frame_and_boxes_the_defect(
        station_config: Callable[..., ServiceConfig], tmp_path: Path) -> None:
    _good_folder(tmp_path / "good")
    sim = LineSimulator(seed=77, product=PRODUCT)
    truths = _frames(tmp_path / "cam", sim, [None, Defect("hole", 0.9, seed=3), None, Defect("stain", 0.9, seed=4)])
    sink = Collector()
    with build_station(station_config(str(tmp_path / "cam")), sinks=[sink]) as svc:
        svc.run(duration=120)
        memory = svc.prompt_state.memory_version
        status = svc.station.memory_status()  # what the page and the MQTT memory command show
    (view,) = status["views"]
    assert status["active"] and status["images"] == 16 and len(view["leave_one_out"]) == 16
    assert view["leave_one_out_images"] == [f"good{i:03d}.png" for i in range(16)]  # each score's image
    results = sink.results
    assert len(results) == 4
    assert all(r.anomaly is not None and r.source is not None for r in results)
    assert [r.source.file for r in results] == ["f000.png", "f001.png", "f002.png", "f003.png"]  # type: ignore[union-attr]
    assert all(r.memory is not None and r.memory.images == 16 and r.memory.version == memory for r in results)
    for r, t in zip(results, truths):
        if t.defect == "good":
            continue
        assert r.verdict == "ng" and r.anomaly.score >= r.anomaly.threshold  # type: ignore[union-attr]
        x, y, w, h = t.box  # type: ignore[misc]
        bx, by, bw, bh = r.anomaly.box  # type: ignore[union-attr, misc]
        cx, cy = bx + bw / 2, by + bh / 2
        assert x - 16 <= cx <= x + w + 16 and y - 16 <= cy <= y + h + 16, (r.anomaly, t.box)
        evidence = cv2.imread(str(tmp_path / "state" / "evidence" / r.snapshot))  # type: ignore[operator]
        red = (evidence[..., 2] > 200) & (evidence[..., 1] < 60) & (evidence[..., 0] < 60)
        ys, xs = np.nonzero(red)  # the box is drawn in red on the NG evidence, around the defect
        assert len(xs) and abs(xs.mean() - cx) < 40 and abs(ys.mean() - cy) < 40
    goods = [r for r, t in zip(results, truths) if t.defect == "good"]
    assert all(r.anomaly.score < r.anomaly.threshold * 1.2 for r in goods)  # type: ignore[union-attr]


@pytest.mark.parametrize("case, error", [
    ("empty", "the memory needs at least 3 good parts"),
    ("not-image", "not image files: notes.txt"),
    ("sizes", "images of another size than the others"),
    ("product", "differ from the other good images far more"),
    ("missing", "no such folder"),
])
def test_a_bad_good_folder_is_one_clear_error(case: str, error: str, station_config: Callable[..., ServiceConfig],
                                              tmp_path: Path) -> None:
    folder = tmp_path / "good"
    if case != "missing":
        _good_folder(folder, count=0 if case == "empty" else 10)
    if case == "not-image":
        (folder / "notes.txt").write_text("x")
    elif case == "sizes":
        cv2.imwrite(str(folder / "small.png"), np.zeros((100, 100, 3), np.uint8))
    elif case == "product":
        other = LineSimulator(seed=1, product="pcb-board", defect_rate=0.0)
        cv2.imwrite(str(folder / "zz-other.png"), other.frame(0).image)
    with pytest.raises(ConfigError, match=error) as err:
        build_station(station_config("sim://line?frames=1&live=0"))
    if case == "product":
        assert "zz-other.png" in str(err.value)


def test_a_bundle_without_patch_tokens_says_to_re_export(station_config: Callable[..., ServiceConfig],
                                                         tmp_path: Path) -> None:
    from export.demo_models import recipe

    run_cli("export", str(recipe.folder("clip")), "--out", str(tmp_path / "old"), "--quiet", "--patch-layers", "none")
    _good_folder(tmp_path / "good", count=4)
    with pytest.raises(BundleError, match="no patch_embeds.*re-export"):
        build_station(station_config("sim://line?frames=1&live=0", bundle=tmp_path / "old"))


def test_the_live_service_and_evaluate_agree_on_the_same_frames(station_config: Callable[..., ServiceConfig],
                                                                  tmp_path: Path) -> None:
    """One decision path: the station's published verdicts and 'edge-inspect evaluate' on the same 100 frames of
    the demo line agree within 2 points of verdict accuracy (only batch composition differs between them)."""
    import json

    from edge.evaluate import Evaluation, measures, row_of_result

    _good_folder(tmp_path / "good")
    url = f"sim://line?seed=321&product={PRODUCT}&frames=100&live=0"
    sink = Collector()
    with build_station(station_config(url), sinks=[sink]) as svc:
        svc.run(duration=300)
    assert len(sink.results) == 100
    labels = svc.prompt_state.names
    live = measures(Evaluation([row_of_result(r, "good") for r in sink.results], labels, "good", None))
    run_cli("evaluate", "--bundle", str(station_config(url).model.bundle), "--prompts",
            str(tmp_path / "prompts.yaml"), "--images", url, "--frames", "100", "--good", str(tmp_path / "good"),
            "--tiles", "2x2", "--out", str(tmp_path / "report"), "--quiet")
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    offline = report["measures"]
    loo = report["memory"]["leave_one_out"]  # how far below the threshold the good parts sit, one per image
    assert len(loo) == report["memory"]["images"] and all(0 < x <= 1 for x in loo)
    assert report["memory"]["leave_one_out_images"] == [f"good{i:03d}.png" for i in range(16)]  # which is which
    assert abs(live["accuracy"] - offline["accuracy"]) <= 0.02, (live["accuracy"], offline["accuracy"])
    assert abs(live["escapes"] - offline["escapes"]) <= 0.02 and live["located_of"] > 0
