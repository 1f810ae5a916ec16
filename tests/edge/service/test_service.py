"""The service end to end on real sources (files, folders, sim://) with the tiny bundles.

Accuracy against ground truth is tested with the demo models in test_service_accuracy.py;
here the mechanics: sequencing, payloads, live prompt edits, reconnects, triggers.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.app import build_station
from edge.bundle import Bundle
from edge.cameras import CameraState
from edge.config import ServiceConfig
from edge.errors import ConfigError
from edge.results import RESULT_SCHEMA_ID
from edge.sim import LineSimulator
from tests.edge.conftest import PROMPTS, Collector
from tests.helpers import run_cli

KEYS = {"schema", "id", "seq", "ts", "station", "camera", "verdict", "category", "score", "scores", "tile",
        "prompt_set", "model", "latency_ms", "snapshot", "part_id", "replayed", "simulated", "truth", "source",
        "anomaly", "memory"}


def _run(cfg: ServiceConfig, duration: float | None = None) -> Collector:
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        svc.run(duration=duration)
    return sink


def test_video_file_every_frame_once_with_the_contract_keys(
        make_config: Callable[..., ServiceConfig], tmp_path: Path) -> None:
    run_cli("sim", "sim://line?seed=3&size=320x240", "--frames", "8", "--out", str(tmp_path / "line.avi"))
    jsonl = tmp_path / "results.jsonl"
    cfg = make_config([{"name": "cam1", "source": str(tmp_path / "line.avi"), "loop": False}],
                      results={"jsonl": str(jsonl)})
    sink = _run(cfg, duration=60)
    assert [r.seq for r in sink.results] == list(range(1, 9))
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert lines == [r.to_dict() for r in sink.results]  # every sink gets the same payload
    first = lines[0]
    assert set(first) == KEYS and first["schema"] == RESULT_SCHEMA_ID
    assert first["station"] == "s1/l1/st1" and first["camera"] == "cam1"
    assert first["ts"].endswith("Z") and len(first["ts"]) == len("2026-01-01T00:00:00.000Z")
    assert set(first["scores"]) == {"good", "scratch", "hole"} and first["simulated"] is False
    assert first["model"]["family"] == Bundle.open(cfg.model.bundle).family  # how to read the scores
    assert len({r.id for r in sink.results}) == 8
    assert [r.source.frame for r in sink.results if r.source] == list(range(8))  # which video frame
    assert {r.source.file for r in sink.results if r.source} == {"line.avi"}


def test_sim_results_carry_truth(make_config: Callable[..., ServiceConfig]) -> None:
    cfg = make_config([{"name": "a", "source": "sim://line?seed=1&frames=4&size=320x240&live=0"},
                       {"name": "b", "source": "sim://line?seed=2&frames=4&size=320x240&live=0"}])
    sink = _run(cfg, duration=60)
    assert sorted(r.camera for r in sink.results) == ["a"] * 4 + ["b"] * 4
    assert all(r.simulated and r.truth and r.truth["part_id"].startswith("S") for r in sink.results)
    assert sorted(r.seq for r in sink.results) == list(range(1, 9))


def test_prompt_edit_mid_run_switches_version_without_gap(
        make_config: Callable[..., ServiceConfig], prompts_file: Path) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 30}])
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        old = svc.prompt_state.version
        sink.wait_for(lambda rs: len(rs) >= 5)
        prompts_file.write_text(PROMPTS.replace("with a hole", "with a round hole"))
        sink.wait_for(lambda rs: rs[-1].prompt_set.version != old)
        sink.wait_for(lambda rs: sum(r.prompt_set.version != old for r in rs) >= 3)
    versions = [r.prompt_set.version for r in sink.results]
    switch = versions.index(next(v for v in versions if v != old))
    assert all(v == old for v in versions[:switch]) and all(v != old for v in versions[switch:])
    assert [r.seq for r in sink.results] == list(range(1, len(sink.results) + 1))


def test_rejected_edit_keeps_the_active_set(
        make_config: Callable[..., ServiceConfig], prompts_file: Path) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 30}])
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        old = svc.prompt_state.version
        sink.wait_for(lambda rs: len(rs) >= 2)
        prompts_file.write_text(PROMPTS.replace("prompts: [\"scratched\"]", "prompt: [\"scratched\"]"))
        svc.station.check_prompt_file()
        error = svc.status.snapshot()["prompt_error"]
        n = len(sink.results)
        sink.wait_for(lambda rs: len(rs) >= n + 3)
    assert "categories.1.prompt" in error and "unknown key" in error
    assert {r.prompt_set.version for r in sink.results} == {old}


def _folder_of_frames(folder: Path, count: int) -> None:
    folder.mkdir()
    sim = LineSimulator(seed=4, size=(320, 240))
    for i in range(count):
        cv2.imwrite(str(folder / f"f{i:03d}.png"), sim.frame(i).image)


def test_camera_that_vanishes_reconnects(make_config: Callable[..., ServiceConfig], tmp_path: Path) -> None:
    folder = tmp_path / "cam"
    _folder_of_frames(folder, 3)
    cfg = make_config([{"name": "cam1", "source": str(folder), "fps": 20}])
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        cam = svc.pipeline.cameras["cam1"]
        sink.wait_for(lambda rs: len(rs) >= 3)
        hidden = folder.rename(tmp_path / "unplugged")
        sink.wait_for(lambda rs: cam.state == CameraState.RECONNECTING, timeout=10)
        sink.wait_for(lambda rs: "camera cam1" in " ".join(svc.status.snapshot()["reasons"]), timeout=10)
        assert svc.status.state == "degraded"
        hidden.rename(folder)
        n = len(sink.results)
        sink.wait_for(lambda rs: len(rs) >= n + 3, timeout=20)
        sink.wait_for(lambda rs: svc.status.state == "online", timeout=10)
        assert cam.stats.reconnects >= 1
    assert [r.seq for r in sink.results] == list(range(1, len(sink.results) + 1))


def test_corrupt_frames_are_skipped_and_counted(make_config: Callable[..., ServiceConfig], tmp_path: Path) -> None:
    folder = tmp_path / "cam"
    _folder_of_frames(folder, 3)
    (folder / "f001b.png").write_bytes(b"\x89PNG broken")
    cfg = make_config([{"name": "cam1", "source": str(folder), "loop": False}])
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        svc.run(duration=60)
        view = svc.station.cameras()["cam1"]
    assert len(sink.results) == 3 and view.unreadable == 1  # counted, and the others inspected
    assert [(r.source.file, r.source.frame) for r in sink.results if r.source] == [
        ("f000.png", 0), ("f001.png", 1), ("f002.png", 3)]  # which file each verdict is about


def test_missing_camera_degrades_but_runs(make_config: Callable[..., ServiceConfig], tmp_path: Path) -> None:
    cfg = make_config([{"name": "gone", "source": str(tmp_path / "no-such-device")},
                       {"name": "live", "source": "sim://line?seed=1&size=320x240", "fps": 20}])
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        sink.wait_for(lambda rs: len(rs) >= 3)
        sink.wait_for(lambda rs: svc.status.state == "degraded", timeout=5)
        reasons = " ".join(svc.status.snapshot()["reasons"])
    assert "camera gone" in reasons and "no-such-device" in reasons
    assert {r.camera for r in sink.results} == {"live"}


def test_triggered_mode_inspects_on_trigger_with_part_id(make_config: Callable[..., ServiceConfig]) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=320x240", "fps": 20}],
                      trigger={"mode": "triggered"})
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        svc.run(duration=0.5)
        assert sink.results == []
        svc.station.trigger("cam1", "P-0001")
        sink.wait_for(lambda rs: len(rs) == 1)
        svc.station.trigger("cam1", "P-0002")
        sink.wait_for(lambda rs: len(rs) == 2)
        with pytest.raises(ConfigError, match="unknown camera 'cam9'"):
            svc.station.trigger("cam9", "P-1")
    assert [r.part_id for r in sink.results] == ["P-0001", "P-0002"]


def test_triggers_close_together_each_inspect_their_own_frame(make_config: Callable[..., ServiceConfig]) -> None:
    """Two triggers 50 ms apart used to share one pending slot: the first part was never inspected."""
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=160x120", "fps": 30}],
                      trigger={"mode": "triggered"})
    sink = Collector()
    with build_station(cfg, sinks=[sink]) as svc:
        svc.run(duration=0.3)
        for i in range(10):
            svc.station.trigger("cam1", f"A-{i}")
            time.sleep(0.05)
            svc.station.trigger("cam1", f"B-{i}")
            time.sleep(0.1)
        sink.wait_for(lambda rs: len(rs) >= 20)
        svc.run(duration=0.3)
    assert [r.part_id for r in sink.results] == [f"{p}-{i}" for i in range(10) for p in "AB"]
    frames = [r.ts for r in sink.results]
    assert len(set(frames)) == 20  # twenty parts, twenty frames


def test_a_trigger_without_a_frame_times_out_visibly(make_config: Callable[..., ServiceConfig],
                                                     tmp_path: Path) -> None:
    cfg = make_config([{"name": "cam1", "source": str(tmp_path / "unplugged")}],
                      trigger={"mode": "triggered", "timeout_s": 0.5})
    with build_station(cfg) as svc:
        assert svc.station.trigger("cam1", "P-9")["queued"] == 1
        deadline = time.monotonic() + 10
        while svc.counters.triggers_timed_out < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert svc.counters.triggers_timed_out == 1
        assert "trigger cam1: part P-9: no frame within 0.5 s" in svc.status.summary()


def test_continuous_mode_refuses_a_trigger_with_the_reason(make_config: Callable[..., ServiceConfig]) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&size=160x120"}])
    with build_station(cfg) as svc, pytest.raises(ConfigError, match="continuous mode .* set trigger.mode: triggered"):
        svc.station.trigger("cam1", "P-1")


def test_seq_continues_after_restart(make_config: Callable[..., ServiceConfig]) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&frames=3&size=320x240&live=0"}])
    first = _run(cfg, duration=60)
    second = _run(cfg, duration=60)
    assert [r.seq for r in first.results + second.results] == list(range(1, 7))


def test_tiles_name_the_tile(make_config: Callable[..., ServiceConfig]) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&frames=3&size=320x240&live=0",
                        "roi": [10, 10, 300, 220], "tiles": {"rows": 2, "cols": 3, "overlap": 0.25}}])
    sink = _run(cfg, duration=60)
    assert len(sink.results) == 3
    for r in sink.results:
        assert r.tile is not None and 0 <= r.tile.index < 7
        x, y, w, h = r.tile.box
        assert x >= 10 and y >= 10 and x + w <= 311 and y + h <= 231


def test_evidence_for_non_ok_frames(make_config: Callable[..., ServiceConfig], tmp_path: Path) -> None:
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&frames=6&size=320x240&live=0"}],
                      evidence={"ok_every": 1})
    sink = _run(cfg, duration=60)
    assert all(r.snapshot for r in sink.results)
    path = tmp_path / "state" / "evidence" / sink.results[0].snapshot  # type: ignore[operator]
    image = cv2.imread(str(path))
    assert image is not None and image.shape == (240, 320, 3)


def test_exemplar_folder_with_a_non_image_is_rejected(
        make_config: Callable[..., ServiceConfig], prompts_file: Path, tmp_path: Path) -> None:
    ex = tmp_path / "scratches"
    ex.mkdir()
    (ex / "notes.txt").write_text("not an image")
    prompts_file.write_text(PROMPTS.replace('prompts: ["scratched"]', 'prompts: ["scratched"], exemplars: scratches'))
    cfg = make_config([{"name": "cam1", "source": "sim://line?seed=1&frames=1&live=0"}])
    with pytest.raises(ConfigError, match="notes.txt: not an image file"), build_station(cfg):
        pass


def test_exemplars_blend_into_scores(make_config: Callable[..., ServiceConfig], prompts_file: Path,
                                     tmp_path: Path) -> None:
    ex = tmp_path / "holes"
    _folder_of_frames(ex, 2)
    cfg = make_config([{"name": "cam1", "source": str(ex), "loop": False}])
    plain = _run(cfg, duration=60).results
    prompts_file.write_text(PROMPTS.replace('prompts: ["with a hole"]', 'prompts: ["with a hole"], exemplars: holes'))
    shutil.rmtree(tmp_path / "state")
    blended = _run(cfg, duration=60).results
    # the exemplar images themselves are scored: their affinity to the prototype is high
    assert all(b.scores["hole"] > p.scores["hole"] for p, b in zip(plain, blended))
    assert np.allclose([b.scores["good"] for b in blended], [p.scores["good"] for p in plain], atol=1e-6)
