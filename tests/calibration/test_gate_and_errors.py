"""A bad calibration fails the gate and writes nothing; bad input gets one clear line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.data import MIN_HOLDOUT, SplitSpec, load_calibration_data
from edge.bundle import Bundle, read_manifest
from edge.errors import CalibrationError
from tests.calibration.conftest import calibrate, copy_bundle, report
from tests.helpers import one_line_error, run_cli

DESTROY = ("--precision", "int8", "--method", "percentile", "--percentile", "10")  # clips 90 % of every range


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


@pytest.fixture
def clip(tiny_bundles: dict[str, Path], tmp_path: Path) -> Path:
    return copy_bundle(tiny_bundles["clip"], tmp_path / "clip")


def test_scale_destroying_percentile_fails_and_names_layers(clip: Path) -> None:
    before = _snapshot(clip)
    line = one_line_error(calibrate(clip, *DESTROY, expect=5))
    assert "INT8 gate failed" in line and "nothing was written" in line
    assert "--exclude" in line and "--auto" in line  # which layers to try next
    assert _snapshot(clip) == before  # no artifact, no report, no leftover work folder


# Ranges clipped at the 90th percentile: this tiny model passes (on TensorRT's emulated INT8, the same on every
# CPU) once its three most sensitive groups are float, with one quantized node left.
DAMAGE = ("--precision", "int8", "--method", "percentile", "--percentile", "90", "--min-cosine", "0.985",
          "--min-patch-cosine", "0.9")


def test_auto_keeps_the_most_sensitive_groups_until_it_passes(clip: Path) -> None:
    calibrate(clip, *DAMAGE, "--auto")
    rec = Bundle.open(clip).manifest.files["vision.int8"].calibration
    assert rec is not None and rec.gate is not None and rec.gate.passed
    section = report(clip)["artifacts"]["vision.int8"]
    ranked = [c["group"] for c in section["sensitivity"]]
    assert rec.kept_float == ranked[: len(rec.kept_float)]  # most damaging first
    assert section["auto_steps"][-1]["passed"] and not any(s["passed"] for s in section["auto_steps"][:-1])
    assert [k["name"] for k in section["kept_float"]] == rec.kept_float
    assert all("automatic" in k["reason"] for k in section["kept_float"])
    assert section["quantized_nodes"] >= 1  # still an INT8 artifact


def test_auto_never_keeps_every_group_in_float(clip: Path) -> None:
    """An "INT8" artifact with no quantized node would pass the gate trivially: FP32 under another name."""
    before = _snapshot(clip)
    line = one_line_error(calibrate(clip, *DESTROY, "--auto", expect=5))
    assert "INT8 gate failed" in line and "would leave no INT8" in line and "fp16" in line
    assert _snapshot(clip) == before


@pytest.mark.parametrize("target", ["tensorrt", "cpu"])
def test_excluding_every_group_is_refused_before_any_work(clip: Path, target: str) -> None:
    before = _snapshot(clip)
    line = one_line_error(calibrate(clip, "--precision", "int8", "--target", target, "--exclude", "embeddings",
                                    "--exclude", "layers.0", "--exclude", "layers.1", "--exclude", "head", expect=2))
    assert "nothing would be INT8" in line and "fp16" in line
    assert _snapshot(clip) == before


def test_force_writes_a_failed_artifact_and_says_so(clip: Path) -> None:
    calibrate(clip, *DESTROY, "--force")
    gate = Bundle.open(clip).manifest.files["vision.int8"].calibration.gate  # type: ignore[union-attr]
    assert gate is not None and not gate.passed and gate.forced
    assert "written with --force" in (clip / "calibration" / "report.md").read_text()


def test_exclude_keeps_a_group_in_float(clip: Path) -> None:
    # --force: the graph's structure is under test, not how this CPU quantizes a random model
    calibrate(clip, "--precision", "int8", "--exclude", "layers.0", "--force")
    import onnx

    model = onnx.load(str(clip / "vision.int8.onnx"))
    dq_inputs = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    layer0 = [n for n in model.graph.node if "layers.0/" in n.name and n.op_type == "MatMul"]
    layer1 = [n for n in model.graph.node if "layers.1/" in n.name and n.op_type == "MatMul"]
    assert layer0 and not any(i in dq_inputs for n in layer0 for i in n.input)
    assert any(i in dq_inputs for n in layer1 for i in n.input)


def _write_images(folder: Path, n: int, broken: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"img{i:03d}.png"), rng.integers(0, 255, (60, 80, 3), dtype=np.uint8))
    for i in range(broken):
        (folder / f"broken{i}.png").write_bytes(b"not a png")


@pytest.mark.parametrize("case", ["empty", "unreadable", "no-vision", "method", "prompts", "tiles", "exclude",
                                  "sample"])
def test_bad_input_is_one_clear_line_and_leaves_no_trace(case: str, clip: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    args = ["--precision", "int8", "--min-agreement", "0.8"]  # 20 hold-out frames can show 0.8 (not 0.97)
    expect, want = 5, ""
    if case == "empty":
        images.mkdir()
        want = f"0 image files, calibration needs at least {MIN_HOLDOUT + 1}"
    elif case == "unreadable":
        _write_images(images, 15, broken=10)
        want = "10 unreadable skipped"
    else:
        _write_images(images, 30)
    if case == "no-vision":
        (clip / "vision.onnx").unlink()
        expect, want = 3, "vision.onnx: listed in bundle.json as 'vision' but missing"
    elif case == "method":
        args += ["--method", "kl"]
        expect, want = 2, "--method kl: unknown calibration method"
    elif case == "prompts":
        bad = tmp_path / "prompts.yaml"
        bad.write_text("name: x\ncategories: [{name: ok, prompts: [fine], ok: true}]\n")
        args += ["--prompts", str(bad)]
        expect, want = 2, "prompts.yaml: field 'categories'"
    elif case == "tiles":
        args += ["--tiles", "two"]
        expect, want = 2, "--tiles two: expected ROWSxCOLS"
    elif case == "exclude":
        args += ["--exclude", "layers.9"]
        expect, want = 2, "--exclude layers.9: no such node group"
    elif case == "sample":
        args += ["--min-agreement", "0.97"]
        want = "20 hold-out frames give an agreement bound of at most 0.881"
    before = _snapshot(clip)
    result = run_cli("calibrate", str(clip), "--images", str(images), "--quiet", *args, expect=expect)
    assert want in one_line_error(result)
    assert _snapshot(clip) == before


def test_folder_split_is_seeded_and_counts_unreadable_files(tmp_path: Path, tiny_bundles: dict[str, Path]) -> None:
    _write_images(tmp_path / "imgs", 40, broken=3)
    spec = Bundle.open(tiny_bundles["clip"]).manifest.image
    a = load_calibration_data(str(tmp_path / "imgs"), spec, SplitSpec(10, 25, seed=1))
    b = load_calibration_data(str(tmp_path / "imgs"), spec, SplitSpec(10, 25, seed=1))
    c = load_calibration_data(str(tmp_path / "imgs"), spec, SplitSpec(10, 25, seed=2))
    assert np.array_equal(a.calibration, b.calibration) and a.data_sha256 == b.data_sha256
    assert not np.array_equal(a.calibration, c.calibration) and a.data_sha256 != c.data_sha256
    assert len(a.calibration) == 10 and len(a.holdout) == 25
    assert len(a.skipped) <= 3 and all(s.startswith("broken") for s in a.skipped)
    with pytest.raises(CalibrationError, match="hold-out images .*raise --calib-images"):
        load_calibration_data(str(tmp_path / "imgs"), spec, SplitSpec(10, MIN_HOLDOUT - 1))


def test_manifest_records_what_the_engine_build_needs(clip: Path) -> None:
    calibrate(clip, "--precision", "fp16")
    manifest = read_manifest(clip)
    data = json.loads((clip / "bundle.json").read_text())
    for role in ("vision.fp16", "text.fp16"):
        entry = data["files"][role]
        assert entry["precision"] == "fp16" and len(entry["sha256"]) == 64
        assert entry["calibration"]["derived_from"] == manifest.files[role.split(".")[0]].sha256
        assert os.access(clip / entry["path"], os.R_OK)


def test_a_kill_while_committing_leaves_a_bundle_that_opens(clip: Path) -> None:
    """The manifest swap is the commit point: files it lists are never replaced before it."""
    import signal
    import subprocess
    import sys

    calibrate(clip, "--precision", "int8", "--force")
    first = read_manifest(clip).files["vision.int8"]
    args = [sys.executable, "-m", "edge.cli.main", "calibrate", str(clip), "--images", "sim://line?seed=9",
            "--quiet", "--calib-images", "24", "--holdout-images", "40", "--min-agreement", "0.8", "--precision",
            "int8", "--method", "percentile", "--force"]
    killed = subprocess.run(args, env={**os.environ, "EDGE_INSPECT_FAILPOINT": "calibrate-commit"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert Bundle.open(clip).manifest.files["vision.int8"] == first  # every hash still matches: the old bundle
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    second = Bundle.open(clip).manifest.files["vision.int8"]
    assert second.sha256 != first.sha256 and second.path != first.path  # under a name the old manifest did not use
    assert not (clip / first.path).exists()  # the replaced file is gone once the new manifest is in place
