"""The README's main job (``edge-inspect demo``) and the benchmark commands, end to end.

No timing is asserted here: benchmarks report numbers, tests check that they run and that
their reports are complete.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers import one_line_error, run_cli


def test_demo_runs_the_service_end_to_end(tmp_path: Path) -> None:
    result = run_cli("demo", "--cameras", "2", "--frames", "4", "--fps", "2", "--quiet",
                     "--workdir", str(tmp_path / "demo"))
    n = int(re.search(r"(\d+) results: verdict accuracy", result.out).group(1))  # type: ignore[union-attr]
    assert 6 <= n <= 8  # live cameras: a frame may be skipped (newest wins), never a result lost
    assert "| truth \\ predicted |" in result.out
    assert re.search(r"operator page http://127\.0\.0\.1:\d+/", result.out)
    assert f"MES subscriber: {n} results over MQTT, seq 1..{n}, 0 gap(s); status online -> offline" in result.out
    lines = (tmp_path / "demo" / "results.jsonl").read_text().splitlines()
    assert len(lines) == n and all(json.loads(line)["simulated"] for line in lines)
    again = run_cli("demo", "--cameras", "1", "--frames", "2", "--quiet", "--workdir", str(tmp_path / "demo"))
    assert "exporting" not in again.err  # the bundle is exported once
    assert f"seq {n + 1}..{n + 2}" in again.out  # and seq continues across runs


def test_bench_pipeline_and_mqtt_write_complete_reports(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    out = run_cli("bench", "pipeline", "--bundle", str(tiny_bundles["siglip"]), "--cameras", "2", "--tiles",
                  "whole,2x2", "--unbatched", "--seconds", "1", "--json", str(tmp_path / "p.json")).out
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["input"] == "uint8" and "overhead vs bare" in out and "2x2 + whole" in out
    runs = report["runs"]  # per view: batched, then one crop per encoder call
    assert [(r["tiles"] is not None, r["batched"]) for r in runs] == [(False, True), (False, False), (True, True),
                                                                       (True, False)]
    for r in runs:
        assert r["frames"] > 0 and r["bare_encoder_ms_per_frame"] > 0
        assert set(r["stage_ms_per_frame"]) >= {"capture", "resize", "encode", "score", "publish"}
        assert all(v >= 0 for v in r["stage_ms_per_frame"].values()) and r["skipped_frames"] >= 0
    assert runs[3]["mean_batch_crops"] == 1 and runs[2]["crops_per_frame"] == 5
    assert runs[0]["batched_vs_unbatched"] == round(runs[0]["images_per_s"] / runs[1]["images_per_s"], 3)
    assert {r["capture"] for r in runs} == {"jpeg"}  # the default: an MJPEG camera
    raw = run_cli("bench", "pipeline", "--bundle", str(tiny_bundles["siglip"]), "--cameras", "1", "--capture", "raw",
                  "--seconds", "1", "--json", str(tmp_path / "raw.json")).out
    assert [r["capture"] for r in json.loads((tmp_path / "raw.json").read_text())["runs"]] == ["raw"]
    assert "| raw | whole | 1 |" in raw  # uncompressed frames: no decode on the camera's thread
    bad = run_cli("bench", "pipeline", "--bundle", str(tiny_bundles["siglip"]), "--tiles", "2by2", expect=2)
    assert "--tiles 2by2: '2by2' is not a view" in one_line_error(bad)
    for given, error in (("png", "'png' is not a capture"), (",", "none given"), ("raw,raw", "a capture given twice")):
        bad = run_cli("bench", "pipeline", "--bundle", str(tiny_bundles["siglip"]), "--capture", given, expect=2)
        assert f"--capture {given}: {error}; expected jpeg and/or raw" in one_line_error(bad)
    run_cli("bench", "sim", "--frames", "5", "--json", str(tmp_path / "s.json"))
    assert json.loads((tmp_path / "s.json").read_text())["frames_per_s"] > 0
    run_cli("bench", "mqtt", "--results", "200", "--json", str(tmp_path / "m.json"))
    mqtt = json.loads((tmp_path / "m.json").read_text())
    assert [r["path"] for r in mqtt["runs"]][0] == "bare paho QoS 1"
    assert all(r["results_per_s"] > 0 for r in mqtt["runs"])
