"""The README's main job (``edge-inspect demo``) and the benchmark commands, end to end.

No timing is asserted here: benchmarks report numbers, tests check that they run and that
their reports are complete.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.helpers import run_cli


def test_demo_runs_the_service_end_to_end(tmp_path: Path) -> None:
    result = run_cli("demo", "--cameras", "2", "--frames", "4", "--fps", "5", "--quiet",
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
    out = run_cli("bench", "pipeline", "--bundle", str(tiny_bundles["siglip"]), "--cameras", "1",
                  "--seconds", "1", "--json", str(tmp_path / "p.json")).out
    report = json.loads((tmp_path / "p.json").read_text())
    run = report["runs"][0]
    assert run["frames"] > 0 and run["bare_encoder_ms_per_frame"] > 0 and "overhead vs encode" in out
    run_cli("bench", "sim", "--frames", "5", "--json", str(tmp_path / "s.json"))
    assert json.loads((tmp_path / "s.json").read_text())["frames_per_s"] > 0
    run_cli("bench", "mqtt", "--results", "200", "--json", str(tmp_path / "m.json"))
    mqtt = json.loads((tmp_path / "m.json").read_text())
    assert [r["path"] for r in mqtt["runs"]][0] == "bare paho QoS 1"
    assert all(r["results_per_s"] > 0 for r in mqtt["runs"])
