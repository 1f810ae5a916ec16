"""``bench encoder`` covers every precision a bundle holds and quotes each one's gate beside its speed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.calibration.conftest import calibrate, copy_bundle
from tests.helpers import run_cli


def test_encoder_bench_lists_each_precision_with_its_gate(tiny_bundles: dict[str, Path], tmp_path: Path) -> None:
    """The bench quotes each artifact's gate, passed or not. How a random model quantizes depends on the
    CPU (VNNI or not), so the artifacts are written with --force and the test asserts what the bench
    reports about them, never that a random model's INT8 passed a gate."""
    bundle = copy_bundle(tiny_bundles["siglip"], tmp_path / "siglip")
    calibrate(bundle, "--precision", "fp16", "--force")
    calibrate(bundle, "--precision", "int8", "--force")
    calibrate(bundle, "--precision", "int8", "--target", "cpu", "--force")
    out = tmp_path / "bench.json"
    result = run_cli("bench", "encoder", "--bundle", str(bundle), "--batches", "1,8", "--iterations", "2",
                     "--json", str(out))
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert report["tensorrt"].startswith("not timed: TensorRT is not installed")  # said, not silently absent
    roles = ("vision", "vision.fp16", "vision.int8", "vision.int8-cpu")
    assert [(r["artifact"], r["batch"]) for r in runs] == [(f"{r}.onnx", b) for r in roles for b in (1, 8)]
    manifest = json.loads((bundle / "bundle.json").read_text())
    for r in runs:
        assert r["images_per_s"] > 0 and r["vs_fp32"] > 0
        if r["precision"] == "fp32":
            assert r["cosine_p1"] is None and r["vs_fp32"] == 1.0
        else:
            gate = manifest["files"][r["artifact"].removesuffix(".onnx")]["calibration"]["gate"]
            assert r["cosine_p1"] == round(gate["cosine_p1"], 5)
            assert r["verdict_agreement"] == gate["verdict_agreement"]
            assert r["gate"] == ("passed" if gate["passed"] else "FAILED (forced)")
    assert "| onnxruntime | vision.int8.onnx | qdq-s8s8 | 8 |" in result.out
    assert "| vision.int8-cpu.onnx |" in result.out


def test_encoder_bench_times_pytorch_eager_on_the_same_frames(tiny_bundles: dict[str, Path],
                                                            tiny_checkpoints: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    run_cli("bench", "encoder", "--bundle", str(tiny_bundles["clip"]), "--batches", "1,4", "--iterations", "2",
            "--checkpoint", str(tiny_checkpoints["clip"]), "--json", str(out))
    runs = json.loads(out.read_text())["runs"]
    eager = [r for r in runs if r["backend"] == "pytorch"]
    assert [r["batch"] for r in eager] == [1, 4]
    fp32 = {r["batch"]: r["images_per_s"] for r in runs if r["artifact"] == "vision.onnx"}
    for r in eager:  # the ratio is to the FP32 ONNX run of the same batch (it can be tiny on a busy machine)
        assert r["images_per_s"] > 0 and r["vs_fp32"] == pytest.approx(r["images_per_s"] / fp32[r["batch"]], abs=0.006)
